"""Items that share a source (contract_nli's hypotheses of one contract) are not independent: the
standard error is cluster-robust, intervals resample clusters, and a difference that lives in a few
clusters is not called significant because it spans many items."""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis import stats
from harness.analysis.cost import Prices
from harness.core.errors import UserError
from harness.taskkit.metrics import Scored
from harness.taskkit.registry import get_task
from tests.helpers import summarise_task


def test_clustered_se_matches_a_hand_computation_and_statsmodels():
    d = np.array([1, 0, 1, 0, 0, -1, 1], dtype=float)
    groups = stats.groups_of(["a", "a", "a", "b", "b", "c", "c"])
    assert groups is not None
    # residuals about the mean 2/7 summed per cluster: 8/7, -4/7, -4/7; CR1 factor G/(G-1) = 3/2
    assert stats.clustered_se(d, groups) == pytest.approx(np.sqrt(1.5 * 96 / 49) / 7) == pytest.approx(12 / 49)
    import statsmodels.api as sm

    fit = sm.OLS(d, np.ones(len(d))).fit(cov_type="cluster", cov_kwds={"groups": np.array([0, 0, 0, 1, 1, 2, 2])})
    assert stats.clustered_se(d, groups) == pytest.approx(float(fit.bse[0]))


def test_no_shared_cluster_means_the_item_level_methods():
    assert stats.groups_of(["a", "b", "c"]) is None and stats.groups_of(None) is None
    assert stats.groups_of(["a", "a"]) is None  # one cluster: nothing to resample


def _sc(right: list[bool]) -> list[Scored]:
    return [Scored("x" if r else "y", "x", {"correct": float(r)}) for r in right]


def _clustered_case() -> tuple[list[Scored], list[Scored], list[str]]:
    """10 contracts of 20 items: the adapter wins every item of 3 contracts, loses every item of
    one, and ties elsewhere. 60 against 20 items, but in 4 contracts of 10."""
    prompt, adapter, clusters = [], [], []
    for c in range(10):
        clusters += [f"c{c}"] * 20
        prompt += [c == 3] * 20
        adapter += [c in (0, 1, 2)] * 20
    return _sc(prompt), _sc(adapter), clusters


def test_a_difference_in_a_few_clusters_is_not_significant_when_clustered():
    a, b, clusters = _clustered_case()
    flat = stats.paired_compare(a, b, "accuracy")
    assert flat.test == "exact McNemar" and flat.p_value is not None and flat.p_value < 1e-4
    clustered = stats.paired_compare(a, b, "accuracy", clusters=clusters)
    # cluster sums of d - 0.2: 16 (x3), -24, -4 (x6); SE = sqrt(10/9 * 1440) / 200 = 0.2; t = 1 on 9 df
    from scipy.stats import t

    assert clustered.test == "cluster-robust paired t-test (10 clusters)"
    assert clustered.p_value == pytest.approx(2 * t.sf(1.0, 9))
    assert clustered.diff.value == pytest.approx(0.2) and clustered.diff.low < 0 < clustered.diff.high
    assert clustered.mde is not None and flat.mde is not None and clustered.mde > 2 * flat.mde


def test_macro_f1_is_permuted_by_cluster():
    a, b, clusters = _clustered_case()

    def labelled(col: list[Scored]) -> list[Scored]:  # gold alternates N/P; a wrong answer is the other label
        golds = ["N" if i % 2 else "P" for i in range(len(col))]
        flip = {"N": "P", "P": "N"}
        return [Scored(g if s.scores["correct"] else flip[g], g, s.scores) for g, s in zip(golds, col, strict=True)]

    a, b = labelled(a), labelled(b)
    flat = stats.paired_compare(a, b, "macro_f1", ["N", "P"])
    clustered = stats.paired_compare(a, b, "macro_f1", ["N", "P"], clusters=clusters)
    assert clustered.test == "paired permutation by cluster (10 clusters)"
    assert flat.p_value is not None and clustered.p_value is not None and clustered.p_value > 10 * flat.p_value


def _rec(item: str, variant: str, right: bool) -> dict:
    return {
        "task": "t", "item": item, "variant": variant, "prediction": "x" if right else "y", "gold": "x",
        "scores": {"correct": float(right)}, "prompt_tokens": 100, "completion_tokens": 2, "latency_s": 0.01,
    }  # fmt: skip


def test_the_verdict_uses_and_names_the_clusters():
    a, b, clusters = _clustered_case()
    records = [_rec(f"i{i:03d}", "zero_shot", s.scores["correct"] > 0) for i, s in enumerate(a)]
    records += [_rec(f"i{i:03d}", "lora", s.scores["correct"] > 0) for i, s in enumerate(b)]
    info = {"metrics": ["accuracy"], "labels": ["x", "y"], "kind": "classification"}
    adapters = {"lora": {"train_size": 8, "train_device_s": 1.0}}
    flat = summarise_task("t", info, records, adapters, Prices())
    # same tokens and time per request, and a training cost: better, but never cheaper
    assert flat.verdict.startswith("Fine-tuning wins on quality but costs more: lora beats zero_shot by +20.0 points")
    mapping = {f"i{i:03d}": c for i, c in enumerate(clusters)}
    s = summarise_task("t", {**info, "clusters": mapping, "cluster_field": "contract"}, records, adapters, Prices())
    assert s.verdict.startswith("Keep the prompt: no detectable quality difference (+20.0 points")
    assert "cluster-robust paired t-test (10 clusters) p = 0.34" in s.verdict
    assert "The test items come from 10 contracts (200 items): intervals and tests resample whole contracts" in s.verdict


def test_contract_nli_clusters_by_contract_and_a_missing_cluster_field_is_refused():
    from dataclasses import replace

    from harness.taskkit.data import to_samples

    task = get_task("contract_nli")
    row = {
        "id": "cnli-span-test-7-nda-11",
        "premise": "p",
        "hypothesis": "h",
        "hypothesis_key": "nda-11",
        "label": "Entailment",
    }
    [s] = to_samples(task, [(1, row)], "test.jsonl", "line")
    assert task.cluster_field == "contract" and s.fields["contract"] == "cnli-span-test-7"
    with pytest.raises(UserError, match="cluster_field 'document' is not a text or number field"):
        to_samples(replace(task, cluster_field="document"), [(1, row)], "test.jsonl", "line")


def test_design_effect_by_hand_and_in_harness_size(fixture_data):
    import subprocess
    import sys

    from harness.analysis.stats import design_effect

    assert design_effect([10] * 5, 0.1) == pytest.approx(1.9)  # 1 + (10 - 1) * 0.1
    # unequal clusters: m = (2^2 + 8^2) / (2 + 8) = 6.8, so 1 + 5.8 * 0.5
    assert design_effect([2, 8], 0.5) == pytest.approx(3.9)
    assert design_effect([1, 1, 1], 0.9) == 1.0 and design_effect([5, 5], 0.0) == 1.0

    def size(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-c", "from harness.cli import main; main()", "size", "contract_nli", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    done = size("--effect", "5")
    assert done.returncode == 0, done.stderr
    assert "975 test items" in done.stdout and "contracts" in done.stdout and "design effect" in done.stdout
    bad = size("--effect", "5", "--icc", "1.5")
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --icc must be from 0 to 1, got 1.5"
