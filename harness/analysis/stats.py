"""Aggregates, bootstrap confidence intervals, paired tests, Holm correction. Pure.

The bootstrap is written here (a few lines of numpy) rather than taken from
scipy.stats.bootstrap because the statistics are corpus metrics such as macro-F1 that are
not vectorisable, and the paired version must resample the *same* items for both variants.
The paired permutation test is written here for the same reason as the bootstrap (a corpus metric
recomputed on each permutation); scipy's permutation_test would call the metric the same number
of times through a slower interface.

The distributions every report needs (Student's t, the normal, the binomial for exact McNemar,
the beta for Clopper-Pearson, the noncentral t for the detectable effect) come from
scipy.special, the functions scipy.stats and statsmodels call underneath: importing scipy.stats
(which every statsmodels.stats module does) costs 0.5 s on 2 cores, a fifth of a cached rerun
that a prompt author pays on every iteration. Holm's step-down is its two-line definition. The
tests hold each of them to statsmodels' and scipy.stats' own results.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from harness.analysis import proportions
from harness.taskkit.metrics import Coded, Metric, Scored, code_labels, f1_of_codes, metric

N_BOOT = 1000
N_PERM = 1000


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float


def _resample_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


Groups = list[np.ndarray]  # item indices per cluster: items sharing a source (one contract's hypotheses)


def groups_of(clusters: Sequence[str] | None) -> Groups | None:
    """Item indices per cluster; None when no item shares a cluster with another (then the
    item-level methods are the clustered ones)."""
    if clusters is None:
        return None
    by: dict[str, list[int]] = {}
    for i, c in enumerate(clusters):
        by.setdefault(c, []).append(i)
    if len(by) == len(clusters) or len(by) < 2:
        return None
    return [np.array(ix) for ix in by.values()]


def _resample_clusters(groups: Groups, n_boot: int, seed: int) -> list[np.ndarray]:
    """The cluster bootstrap: whole clusters drawn with replacement, their items together."""
    rng = np.random.default_rng(seed)
    return [np.concatenate([groups[g] for g in rng.integers(0, len(groups), len(groups))]) for _ in range(n_boot)]


def resamples(n: int, n_boot: int = N_BOOT, seed: int = 0, groups: Groups | None = None) -> list[np.ndarray]:
    """The bootstrap's index arrays: items drawn with replacement, or whole clusters with `groups`."""
    if n < 2:
        return []
    return _resample_clusters(groups, n_boot, seed) if groups else list(_resample_indices(n, n_boot, seed))


def clustered_se(values: np.ndarray, groups: Groups) -> float:
    """Cluster-robust (CR1) standard error of a mean: the residuals summed within each cluster,
    with the small-sample factor G/(G-1) (Cameron and Miller 2015, eq. 11 with one regressor)."""
    n, g = len(values), len(groups)
    resid = values - values.mean()
    sums = np.array([resid[ix].sum() for ix in groups])
    return float(np.sqrt(g / (g - 1) * np.sum(sums**2)) / n)


def bootstrap_ci(
    items: Sequence[Scored],
    metric: Callable[[Sequence[Scored], Sequence[str]], float],
    labels: Sequence[str] = (),
    n_boot: int = N_BOOT,
    seed: int = 0,
    alpha: float = 0.05,
) -> Estimate:
    """Percentile bootstrap over items. One item (or none) gives a zero-width interval."""
    return _percentile(partial(_corpus_of, metric, labels, items), len(items), n_boot, seed, alpha)[0]


def _percentile(
    fn: Callable[[np.ndarray], float],
    n: int,
    n_boot: int = N_BOOT,
    seed: int = 0,
    alpha: float = 0.05,
    groups: Groups | None = None,
) -> tuple[Estimate, np.ndarray]:
    """`fn` (a statistic of an index array) on all n items with its percentile bootstrap interval,
    and the resampled values; fewer than two items give a zero-width interval. With `groups`,
    clusters are resampled, not items."""
    value = fn(np.arange(n))
    if n < 2:
        return Estimate(value, value, value), np.array([value])
    rows = _resample_clusters(groups, n_boot, seed) if groups else _resample_indices(n, n_boot, seed)
    stats = np.array([fn(row) for row in rows])
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return Estimate(value, float(low), float(high)), stats


def metric_ci(
    items: Sequence[Scored],
    metric_name: str,
    labels: Sequence[str] = (),
    seed: int = 0,
    clusters: Sequence[str] | None = None,
) -> Estimate:
    """The metric with its 95% interval: for a proportion of right answers on independent items,
    the Wilson score interval (a percentile bootstrap is too narrow near 0% and 100%, and at 0 of
    150 claims certainty); else the percentile bootstrap, over clusters when items share a source."""
    m = metric(metric_name)
    [fn] = column_stats(m, labels, [items])
    groups = groups_of(clusters)
    if len(items) >= 2 and m.test == "exact McNemar" and groups is None:
        value = fn(np.arange(len(items)))
        low, high = proportions.wilson(round(value * len(items)), len(items))
        return Estimate(value, low, high)
    return _percentile(fn, len(items), seed=seed, groups=groups)[0]


