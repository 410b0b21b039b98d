"""What the best prompt is worth in labelled training rows: where the adapter's learning curve
reaches the prompt's score, interpolated in log(rows), with a bootstrap interval over the test
items (the prompt and every adapter re-scored on the same resampled items). Pure.

The interpolation is a few lines written here: the curve has two to five points, it is read
on a log scale (learning curves are close to linear in log data), and each bootstrap resample
needs it once; no library function states that question directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

BELOW, ABOVE = "below", "above"  # the prompt is reached before the smallest size / beyond the largest


@dataclass(frozen=True)
class Worth:
    prompt: str
    rows: float  # training rows at which the curve reaches the prompt (a bound when `bound` is set)
    # the 95% interval; None: unbounded (the curve misses the prompt in more than 2.5% of resamples);
    # 0.0: censored below (the smallest size already reaches the prompt in that share of resamples)
    low: float | None
    high: float | None
    bound: str  # "" | BELOW | ABOVE
    sizes: tuple[int, ...]
    seeds: int  # adapters averaged per size


def rows_to_match(sizes: Sequence[int], curve: Sequence[float], target: float) -> tuple[float, str]:
    """The smallest number of training rows at which the curve (metric per size, ascending sizes)
    reaches `target`, interpolated linearly in log(rows) between the sizes around the first
    crossing. (sizes[0], BELOW) when the smallest size already reaches it; (sizes[-1], ABOVE) when
    no size does."""
    if len(sizes) != len(curve) or not sizes or list(sizes) != sorted(set(sizes)):
        raise ValueError("need ascending distinct sizes, one curve value each")
    if curve[0] >= target:
        return float(sizes[0]), BELOW
    for i in range(1, len(sizes)):
        if curve[i] >= target:
            t = (target - curve[i - 1]) / (curve[i] - curve[i - 1])
            lo, hi = math.log(sizes[i - 1]), math.log(sizes[i])
            return math.exp(lo + t * (hi - lo)), ""
    return float(sizes[-1]), ABOVE


def worth_in_rows(
    prompt: str,
    prompt_stat: Callable[[np.ndarray], float],
    curve_stats: Mapping[int, Sequence[Callable[[np.ndarray], float]]],
    resamples: Sequence[np.ndarray],
    n: int,
    alpha: float = 0.05,
    seed: int = 0,
) -> Worth | None:
    """`prompt_stat` and each size's adapters' statistics (one per seed) are the metric on an index
    array of the test items; `resamples` are the bootstrap's index arrays. Each resample also draws
    each size's seeds with replacement, so the interval carries training variance, not only test
    items. A resample in which the smallest size already reaches the prompt is censored below it
    (0.0), not recorded as that size. None without at least one trained size."""
    sizes = sorted(curve_stats)
    if not sizes:
        return None
    rng = np.random.default_rng(seed)

    def solve(idx: np.ndarray, picks: Mapping[int, np.ndarray] | None = None) -> tuple[float, str]:
        chosen = {s: [curve_stats[s][k] for k in picks[s]] if picks else curve_stats[s] for s in sizes}
        curve = [float(np.mean([f(idx) for f in chosen[s]])) for s in sizes]
        return rows_to_match(sizes, curve, prompt_stat(idx))

    rows, bound = solve(np.arange(n))
    draws = []
    for idx in resamples:
        picks = {s: rng.integers(0, len(curve_stats[s]), len(curve_stats[s])) for s in sizes}
        r, b = solve(idx, picks)
        draws.append(math.inf if b == ABOVE else 0.0 if b == BELOW else r)
    if draws:
        # inverted_cdf: no interpolation between a finite draw and an infinite (or censored) one
        q = [float(x) for x in np.quantile(np.array(draws), [alpha / 2, 1 - alpha / 2], method="inverted_cdf")]
        low, high = (None if math.isinf(x) else x for x in q)
    else:
        low = high = rows
    seeds = max(len(v) for v in curve_stats.values())
    return Worth(prompt, rows, low, high, bound, tuple(sizes), seeds)


def sentence(w: Worth | None) -> str:
    if w is None:
        return ""
    curve = " and ".join(f"{s:,}" for s in w.sizes)
    on = f"the adapter's learning curve ({curve} rows" + (f", mean of {w.seeds} seeds)" if w.seeds > 1 else ")")
    if w.bound == BELOW:
        return (
            f"The prompt {w.prompt} is worth fewer than {w.sizes[0]:,} labelled training rows: on {on} the "
            "smallest adapter already reaches it."
        )
    if w.bound == ABOVE:
        return (
            f"The prompt {w.prompt} is worth more than {w.sizes[-1]:,} labelled training rows: on {on} no adapter "
            "reaches it; train more rows to find out how many."
        )

    def bound_text(x: float | None) -> str:
        if x is None:
            return f"more than {w.sizes[-1]:,}"
        return f"fewer than {w.sizes[0]:,}" if x == 0 else f"{x:,.0f}"

    return (
        f"The prompt {w.prompt} is worth about {w.rows:,.0f} labelled training rows (interpolated in log rows "
        f"between the sizes trained; 95% CI {bound_text(w.low)} to {bound_text(w.high)}, test items and seeds "
        f"resampled) on {on}."
    )
