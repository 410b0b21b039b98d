"""Intervals and power for proportions of right answers: the Wilson interval of one arm's accuracy,
Tango's score interval of a paired difference, and the exact power of McNemar's test. Pure.

Why these and not the bootstrap: a percentile interval of a proportion near 0% or 100% is too
narrow (149 of 150 right resamples to [98.0, 100.0]), and two arms that agree on every item
resample to [0, 0], a claim of certainty 150 items cannot make. Tango's interval inverts the
same score statistic McNemar's test uses (at a difference of 0 it is McNemar's z), so the
interval and the test agree. The power of the exact test is summed over every outcome rather
than read off a normal approximation, since the exact test's rejection region is discrete.

Written by hand: statsmodels has the Wilson interval (the tests hold this one to it) but no paired
score interval and no exact McNemar power; importing it costs 0.5 s a report does not need.
"""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054


def _z(alpha: float) -> float:
    from scipy.special import ndtri

    return float(ndtri(1 - alpha / 2))


def wilson(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """The Wilson score interval (statsmodels' proportion_confint(method="wilson"))."""
    if n == 0:
        return 0.0, 1.0
    z = _z(alpha)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # at 0 or n the bound is the estimate itself: exactly, not a rounding error away from it
    return (0.0 if successes == 0 else min(p, centre - half)), (1.0 if successes == n else max(p, centre + half))


def _tango_z(b_only: int, a_only: int, n: int, delta: float) -> float:
    """Tango's (1998) score statistic for a paired difference `delta` = p_b - p_a, where `b_only`
    items only b gets right and `a_only` only a: the restricted maximum-likelihood discordance
    q21 under delta in closed form, then (b_only - a_only - n delta) / sqrt(n (2 q21 + delta (1 - delta)))."""
    big_a = 2 * n
    big_b = -b_only - a_only + (2 * n - b_only + a_only) * delta
    big_c = -a_only * delta * (1 - delta)
    q21 = (math.sqrt(max(0.0, big_b * big_b - 4 * big_a * big_c)) - big_b) / (2 * big_a)
    var = n * (2 * q21 + delta * (1 - delta))
    diff = b_only - a_only - n * delta
    if var <= 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / math.sqrt(var)


def tango(b_only: int, a_only: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """The score interval of p_b - p_a on n paired items: every delta the score test does not reject.
    Its statistic falls as delta rises, so each bound is a bisection."""
    if n == 0:
        return -1.0, 1.0
    z = _z(alpha)
    est = (b_only - a_only) / n

    def bound(lo: float, hi: float, inside_low: bool) -> float:
        # inside_low: lo is inside the interval, hi outside (the upper bound); else the reverse
        for _ in range(100):
            mid = (lo + hi) / 2
            inside = abs(_tango_z(b_only, a_only, n, mid)) <= z
            if inside == inside_low:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    low = -1.0 if abs(_tango_z(b_only, a_only, n, -1.0 + 1e-12)) <= z else bound(est, -1.0, True)
    high = 1.0 if abs(_tango_z(b_only, a_only, n, 1.0 - 1e-12)) <= z else bound(est, 1.0, True)
    return low, high


def _critical(n: int, alpha: float) -> np.ndarray:
    """For each count d = 0..n of discordant items, the largest smaller-side count the exact McNemar
    test rejects at (-1: none), 2 P(Binomial(d, 1/2) <= k) < alpha. The tail grows with k and the
    critical count never falls as d grows, so one walk up d finds them all."""
    from scipy.special import bdtr

    out = np.full(n + 1, -1)
    k = -1
    for d in range(1, n + 1):
        while k + 1 <= d // 2 and 2 * float(bdtr(k + 1, d, 0.5)) < alpha:
            k += 1
        out[d] = k
    return out


def mcnemar_power(n: int, effect: float, discordance: float, alpha: float = 0.05) -> float:
    """The exact power of the exact McNemar test on n paired items when the arms differ on a
    `discordance` share of items and b is right on (discordance + effect) / 2 of them: summed over
    every count of discordant items and every split of them."""
    if not 0 <= abs(effect) <= discordance <= 1:
        raise ValueError("need 0 <= |effect| <= discordance <= 1")
    return _power(n, effect, discordance, _critical(n, alpha))


def _power(n: int, effect: float, discordance: float, k: np.ndarray) -> float:
    from scipy.special import bdtr, bdtrc

    d = np.arange(n + 1)
    log_pd = _log_binom_pmf(d, n, discordance)
    p_b = (discordance + abs(effect)) / (2 * discordance) if discordance else 0.5
    # reject when the smaller side is at most k: b's count at most k, or at least d - k (k < d / 2,
    # so the two tails never overlap)
    with np.errstate(invalid="ignore"):
        rejects = np.where(k >= 0, bdtr(k, d, p_b) + bdtrc(d - k - 1, d, p_b), 0.0)
    return float(np.sum(np.exp(log_pd) * rejects))


def _log_binom_pmf(k: np.ndarray, n: int, p: float) -> np.ndarray:
    from scipy.special import gammaln

    if p <= 0:
        return np.where(k == 0, 0.0, -np.inf)
    if p >= 1:
        return np.where(k == n, 0.0, -np.inf)
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1) + k * math.log(p) + (n - k) * math.log1p(-p)


def connor(effect: float, discordance: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Connor's (1987) items for McNemar's test: (z_a sqrt(psi) + z_b sqrt(psi - delta^2))^2 / delta^2."""
    from scipy.special import ndtri

    za, zb = float(ndtri(1 - alpha / 2)), float(ndtri(power))
    return math.ceil((za * math.sqrt(discordance) + zb * math.sqrt(discordance - effect**2)) ** 2 / effect**2)


def items_needed_exact(effect: float, discordance: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """The fewest items whose exact McNemar power reaches `power`, from Connor's approximation: the
    exact test is more conservative, so the search walks up from a little below it. The power of
    an exact test saws up and down with n; this is the first n that reaches it."""
    n = max(2, int(connor(effect, discordance, alpha, power) * 0.8))
    critical = _critical(max(4 * n, 64), alpha)
    while True:
        if n >= len(critical):
            critical = _critical(2 * n, alpha)
        if _power(n, effect, discordance, critical[: n + 1]) >= power:
            return n
        n += 1


def mde_mcnemar(n: int, discordance: float, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """The smallest difference in proportions the exact McNemar test on these n items detects with
    this power when the arms differ on a `discordance` share of them (post hoc: the discordance is
    the one observed). None when even a difference of the whole discordance is not detectable."""
    if n < 2 or discordance <= 0 or mcnemar_power(n, discordance, discordance, alpha) < power:
        return None
    critical = _critical(n, alpha)
    lo, hi = 0.0, discordance
    for _ in range(40):
        mid = (lo + hi) / 2
        if _power(n, mid, discordance, critical) >= power:
            hi = mid
        else:
            lo = mid
    return hi
