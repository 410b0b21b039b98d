"""Aggregates, bootstrap confidence intervals, paired tests, Holm correction. Pure.

The bootstrap is written here (a few lines of numpy) rather than taken from
scipy.stats.bootstrap because the statistics are corpus metrics such as macro-F1 that are
not vectorisable, and the paired version must resample the *same* items for both variants.
McNemar and Holm come from statsmodels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from harness.scoring import BINARY_METRICS, Scored, metric_fn, per_item_value

N_BOOT = 1000


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float


def _resample_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def bootstrap_ci(
    items: Sequence[Scored],
    metric: Callable[[Sequence[Scored], Sequence[str]], float],
    labels: Sequence[str] = (),
    n_boot: int = N_BOOT,
    seed: int = 0,
    alpha: float = 0.05,
) -> Estimate:
    """Percentile bootstrap over items. One item (or none) gives a zero-width interval."""
    value = metric(items, labels)
    if len(items) < 2:
        return Estimate(value, value, value)
    idx = _resample_indices(len(items), n_boot, seed)
    stats = np.array([metric([items[i] for i in row], labels) for row in idx])
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return Estimate(value, float(low), float(high))


@dataclass(frozen=True)
class Paired:
    diff: Estimate  # metric(b) - metric(a) with its paired bootstrap CI
    p_mcnemar: float | None  # exact McNemar, accuracy-type metrics only
    b_wins: int  # items b got right and a wrong (binary metrics)
    a_wins: int


def paired_compare(
    a: Sequence[Scored],
    b: Sequence[Scored],
    metric_name: str,
    labels: Sequence[str] = (),
    n_boot: int = N_BOOT,
    seed: int = 0,
    alpha: float = 0.05,
) -> Paired:
    """Compare variant b against a on the same items, in the same order."""
    if len(a) != len(b):
        raise ValueError("paired comparison needs the same items for both variants")
    metric = metric_fn(metric_name)
    diff = metric(b, labels) - metric(a, labels)
    if len(a) < 2:
        est = Estimate(diff, diff, diff)
    else:
        idx = _resample_indices(len(a), n_boot, seed)
        stats = np.array([metric([b[i] for i in row], labels) - metric([a[i] for i in row], labels) for row in idx])
        low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
        est = Estimate(diff, float(low), float(high))
    va = np.array([per_item_value(metric_name, x) for x in a])
    vb = np.array([per_item_value(metric_name, x) for x in b])
    b_wins = int(np.sum((vb > 0.5) & (va <= 0.5)))
    a_wins = int(np.sum((va > 0.5) & (vb <= 0.5)))
    p = mcnemar_exact(a_wins, b_wins) if metric_name in BINARY_METRICS or metric_name == "macro_f1" else None
    return Paired(est, p, b_wins, a_wins)


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Exact (binomial) McNemar p-value from the two discordant counts; 1.0 when none differ."""
    if a_only + b_only == 0:
        return 1.0
    from statsmodels.stats.contingency_tables import mcnemar

    return float(mcnemar([[0, a_only], [b_only, 0]], exact=True).pvalue)


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values; None entries (no test) stay None and are not counted."""
    present = [p for p in pvalues if p is not None]
    if not present:
        return list(pvalues)
    from statsmodels.stats.multitest import multipletests

    adjusted = iter(multipletests(present, method="holm")[1])
    return [float(next(adjusted)) if p is not None else None for p in pvalues]