def column_stats(
    m: Metric, labels: Sequence[str], columns: Sequence[Sequence[Scored]]
) -> list[Callable[[np.ndarray], float]]:
    """For each variant's items (the same items in the same order), the metric on a subset given
    by an index array. Means and macro-F1 are computed on arrays, so a thousand resamples cost
    milliseconds; any other corpus metric is called on the items themselves."""
    if m.item_key is not None:
        return [partial(_mean_of, np.array(m.item_values(col), dtype=float)) for col in columns]
    if m.name == "macro_f1":
        coded = code_labels(columns, labels)
        return [partial(_f1_of, coded, p) for p in coded.preds]
    return [partial(_corpus_of, m.corpus, labels, col) for col in columns]


def _mean_of(values: np.ndarray, idx: np.ndarray) -> float:
    return float(values[idx].mean())


def _f1_of(coded: Coded, preds: np.ndarray, idx: np.ndarray) -> float:
    return f1_of_codes(coded.golds[idx], preds[idx], coded.allowed)


def _corpus_of(
    corpus: Callable[[Sequence[Scored], Sequence[str]], float],
    labels: Sequence[str],
    items: Sequence[Scored],
    idx: np.ndarray,
) -> float:
    return corpus([items[i] for i in idx], labels)


def clopper_pearson(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """The exact binomial interval: quantiles of beta distributions (statsmodels' method="beta")."""
    from scipy.special import betainccinv, betaincinv

    low = 0.0 if successes == 0 else float(betaincinv(successes, n - successes + 1, alpha / 2))
    high = 1.0 if successes == n else float(betainccinv(successes + 1, n - successes, alpha / 2))
    return low, high


@dataclass(frozen=True)
class Paired:
    diff: Estimate  # metric(b) - metric(a) with its paired bootstrap CI
    p_value: float | None  # from the metric's own paired test
    test: str  # which test: "exact McNemar" (0/1 per item) or "paired permutation" (the metric itself)
    b_wins: int  # items b got right and a wrong (per-item 0/1 scores)
    a_wins: int
    mde: float | None = None  # the smallest difference this many items detects (alpha, power 0.8)


POWER = 0.8


def paired_compare(
    a: Sequence[Scored],
    b: Sequence[Scored],
    metric_name: str,
    labels: Sequence[str] = (),
    n_boot: int = N_BOOT,
    seed: int = 0,
    alpha: float = 0.05,
    n_perm: int = N_PERM,
    clusters: Sequence[str] | None = None,
) -> Paired:
    """Compare variant b against a on the same items, in the same order, with the test that
    belongs to the metric (taskkit.metrics.metric). `clusters` (one id per item): items that share a
    source are not independent, so the interval resamples clusters and the test is clustered.
    `alpha` is the interval's level too (a row tested in a family of m gets alpha / m), and `n_perm`
    the permutations, which must reach below it (`permutations_for`)."""
    if len(a) != len(b):
        raise ValueError("paired comparison needs the same items for both variants")
    m = metric(metric_name)
    fa, fb = column_stats(m, labels, [a, b])
    groups = groups_of(clusters)
    va = np.array([x.scores.get("correct", 0.0) for x in a])
    vb = np.array([x.scores.get("correct", 0.0) for x in b])
    b_wins = int(np.sum((vb > 0.5) & (va <= 0.5)))
    a_wins = int(np.sum((va > 0.5) & (vb <= 0.5)))
    if m.test == "exact McNemar" and groups is None:
        # the interval McNemar's own statistic gives (Tango), and the power of the exact test itself
        n, whole = len(a), np.arange(len(a))
        low, high = proportions.tango(b_wins, a_wins, n, alpha)
        detectable = proportions.mde_mcnemar(n, (a_wins + b_wins) / n, alpha) if n >= 2 else None
        est = Estimate(fb(whole) - fa(whole), low, high)
        return Paired(est, mcnemar_exact(a_wins, b_wins), m.test, b_wins, a_wins, detectable)
    est, stats = _percentile(lambda idx: fb(idx) - fa(idx), len(a), n_boot, seed, alpha, groups)
    if groups is not None:
        return _clustered(a, b, m, labels, est, stats, groups, alpha, n_perm, seed)
    detectable = None
    if len(a) >= 2:
        if m.item_key is not None:
            detectable = mde_paired(np.array(m.item_values(b)) - np.array(m.item_values(a)), alpha)
        else:
            detectable = mde_from_se(float(np.std(stats, ddof=1)), alpha)
    return Paired(est, permutation_test(a, b, m, labels, n_perm, seed), m.test, b_wins, a_wins, detectable)


def _clustered(
    a: Sequence[Scored],
    b: Sequence[Scored],
    m: Metric,
    labels: Sequence[str],
    est: Estimate,
    stats: np.ndarray,
    groups: Groups,
    alpha: float,
    n_perm: int,
    seed: int,
) -> Paired:
    """The clustered paired test: for a mean of per-item scores, a t-test of the mean difference
    with the cluster-robust standard error and G-1 degrees of freedom; for a corpus metric, the
    permutation test swapping whole clusters. The MDE follows the clustered standard error."""
    from scipy.special import stdtr

    va = np.array([x.scores.get("correct", 0.0) for x in a])
    vb = np.array([x.scores.get("correct", 0.0) for x in b])
    b_wins, a_wins = int(np.sum((vb > 0.5) & (va <= 0.5))), int(np.sum((va > 0.5) & (vb <= 0.5)))
    g = len(groups)
    if m.item_key is not None:
        d = np.array(m.item_values(b)) - np.array(m.item_values(a))
        se = clustered_se(d, groups)
        p = (1.0 if d.mean() == 0 else 0.0) if se == 0 else float(2 * stdtr(g - 1, -abs(d.mean()) / se))
        return Paired(est, p, f"cluster-robust paired t-test ({g} clusters)", b_wins, a_wins, mde_from_se(se, alpha))
    p = permutation_test(a, b, m, labels, n_perm, seed, groups)
    se = float(np.std(stats, ddof=1))
    return Paired(est, p, f"paired permutation by cluster ({g} clusters)", b_wins, a_wins, mde_from_se(se, alpha))


def mde_paired(diffs: np.ndarray, alpha: float = 0.05, power: float = POWER) -> float | None:
    """Minimum detectable effect of a paired comparison over these items: the mean per-item
    difference a paired t-test (statsmodels' TTestPower) detects with this power, given the
    observed spread of the per-item differences (for 0/1 scores: the discordance). None when the
    two arms never differ on an item (no spread to judge by)."""
    sd = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else 0.0
    if sd == 0:
        return None
    return t_test_effect(len(diffs), alpha, power) * sd


def t_test_effect(n: int, alpha: float = 0.05, power: float = POWER) -> float:
    """The standardised effect (mean / sd) a two-sided one-sample t-test on n items detects with
    this power: TTestPower().solve_power(nobs=n, ...) without its root search. The power is
    P(T > c) + P(T < -c) for T noncentral t with n - 1 degrees of freedom and noncentrality
    effect * sqrt(n), c the test's critical value; nctdtrinc inverts the upper tail exactly, and
    the lower tail (below 1e-6 at any useful power) is folded in by a fixed point that has
    converged after two rounds. nctdtr is nan far out in its tails (nc >~ 16), where the lower tail
    is below P(T < 0) = Phi(-nc): the smaller of the two is the tail wherever nctdtr has one."""
    from scipy.special import nctdtr, nctdtrinc, ndtr, stdtrit

    df = n - 1
    crit = float(stdtrit(df, 1 - alpha / 2))
    lower = 0.0
    for _ in range(3):
        nc = float(nctdtrinc(df, 1 - (power - lower), crit))
        lower = float(np.fmin(nctdtr(df, nc, -crit), ndtr(-nc)))
    return nc / n**0.5


def mde_from_se(se: float, alpha: float = 0.05, power: float = POWER) -> float | None:
    """For a corpus metric (macro-F1): (z_(1-alpha/2) + z_power) x the paired bootstrap's standard error."""
    from scipy.special import ndtri

    if se == 0:
        return None
    return float((ndtri(1 - alpha / 2) + ndtri(power)) * se)


def items_needed(effect: float, discordance: float, alpha: float = 0.05, power: float = POWER) -> int:
    """Test items a paired comparison of right/wrong answers needs to detect `effect` (a difference in
    proportions) when the two arms disagree on a `discordance` share of the items: the fewest for
    which the exact McNemar test has this power (harness.analysis.proportions)."""
    if not 0 < abs(effect) <= discordance <= 1:
        raise ValueError("need 0 < effect <= discordance <= 1")
    if not 0 < alpha < power < 1:  # at or below alpha, a test of no difference at all has the power
        raise ValueError("need 0 < alpha < power < 1")
    return proportions.items_needed_exact(abs(effect), discordance, alpha, power)


def permutations_for(family: int, alpha: float = 0.05) -> int:
    """Permutations a test needs when its p is compared with alpha / family: the smallest p a
    permutation test can give is 1 / (1 + n_perm), so 20 family / alpha of them put that floor a
    twentieth of the way below the corrected level (never fewer than N_PERM)."""
    return max(N_PERM, math.ceil(20 * family / alpha))


def design_effect(cluster_sizes: Sequence[int], icc: float) -> float:
    """Kish's design effect for items that come in clusters (hypotheses of one contract): how many
    times more items a test needs than with independent items, 1 + (m - 1) * icc, with m the
    size-weighted mean cluster size sum(m_i^2) / sum(m_i), which unequal clusters push up."""
    if not 0 <= icc <= 1:
        raise ValueError("icc must be in [0, 1]")
    sizes = [m for m in cluster_sizes if m > 0]
    if not sizes:
        return 1.0
    return 1 + (weighted_cluster_size(sizes) - 1) * icc


def weighted_cluster_size(cluster_sizes: Sequence[int]) -> float:
    """The size-weighted mean cluster size, sum(m_i^2) / sum(m_i): the size an item's cluster has."""
    return sum(m * m for m in cluster_sizes) / sum(cluster_sizes)


def permutation_test(
    a: Sequence[Scored],
    b: Sequence[Scored],
    m: Metric,
    labels: Sequence[str] = (),
    n_perm: int = N_PERM,
    seed: int = 0,
    groups: Groups | None = None,
) -> float:
    """Two-sided paired permutation test of the metric itself: under the null hypothesis the two
    variants' outputs on an item are exchangeable, so each item's pair is swapped at random and
    the metric difference recomputed. p = (1 + #|perm diff| >= |observed|) / (1 + n_perm).
    With `groups`, a cluster's items are swapped together (exchangeable as a whole)."""
    n = len(a)
    if n == 0:
        return 1.0
    rng = np.random.default_rng(seed)
    if groups is None:
        swaps = rng.random((n_perm, n)) < 0.5
    else:
        owner = np.empty(n, dtype=int)
        for k, ix in enumerate(groups):
            owner[ix] = k
        swaps = (rng.random((n_perm, len(groups))) < 0.5)[:, owner]
    if m.item_key is not None:  # a mean of per-item scores: a sign flip of each item's difference
        d = np.array(m.item_values(b)) - np.array(m.item_values(a))
        observed = abs(float(d.mean()))
        perm = np.abs(np.where(swaps, -d, d).mean(axis=1))
    elif m.name == "macro_f1":
        coded = code_labels([a, b], labels)
        pa, pb = coded.preds
        observed = abs(f1_of_codes(coded.golds, pb, coded.allowed) - f1_of_codes(coded.golds, pa, coded.allowed))
        perm = np.array(
            [
                abs(
                    f1_of_codes(coded.golds, np.where(row, pa, pb), coded.allowed)
                    - f1_of_codes(coded.golds, np.where(row, pb, pa), coded.allowed)
                )
                for row in swaps
            ]
        )
    else:
        observed = abs(m.corpus(b, labels) - m.corpus(a, labels))
        perm = np.array(
            [
                abs(
                    m.corpus([x if s else y for x, y, s in zip(a, b, row, strict=True)], labels)
                    - m.corpus([y if s else x for x, y, s in zip(a, b, row, strict=True)], labels)
                )
                for row in swaps
            ]
        )
    if observed == 0:
        return 1.0
    return float((1 + np.sum(perm >= observed - 1e-12)) / (1 + n_perm))


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Exact (binomial) McNemar p-value from the two discordant counts; 1.0 when none differ."""
    if a_only + b_only == 0:
        return 1.0
    from scipy.special import bdtr

    # statsmodels' mcnemar(exact=True): twice the binomial tail of the smaller count, at most 1
    return min(1.0, 2 * float(bdtr(min(a_only, b_only), a_only + b_only, 0.5)))


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values; None entries (no test) stay None and are not counted."""
    present = [p for p in pvalues if p is not None]
    if not present:
        return list(pvalues)
    # Holm: the k-th smallest of m p-values (k from 1) times m - k + 1, made non-decreasing, capped at 1
    order = np.argsort(present, kind="stable")
    stepped = np.minimum(1.0, np.maximum.accumulate(np.asarray(present)[order] * np.arange(len(present), 0, -1)))
    adjusted = iter(stepped[np.argsort(order)])
    return [float(next(adjusted)) if p is not None else None for p in pvalues]


def wait_percentiles(records: Sequence[Mapping[str, Any]]) -> dict[str, tuple[float, float, int]]:
    """Per arm: (p50, p95, requests) of the probe's wall times."""
    by: dict[str, list[float]] = {}
    for r in records:
        by.setdefault(str(r["variant"]), []).append(float(r["latency_s"]))
    return {v: (float(np.percentile(xs, 50)), float(np.percentile(xs, 95)), len(xs)) for v, xs in by.items()}
