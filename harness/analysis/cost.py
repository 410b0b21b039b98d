"""Cost per request, training cost and break-even. Pure.

cost per request = device seconds per request x $/hour / 3600 (+ $/token for hosted APIs);
training cost = training device seconds x $/hour / 3600;
break-even requests = one-off cost to recover / (prompt cost per request - adapter cost per request),
only when the adapter is at least as good as the prompt it replaces. The report passes the
adapter side's full one-off cost less the prompt side's (harness.analysis.fullcost).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.core.words import counted


@dataclass(frozen=True)
class Prices:
    device_usd_per_hour: float = 2.0  # an on-demand GPU-class machine; override per plan
    train_device_usd_per_hour: float | None = None  # None: same device price as serving
    usd_per_1k_prompt_tokens: float = 0.0  # hosted APIs only
    usd_per_1k_completion_tokens: float = 0.0
    usd_per_labelled_row: float = 0.0  # what labelling one training or validation row costs you
    requests_per_month: float | None = None  # your traffic: monthly figures need it
    months: float = 12.0  # the horizon of the total cost
    usd_per_error: float | None = None  # what one wrong answer costs you (tasks with a per-item correct/wrong)

    @property
    def train_rate(self) -> float:
        return self.device_usd_per_hour if self.train_device_usd_per_hour is None else self.train_device_usd_per_hour


def cost_per_request(prices: Prices, device_s_per_request: float, prompt_tokens: float, completion_tokens: float) -> float:
    return (
        device_s_per_request * prices.device_usd_per_hour / 3600
        + prompt_tokens / 1000 * prices.usd_per_1k_prompt_tokens
        + completion_tokens / 1000 * prices.usd_per_1k_completion_tokens
    )


def training_cost(prices: Prices, train_device_seconds: float) -> float:
    return train_device_seconds * prices.train_rate / 3600


@dataclass(frozen=True)
class BreakEven:
    requests: float | None  # None: never pays off (see reason)
    reason: str
    # 95% interval of `requests` (batches and items resampled); high None: some resamples never pay off
    interval: tuple[float, float | None] | None = None

    @property
    def sentence(self) -> str:
        """A clause for a verdict: "the one-off cost is recovered after 2,817 requests"."""
        if self.requests is None and self.reason.startswith("never: "):
            return f"the one-off cost is never recovered: {self.reason.removeprefix('never: ')}"
        if self.requests is None:
            return (
                "the one-off cost is never recovered on cost alone (each adapter request costs as much as a "
                "prompt request or more): pay for it only if the quality gain is worth it"
            )
        if self.requests == 0:
            return "there is no one-off cost to recover (the adapter side cost no more up front than the prompt side)"
        if self.interval is not None:
            low, high = self.interval
            upper = "never" if high is None else f"{high:,.0f}"
            return f"the one-off cost is recovered {self.reason} (95% CI {low:,.0f} to {upper})"
        return f"the one-off cost is recovered {self.reason}"


def break_even(train_cost: float, prompt_cost: float, adapter_cost: float, adapter_not_worse: bool) -> BreakEven:
    if not adapter_not_worse:
        return BreakEven(None, "never: the adapter is worse than the prompt")
    if train_cost <= 0:
        return BreakEven(0.0, "immediately: no one-off cost to recover")
    saving = prompt_cost - adapter_cost
    if saving <= 0:
        return BreakEven(
            None,
            "never on cost alone: each adapter request costs as much or more; "
            "pay for it only if the quality gain is worth it",
        )
    return BreakEven(math.ceil(train_cost / saving), f"after {math.ceil(train_cost / saving):,} requests")


@dataclass(frozen=True)
class OneOff:
    """What a side cost before serving its first request, all of it measured (or priced per row)."""

    device_usd: float  # training every adapter and sweep trial, or evaluating every prompt-search trial
    device_s: float
    rows: int  # labelled rows the side consumed
    rows_usd: float
    parts: tuple[str, ...]  # what the figure includes, in words

    @property
    def total(self) -> float:
        return self.device_usd + self.rows_usd


def one_off(device_usd_per_hour: float, device_s: float, rows: int, prices: Prices, parts: tuple[str, ...]) -> OneOff:
    return OneOff(device_s * device_usd_per_hour / 3600, device_s, rows, rows * prices.usd_per_labelled_row, parts)


@dataclass(frozen=True)
class AtVolume:
    """An arm at the user's traffic: one-off cost, monthly cost, and the total over the horizon."""

    arm: str
    one_off: float
    per_request: float  # serving USD per request
    error_per_request: float | None  # error rate x usd_per_error; None without that price
    volume: float  # requests a month (0: none given)
    months: float

    @property
    def monthly_serving(self) -> float:
        return self.per_request * self.volume

    @property
    def monthly_errors(self) -> float | None:
        return None if self.error_per_request is None else self.error_per_request * self.volume

    @property
    def monthly(self) -> float:
        return self.monthly_serving + (self.monthly_errors or 0.0)

    @property
    def total(self) -> float:
        return self.one_off + self.months * self.monthly


