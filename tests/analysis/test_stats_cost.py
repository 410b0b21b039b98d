"""Statistics against scipy / statsmodels reference values, including degenerate cases."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as sps

from harness.analysis import cost, proportions, stats
from harness.taskkit.metrics import METRICS, Scored


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


def test_paired_identical_variants_get_an_interval_that_admits_a_difference():
    """Two arms that agree on every one of 150 items have not shown a difference of exactly 0: the
    score interval around 0 is about 2.5 points wide each way (the bootstrap gave [0, 0])."""
    a = _items([True, False, True] * 50)
    result = stats.paired_compare(a, a, "accuracy")
    assert result.diff.value == 0 and result.p_value == 1.0
    assert result.diff.low == pytest.approx(-0.02497, abs=1e-4) and result.diff.high == pytest.approx(0.02497, abs=1e-4)


def test_holm_matches_statsmodels_and_keeps_none():
    from statsmodels.stats.multitest import multipletests

    ps = [0.01, 0.04, 0.03, 0.2]
    assert stats.holm(ps) == pytest.approx(list(multipletests(ps, method="holm")[1]))
    assert stats.holm([0.01, None, 0.04]) == pytest.approx([0.02, None, 0.04])  # type: ignore[list-item]
    assert stats.holm([0.01, 0.04]) == pytest.approx([0.02, 0.04])
    assert stats.holm([None]) == [None]
    rng = np.random.default_rng(4)
    for m in (1, 3, 12):
        for _ in range(4):  # ties and p-values near 1 included: the cap and the monotone step
            ps = list(np.round(rng.uniform(0, 0.3 if m > 5 else 1.0, size=m), 2))
            assert stats.holm(ps) == pytest.approx(list(multipletests(ps, method="holm")[1]))


def test_the_distributions_match_statsmodels_and_scipy_stats():
    """The report's distributions come from scipy.special (scipy.stats costs 0.5 s to import):
    each against the library call it stands for."""
    from statsmodels.stats.contingency_tables import mcnemar
    from statsmodels.stats.proportion import proportion_confint

    for n in (1, 5, 12, 150, 1000):
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            for alpha in (0.05, 0.01):
                expected = proportion_confint(k, n, alpha=alpha, method="wilson")
                assert proportions.wilson(k, n, alpha) == pytest.approx(expected, abs=1e-12)
    for a_only in range(0, 40, 3):
        for b_only in range(0, 40, 4):
            if a_only + b_only:
                expected = mcnemar([[0, a_only], [b_only, 0]], exact=True).pvalue
                assert stats.mcnemar_exact(a_only, b_only) == pytest.approx(expected, abs=1e-12)
    assert stats.mde_from_se(0.02) == pytest.approx((sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) * 0.02)


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.1])
@pytest.mark.parametrize("power", [0.5, 0.8, 0.95])
def test_the_detectable_effect_reaches_the_power_asked(alpha, power):
    """t_test_effect's power computed by scipy.stats' noncentral t; and the effect against
    statsmodels' solver where that converges (below ~10 items its root search stops at its bound:
    at 2 items, alpha 0.01, it answers an effect of 10 whose power is 0.18, not 0.8)."""
    from statsmodels.stats.power import TTestPower

    for n in [*range(2, 30), 40, 100, 400, 5000, 100_000]:
        effect = stats.t_test_effect(n, alpha, power)
        crit, nc = sps.t.isf(alpha / 2, n - 1), effect * n**0.5
        reached = sps.nct.sf(crit, n - 1, nc) + np.nan_to_num(sps.nct.cdf(-crit, n - 1, nc))  # nan: far tail, ~0
        assert reached == pytest.approx(power, abs=5e-5)
        if n >= 10:
            solved = TTestPower().solve_power(nobs=n, alpha=alpha, power=power, alternative="two-sided")
            assert effect == pytest.approx(solved, rel=2e-4)


def test_items_needed_is_the_smallest_count_the_exact_test_has_the_power_at():
    """Against exact enumeration of every 2x2 outcome (scipy.stats' binomial test deciding each)."""
    for effect, discordance, alpha, power in [(0.15, 0.2, 0.05, 0.8), (0.3, 0.5, 0.05, 0.8), (0.25, 0.3, 0.01, 0.9)]:
        n = stats.items_needed(effect, discordance, alpha, power)
        assert _enumerated_power(n, effect, discordance, alpha) >= power - 1e-9
        assert _enumerated_power(n - 1, effect, discordance, alpha) < power
    # the issue's point: a paired t-test answered 64 at (0.15, 0.20); the exact test has 0.74 power there
    assert stats.items_needed(0.15, 0.2) == 72
    assert proportions.mcnemar_power(64, 0.15, 0.2) == pytest.approx(0.7425, abs=1e-4)


def _enumerated_power(n: int, effect: float, discordance: float, alpha: float) -> float:
    """P(exact McNemar rejects) summed over every (b-only, a-only) count: the definition, by brute force."""
    import math

    b_p, a_p, same = (discordance + effect) / 2, (discordance - effect) / 2, 1 - discordance
    total = 0.0
    for b in range(n + 1):
        for a in range(n + 1 - b):
            if a + b and sps.binomtest(min(a, b), a + b, 0.5).pvalue < alpha:
                total += math.comb(n, b) * math.comb(n - b, a) * b_p**b * a_p**a * same ** (n - a - b)
    return total


@pytest.mark.parametrize("n", [10, 31, 64, 100])
@pytest.mark.parametrize(("effect", "discordance"), [(0.0, 0.2), (0.05, 0.3), (0.15, 0.2), (0.3, 0.5)])
def test_exact_mcnemar_power_is_the_enumerated_rejection_rate(n, effect, discordance):
    assert proportions.mcnemar_power(n, effect, discordance) == pytest.approx(
        _enumerated_power(n, effect, discordance, 0.05), abs=1e-10
    )


def test_connor_is_the_normal_approximation_the_issue_quotes():
    assert proportions.connor(0.15, 0.2) == 68 and proportions.connor(0.05, 0.3) == 940


def test_a_family_correction_asks_for_more_items():
    # Bonferroni over 12 arms: alpha / 12 needs more items than alpha alone, and the exact search says how many
    one, twelve = stats.items_needed(0.25, 0.35), stats.items_needed(0.25, 0.35, alpha=0.05 / 12)
    assert twelve > 1.5 * one
    assert _enumerated_power(twelve, 0.25, 0.35, 0.05 / 12) >= 0.8 > _enumerated_power(twelve - 1, 0.25, 0.35, 0.05 / 12)
    assert stats.items_needed(0.05, 0.3, alpha=0.05 / 12) > 1.6 * stats.items_needed(0.05, 0.3)


def test_the_tango_interval_excludes_zero_exactly_when_mcnemars_score_test_rejects():
    """Tango's interval inverts McNemar's own statistic: at a difference of 0 it is McNemar's z, so
    the interval and statsmodels' (uncorrected, asymptotic) McNemar test never disagree."""
    from statsmodels.stats.contingency_tables import mcnemar

    for n in (20, 150):
        for b_only in range(0, 25, 2):
            for a_only in range(0, 25, 3):
                if a_only + b_only > n:
                    continue
                low, high = proportions.tango(b_only, a_only, n)
                assert low <= (b_only - a_only) / n <= high
                if a_only + b_only:
                    p = mcnemar([[0, a_only], [b_only, 0]], exact=False, correction=False).pvalue
                    assert (low > 0 or high < 0) == (p < 0.05), (n, b_only, a_only, p)


def test_the_tango_interval_covers_the_true_difference_on_a_grid():
    """Exact coverage, every outcome of 40 paired items enumerated: within 1.5 points of 95% where
    the percentile bootstrap falls far below (near the boundary and when the arms rarely differ)."""
    import math

    n = 40
    for pb, pa in [(0.05, 0.05), (0.1, 0.02), (0.2, 0.1), (0.3, 0.3), (0.02, 0.0)]:
        truth, cover = pb - pa, 0.0
        for b in range(n + 1):
            for a in range(n + 1 - b):
                prob = math.comb(n, b) * math.comb(n - b, a) * pb**b * pa**a * (1 - pa - pb) ** (n - a - b)
                low, high = proportions.tango(b, a, n)
                cover += prob * (low - 1e-9 <= truth <= high + 1e-9)
        assert cover >= 0.935, (pb, pa, cover)


def test_permutations_reach_below_the_corrected_level():
    # the floor 1 / (1 + n_perm) sits well below alpha / m for any family
    for m in (1, 12, 51, 200):
        n = stats.permutations_for(m)
        assert 1 / (1 + n) <= 0.05 / m / 19
    assert stats.permutations_for(1) == 1000


def test_a_report_s_statistics_import_no_scipy_stats():
    code = (
        "import sys\n"
        "from harness.analysis.summary import find\n"
        "from harness.analysis.verdict import task_summary\n"
        "from harness.analysis.cost import Prices\n"
        "golds = ['N'] * 70 + ['B'] * 30\n"
        "def rec(i, v, g, p):\n"
        "    return {'task': 't', 'item': f'i{i}', 'variant': v, 'prediction': p, 'gold': g,\n"
        "            'scores': {'correct': float(p == g)}, 'prompt_tokens': 100, 'completion_tokens': 2,\n"
        "            'latency_s': 0.01}\n"
        "records = [rec(i, 'zero_shot', g, 'N') for i, g in enumerate(golds)]\n"
        "records += [rec(i, 'lora', g, g) for i, g in enumerate(golds)]\n"
        "records += [rec(i, 'lora_b', g, g if i % 4 else 'U') for i, g in enumerate(golds)]\n"
        "info = {'metrics': ['accuracy', 'macro_f1'], 'labels': ['B', 'N', 'U'], 'kind': 'classification'}\n"
        "facts = {v: {'train_size': 8, 'train_device_s': 60.0} for v in ('lora', 'lora_b')}\n"
        "s = task_summary(find('t', info, records, facts, Prices()))\n"
        "rows = {r.variant: r for r in s.rows}\n"
        "assert rows['lora'].metric.low > 0.96 and rows['lora'].metric.high == 1.0, rows  # Clopper-Pearson\n"
        "assert rows['lora_b'].mde and rows['lora_b'].p_holm and rows['lora_b'].test == 'exact McNemar', rows\n"
        "print(sorted(m for m in ('scipy.stats', 'statsmodels') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_break_even_is_the_crossover_either_way():
    prices = cost.Prices(device_usd_per_hour=3.6)
    assert cost.training_cost(prices, 1000) == pytest.approx(1.0)  # 1000 s at $3.6/h = $1
    prompt = cost.cost_per_request(prices, 0.01, 500, 5)
    adapter = cost.cost_per_request(prices, 0.002, 50, 5)
    # dearer up front, cheaper per request: recovered after ceil(1 / saving) requests
    be = cost.break_even(1.0, adapter, 0.0, prompt)
    assert be.requests == math.ceil(1.0 / (prompt - adapter)) and be.cheaper_after == "adapter"
    # cheaper up front, dearer per request: not "0 requests, immediately": the prompt overtakes it
    over = cost.break_even(0.0, prompt, 1.0, adapter)
    assert over.requests == math.ceil(1.0 / (prompt - adapter)) and over.cheaper_after == "prompt"
    assert "the prompt is cheaper after" in over.sentence
    assert cost.break_even(0.0, adapter, 1.0, prompt) == cost.BreakEven(0.0, "adapter")  # cheaper both ways
    assert cost.break_even(1.0, prompt, 0.0, adapter).requests is None  # dearer both ways: never


def test_token_prices_add_up():
    p = cost.Prices(device_usd_per_hour=0, usd_per_1k_prompt_tokens=0.5, usd_per_1k_completion_tokens=1.5)
    assert cost.cost_per_request(p, 10, 1000, 1000) == pytest.approx(2.0)


def test_the_cpu_flags_that_decide_speed_are_read_from_cpuinfo():
    from harness.engines.hardware import cpu_model_and_flags

    avx2_only = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\n"
    assert cpu_model_and_flags(avx2_only) == ("AMD EPYC 7B13", ["avx", "avx2", "fma"])
    sapphire = "model name : Intel(R) Xeon(R)\nflags : avx avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
    model, flags = cpu_model_and_flags(sapphire)
    assert model == "Intel(R) Xeon(R)" and flags == ["avx", "avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"]


def test_a_capped_instruction_set_is_recorded_with_the_figures(monkeypatch):
    from harness.engines.hardware import ISA_CAPS, describe

    for name in ISA_CAPS:
        monkeypatch.delenv(name, raising=False)
    assert "isa_caps" not in describe()
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "")  # set but empty caps nothing
    assert describe()["isa_caps"] == {"ATEN_CPU_CAPABILITY": "avx2"}
