"""Cost per request, training cost and break-even. Pure.

cost per request = device seconds per request x $/hour / 3600 (+ $/token for hosted APIs);
training cost = training device seconds x $/hour / 3600;
break-even = where an arm's total cost (its own one-off cost, then each request) crosses the
prompt's, in either direction: an arm dearer up front and cheaper per request recovers its extra
cost after that many requests; one cheaper up front and dearer per request is overtaken there.
Quality is weighed by the decision (harness.analysis.decision), or here through a price per wrong
answer when the plan sets one.
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
    """Where an arm's total cost (its own one-off cost, then each request) crosses the selected
    prompt's. `requests` None: no crossover, the prompt costs less at every volume; 0: the arm
    costs less from the first request; else the crossover, beyond which `cheaper_after` costs less."""

    requests: float | None
    cheaper_after: str  # "adapter" | "prompt" ("adapter" stands for any arm against the prompt)
    # 95% interval of `requests`, items resampled paired; high None: some resamples never cross
    interval: tuple[float, float | None] | None = None

    @property
    def sentence(self) -> str:
        """A clause for a verdict: "its extra one-off cost is recovered after 2,817 requests"."""
        span = ""
        if self.interval is not None:
            low, high = self.interval
            span = f" (95% CI {low:,.0f} to {'never' if high is None else f'{high:,.0f}'})"
        if self.requests is None:
            return "it never costs less than the prompt (no cheaper up front, and as dear or dearer per request)"
        if self.requests == 0:
            return "it costs less from the first request (no dearer up front, and cheaper per request)"
        if self.cheaper_after == "prompt":
            return (
                f"it costs less up front but more per request, so the prompt is cheaper after "
                f"{self.requests:,.0f} requests{span}"
            )
        return f"its extra one-off cost is recovered after {self.requests:,.0f} requests{span}"


def break_even(arm_once: float, arm_per_request: float, prompt_once: float, prompt_per_request: float) -> BreakEven:
    """The crossover of two straight lines, total = one-off + requests x per request, either way."""
    extra_once = arm_once - prompt_once
    saving = prompt_per_request - arm_per_request
    if extra_once <= 0 and saving >= 0:
        return BreakEven(0.0, "adapter")
    if extra_once >= 0 and saving <= 0:
        return BreakEven(None, "prompt")
    return BreakEven(float(math.ceil(extra_once / saving)), "adapter" if saving > 0 else "prompt")


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
    extra_once: float,
    prompt_costs: Sequence[float],
    arm_costs: Sequence[float],
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float | None] | None:
    """The 95% interval of the crossover `extra_once / (mean prompt cost - mean arm cost)`, the
    items resampled with replacement and paired (both arms answered the same items): what varies
    is which items the traffic brings, each with its answers' tokens, device time and right or
    wrong. `*_costs`: each item's cost per request for each arm, in the same order. High None: in
    more than alpha/2 of the resamples the two never cross."""
    p, a = np.asarray(prompt_costs, float), np.asarray(arm_costs, float)
    if extra_once == 0 or len(p) < 2 or len(p) != len(a):
        return None
    idx = np.random.default_rng(seed).integers(0, len(p), size=(n_boot, len(p)))
    saving = p[idx].mean(axis=1) - a[idx].mean(axis=1)
    crossing = saving * extra_once > 0  # the same sign: the dearer-up-front side is the cheaper per request
    requests = np.where(crossing, extra_once / np.where(crossing, saving, 1.0), np.inf)
    low, high = (float(x) for x in np.quantile(requests, [alpha / 2, 1 - alpha / 2], method="inverted_cdf"))
    if np.ptp(saving) <= 1e-9 * np.abs(saving).max():
        return None  # every resample gives the same figure: nothing varies, and an interval would claim certainty
    return math.ceil(low) if math.isfinite(low) else low, (math.ceil(high) if math.isfinite(high) else None)
