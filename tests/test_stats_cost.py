"""Statistics against scipy / statsmodels reference values, including degenerate cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from harness import cost, stats
from harness.scoring import METRICS, Scored


def _items(correct):
    return [Scored("x" if c else "y", "x", {"correct": float(c)}) for c in correct]


def test_bootstrap_ci_close_to_scipy_percentile():
    rng = np.random.default_rng(0)
    correct = rng.random(200) < 0.6
    est = stats.bootstrap_ci(_items(correct), METRICS["accuracy"], n_boot=2000, seed=1)
    ref = sps.bootstrap(
        (correct.astype(float),), np.mean, n_resamples=2000, method="percentile", random_state=np.random.default_rng(1)
    ).confidence_interval
    assert est.value == pytest.approx(correct.mean())
    assert est.low == pytest.approx(ref.low, abs=0.015) and est.high == pytest.approx(ref.high, abs=0.015)
    assert est.low < est.value < est.high


def test_bootstrap_degenerate_cases():
    all_right = stats.bootstrap_ci(_items([True] * 30), METRICS["accuracy"])
    assert (all_right.value, all_right.low, all_right.high) == (1.0, 1.0, 1.0)
    one = stats.bootstrap_ci(_items([False]), METRICS["accuracy"])
    assert (one.value, one.low, one.high) == (0.0, 0.0, 0.0)


def test_mcnemar_exact_matches_binomial_test():
    for a_only, b_only in [(3, 12), (10, 10), (0, 7), (1, 0)]:
        expected = sps.binomtest(b_only, a_only + b_only, 0.5).pvalue
        assert stats.mcnemar_exact(a_only, b_only) == pytest.approx(min(1.0, expected))
    assert stats.mcnemar_exact(0, 0) == 1.0  # no discordant pairs: no evidence of a difference


def test_paired_compare_counts_and_ci():
    a = _items([True] * 20 + [False] * 30 + [True] * 10)
    b = _items([True] * 20 + [True] * 30 + [False] * 10)
    result = stats.paired_compare(a, b, "accuracy")
    assert (result.b_wins, result.a_wins) == (30, 10)
    assert result.diff.value == pytest.approx(20 / 60)
    assert result.diff.low > 0
    assert result.p_value == pytest.approx(sps.binomtest(30, 40, 0.5).pvalue)


def test_paired_identical_variants():
    a = _items([True, False, True])
    result = stats.paired_compare(a, a, "accuracy")
    assert result.diff.value == 0 and result.diff.low == 0 and result.diff.high == 0 and result.p_value == 1.0


def test_holm_matches_statsmodels_and_keeps_none():
    from statsmodels.stats.multitest import multipletests

    ps = [0.01, 0.04, 0.03, 0.2]
    assert stats.holm(ps) == pytest.approx(list(multipletests(ps, method="holm")[1]))
    assert stats.holm([0.01, None, 0.04]) == pytest.approx([0.02, None, 0.04])  # type: ignore[list-item]
    assert stats.holm([0.01, 0.04]) == pytest.approx([0.02, 0.04])
    assert stats.holm([None]) == [None]


def test_break_even():
    prices = cost.Prices(device_usd_per_hour=3.6)
    train = cost.training_cost(prices, 1000)  # 1000 s at $3.6/h = $1
    assert train == pytest.approx(1.0)
    prompt = cost.cost_per_request(prices, 0.01, 500, 5)
    adapter = cost.cost_per_request(prices, 0.002, 50, 5)
    be = cost.break_even(train, prompt, adapter, adapter_not_worse=True)
    assert be.requests == pytest.approx(1.0 / (prompt - adapter), abs=1)
    assert cost.break_even(train, prompt, adapter, adapter_not_worse=False).requests is None
    assert cost.break_even(train, adapter, prompt, adapter_not_worse=True).requests is None
    assert cost.break_even(0.0, prompt, adapter, True).requests == 0.0


def test_token_prices_add_up():
    p = cost.Prices(device_usd_per_hour=0, usd_per_1k_prompt_tokens=0.5, usd_per_1k_completion_tokens=1.5)
    assert cost.cost_per_request(p, 10, 1000, 1000) == pytest.approx(2.0)


def test_the_cpu_flags_that_decide_speed_are_read_from_cpuinfo():
    from harness.hardware import cpu_model_and_flags

    avx2_only = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\n"
    assert cpu_model_and_flags(avx2_only) == ("AMD EPYC 7B13", ["avx", "avx2", "fma"])
    sapphire = "model name : Intel(R) Xeon(R)\nflags : avx avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
    model, flags = cpu_model_and_flags(sapphire)
    assert model == "Intel(R) Xeon(R)" and flags == ["avx", "avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"]


def test_a_capped_instruction_set_is_recorded_with_the_figures(monkeypatch):
    from harness.hardware import ISA_CAPS, describe

    for name in ISA_CAPS:
        monkeypatch.delenv(name, raising=False)
    assert "isa_caps" not in describe()
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "")  # set but empty caps nothing
    assert describe()["isa_caps"] == {"ATEN_CPU_CAPABILITY": "avx2"}