def at_volume(
    arm: str, prices: Prices, one_off_usd: float, cost_per_request_usd: float, error_rate: float | None
) -> AtVolume:
    """`error_rate`: the arm's share of wrong answers (None when the task has no per-item right/wrong)."""
    errors = None
    if prices.usd_per_error is not None and error_rate is not None:
        errors = error_rate * prices.usd_per_error
    return AtVolume(arm, one_off_usd, cost_per_request_usd, errors, prices.requests_per_month or 0.0, prices.months)


HOURS_PER_MONTH = 365.25 * 24 / 12


def half_up(x: float, digits: int = 0) -> float:
    """Rounded half up, as a page's script rounds (Math.round): the same text in both places."""
    scale = 10**digits
    return math.floor(x * scale + 0.5) / scale


def traffic_time(months: float) -> str:
    """A span of the user's traffic in the unit a reader thinks in: "under an hour", "5 hours",
    "3 days", "2.5 months", "4.1 years" (a bare "3e-05 months" says nothing to a decision-maker).
    `cards`' page script formats it the same way when its volume slider moves."""
    hours = months * HOURS_PER_MONTH
    if hours < 1:
        return "under an hour"
    if (n := half_up(hours)) < 24:
        return counted(int(n), "hour")
    if (n := half_up(hours / 24)) < 31:
        return counted(int(n), "day")
    if months < 24:
        return f"{half_up(months, 1):,.1f} months"
    return f"{half_up(months / 12, 1):,.1f} years"


def months_to_recover(requests: float | None, prices: Prices) -> float | None:
    """Break-even requests as months of the user's traffic."""
    if requests is None or not prices.requests_per_month:
        return None
    return requests / prices.requests_per_month


def break_even_interval(
    to_recover: float,
    prompt_batches: Sequence[tuple[float, int]],
    adapter_batches: Sequence[tuple[float, int]],
    prompt_fixed: float,
    adapter_fixed: float,
    device_usd_per_hour: float,
    errors: tuple[Sequence[float], Sequence[float], float] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float | None] | None:
    """The 95% interval of break-even requests. Each arm's device seconds per request come from its
    own batches, `(seconds per request, requests)`, resampled with replacement (a batch's requests
    share one timing, so the batch is the unit); `*_fixed` is the per-request cost that does not vary
    (token prices). With `errors` = (prompt wrong 0/1 per item, adapter's on the same items, usd per
    error), the items are resampled too, paired. High None: in more than alpha/2 of the resamples the
    adapter never pays off."""

    if to_recover <= 0 or not prompt_batches or not adapter_batches:
        return None
    if errors is None and (len(prompt_batches) < 2 or len(adapter_batches) < 2):
        return None  # one timing on a side: nothing to resample, and a zero-width interval would claim certainty
    rng = np.random.default_rng(seed)

    def per_request(batches: Sequence[tuple[float, int]]) -> np.ndarray:
        secs = np.array([b[0] for b in batches])
        sizes = np.array([b[1] for b in batches], dtype=float)
        idx = rng.integers(0, len(batches), size=(n_boot, len(batches)))
        return (secs[idx] * sizes[idx]).sum(axis=1) / sizes[idx].sum(axis=1)

    rate = device_usd_per_hour / 3600
    saving = (per_request(prompt_batches) - per_request(adapter_batches)) * rate + prompt_fixed - adapter_fixed
    if errors is not None:
        wrong_p, wrong_a, usd = (np.asarray(errors[0], float), np.asarray(errors[1], float), errors[2])
        idx = rng.integers(0, len(wrong_p), size=(n_boot, len(wrong_p)))
        saving = saving + (wrong_p[idx].mean(axis=1) - wrong_a[idx].mean(axis=1)) * usd
    requests = np.where(saving > 0, to_recover / np.where(saving > 0, saving, 1.0), np.inf)
    low, high = (float(x) for x in np.quantile(requests, [alpha / 2, 1 - alpha / 2], method="inverted_cdf"))
    return math.ceil(low) if math.isfinite(low) else low, (math.ceil(high) if math.isfinite(high) else None)
