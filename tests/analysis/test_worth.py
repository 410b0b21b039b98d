"""The best prompt's worth in labelled training rows: interpolation on hand-made learning curves,
its bootstrap interval, and the sentences the verdict carries (with the rows each side used)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis import worth
from harness.analysis.cost import Prices
from harness.analysis.stats import resamples
from tests.helpers import summarise_task


@pytest.mark.parametrize(
    ("sizes", "curve", "target", "expected"),
    [
        ((64, 256), (0.5, 0.7), 0.6, (128.0, "")),  # halfway in log(rows): sqrt(64 * 256)
        ((64, 256), (0.5, 0.7), 0.45, (64.0, worth.BELOW)),
        ((64, 256), (0.5, 0.7), 0.8, (256.0, worth.ABOVE)),
        ((64, 256, 1024), (0.5, 0.7, 0.65), 0.66, (2 ** (6 * 0.2 + 8 * 0.8), "")),  # the first crossing
        ((64, 256, 1024), (0.5, 0.55, 0.75), 0.7, (2 ** (8 * 0.25 + 10 * 0.75), "")),
    ],
)
def test_rows_to_match_on_hand_made_curves(sizes, curve, target, expected):
    rows, bound = worth.rows_to_match(sizes, curve, target)
    assert rows == pytest.approx(expected[0]) and bound == expected[1]


def test_rows_to_match_refuses_unsorted_sizes():
    with pytest.raises(ValueError):
        worth.rows_to_match((256, 64), (0.5, 0.7), 0.6)


def _means(right: np.ndarray):
    return lambda idx: float(right[idx].mean())


def test_worth_interval_brackets_the_estimate_and_opens_when_the_curve_may_miss():
    n = 400
    prompt = np.array([1.0] * 240 + [0.0] * 160)  # 0.60
    small = np.array([1.0] * 200 + [0.0] * 200)  # 0.50
    large = np.array([1.0] * 280 + [0.0] * 120)  # 0.70
    w = worth.worth_in_rows("few_shot_8", _means(prompt), {64: [_means(small)], 256: [_means(large)]}, resamples(n), n)
    assert w is not None and w.rows == pytest.approx(128.0) and w.bound == ""
    assert w.low is not None and w.high is not None and 64 <= w.low < 128 < w.high < 256
    assert "The prompt few_shot_8 is worth about 128 labelled training rows (interpolated in log rows" in worth.sentence(w)
    # the prompt nearly at the largest adapter, right on other items than it: some resamples miss it
    rng = np.random.default_rng(0)
    close, other = np.zeros(n), np.zeros(n)
    close[rng.permutation(n)[:275]] = 1.0
    other[rng.permutation(n)[:280]] = 1.0
    w2 = worth.worth_in_rows("p", _means(close), {64: [_means(small)], 256: [_means(other)]}, resamples(n), n)
    assert w2 is not None and w2.high is None and "to more than 256, test items and seeds resampled)" in worth.sentence(w2)


def test_worth_resamples_seeds_and_keeps_a_censored_lower_bound():
    n = 400
    prompt = np.zeros(n)
    prompt[np.random.default_rng(1).permutation(n)[:206]] = 1.0  # 0.515, just above the small size, on other items
    small = np.array([1.0] * 200 + [0.0] * 200)  # 0.50
    large = np.array([1.0] * 280 + [0.0] * 120)  # 0.70
    w = worth.worth_in_rows("p", _means(prompt), {64: [_means(small)], 256: [_means(large)]}, resamples(n), n)
    # in more than 2.5% of resamples the smallest size already reaches the prompt: "fewer than 64", not "64"
    assert w is not None and w.low == 0.0 and "95% CI fewer than 64 to" in worth.sentence(w)
    # two seeds per size that disagree: the seeds' spread widens the interval (held fixed, it did not)
    lucky, unlucky = np.array([1.0] * 240 + [0.0] * 160), np.array([1.0] * 160 + [0.0] * 240)
    mid = np.array([1.0] * 240 + [0.0] * 160)  # 0.60: the small seeds' mean 0.50 .. the large 0.70
    fixed = worth.worth_in_rows("p", _means(mid), {64: [_means(small)], 256: [_means(large)]}, resamples(n), n)
    seeded = worth.worth_in_rows(
        "p", _means(mid), {64: [_means(lucky), _means(unlucky)], 256: [_means(large), _means(large)]}, resamples(n), n
    )
    assert fixed is not None and seeded is not None and seeded.rows == pytest.approx(fixed.rows)
    assert fixed.low is not None and fixed.low > 0 and seeded.low == 0.0  # a lucky seed alone reaches the prompt


def _rec(item: str, variant: str, right: bool) -> dict:
    return {
        "task": "t", "item": item, "variant": variant, "prediction": "x" if right else "y", "gold": "x",
        "scores": {"correct": float(right)}, "prompt_tokens": 100, "completion_tokens": 2, "latency_s": 0.01,
    }  # fmt: skip


def test_the_verdict_gives_the_prompts_worth_and_the_rows_each_side_used():
    records = []
    for name, right in (("few_shot_8", 120), ("zero_shot", 60), ("lora_n64", 100), ("lora_n256", 140)):
        records += [_rec(f"i{i:03d}", name, i < right) for i in range(200)]
    adapters = {f"lora_n{s}": {"train_size": s, "train_device_s": 1.0} for s in (64, 256)}
    info = {
        "metrics": ["accuracy"], "labels": ["x", "y"], "kind": "classification", "data_check": {"n_train": 9543},
        "variants": [{"name": "zero_shot", "shots": 0}, {"name": "few_shot_8", "shots": 8}],
    }  # fmt: skip
    s = summarise_task("t", info, records, adapters, Prices())
    assert s.best_prompt == "few_shot_8" and s.worth is not None and s.worth.rows == pytest.approx(128.0)
    assert "The prompt few_shot_8 is worth about 128 labelled training rows (interpolated in log rows" in s.verdict
    assert "on the adapter's learning curve (64 and 256 rows)." in s.verdict
    assert (
        "Labelled rows used: few_shot_8 shows 8 examples per request drawn from a pool of 9,543 training rows; "
        "lora_n256 learned from 256 training rows."
    ) in s.verdict
