"""The decision rule: quality first, then cost and latency, and what would change the call. Pure.

- A quality win that is also the cheaper side at the user's volume: "Fine-tuning pays off".
- A quality win that costs more is said as such, with the volume or price of a wrong answer at
  which it flips.
- No detectable quality difference: cost and latency decide, with the detectable difference stated.
- A quality loss keeps the prompt, unless the plan prices wrong answers and the adapter still costs
  less in total at that price.

"Costs less" compares totals over the plan's horizon at its requests_per_month: each arm's own
one-off cost, then every request, wrong answers included where they are priced. Without a volume
the break-even (in requests) states the condition instead. The card's volume slider applies the
same rule in the page (harness.report.cards), from `short`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from harness.analysis import cost as cost_mod

WIN, NONE, LOSS = "win", "none", "loss"


@dataclass(frozen=True)
class Side:
    """A chosen arm's money and speed."""

    name: str
    once: float  # its own one-off cost, USD
    per_request: float  # serving USD per request
    error_rate: float | None  # share of wrong answers; None: the task has no right/wrong
    wait_s: float | None  # what a single request waits (p50), or device seconds per request

    def total(self, prices: cost_mod.Prices, volume: float) -> float:
        errors = (self.error_rate or 0.0) * (prices.usd_per_error or 0.0)
        return self.once + prices.months * volume * (self.per_request + errors)


@dataclass(frozen=True)
class Decision:
    action: str  # "adapter" | "prompt"
    quality: str  # WIN | NONE | LOSS: the adapter against the prompt on test
    headline: str  # one sentence that names the action
    flips: str  # the thresholds that would change it
    short: Mapping[str, str]  # the side that costs less at some volume -> the card's headline there
    cheaper: str | None  # the side that costs less at the plan's volume (None: no volume given)


def short_headlines(quality: str, priced: bool) -> dict[str, str]:
    """The headline at a volume where `adapter` or `prompt` costs less in total."""
    if quality == WIN:
        dear = (
            "Keep the prompt: the adapter's gain does not pay for its cost"
            if priced
            else ("Fine-tuning wins on quality but costs more")
        )
        return {"adapter": "Fine-tuning pays off", "prompt": dear}
    if quality == NONE:
        return {
            "adapter": "Choose the adapter: no detectable quality difference, and it costs less",
            "prompt": "Keep the prompt: no detectable quality difference, and it costs less",
        }
    cheap = "Choose the adapter on cost: worse, but cheaper even with wrong answers priced" if priced else "Keep the prompt"
    return {"adapter": cheap, "prompt": "Keep the prompt"}


def _usd(x: float) -> str:
    return f"${x:,.2f}" if abs(x) >= 0.01 or x == 0 else f"${x:.4f}"


def _times(a: float, b: float) -> str:
    """How many times b is a: "8.0x"."""
    return f"{b / a:.1f}x" if a > 0 else "far"


def decide(
    quality: str,
    diff: tuple[str, str, str],
    prompt: Side,
    adapter: Side,
    prices: cost_mod.Prices,
    break_even: cost_mod.BreakEven | None,
    detectable: str = "",
) -> Decision:
    """`diff`: the quality difference in words, (signed, unsigned, its interval and test):
    ("-3.0 points", "3.0 points", "95% CI -7.0 to 0.5, exact McNemar p = 0.11"); `detectable`: the
    difference these items detect ("6.1 points"), said when no difference is detected."""
    priced = prices.usd_per_error is not None
    short = short_headlines(quality, priced)
    volume = prices.requests_per_month
    cheaper = None
    if volume:
        cheaper = "adapter" if adapter.total(prices, volume) <= prompt.total(prices, volume) else "prompt"
    head = _headline(_Case(quality, diff, prompt, adapter, prices, break_even, detectable), cheaper)
    action = cheaper or ("adapter" if quality == WIN or (break_even is not None and break_even.requests == 0) else "prompt")
    if quality == LOSS and not (priced and cheaper == "adapter"):
        action = "prompt"
    if quality == WIN and cheaper == "prompt" and not priced:
        action = "adapter"  # better, at a price the plan does not weigh: said in the headline
    return Decision(action, quality, head, flips(prompt, adapter, prices), short, cheaper)


@dataclass(frozen=True)
class _Case:
    """What `decide` weighs, as one value for the sentence that says it."""

    quality: str
    diff: tuple[str, str, str]
    prompt: Side
    adapter: Side
    prices: cost_mod.Prices
    break_even: cost_mod.BreakEven | None
    detectable: str


def _headline(case: _Case, cheaper: str | None) -> str:
    quality, diff, prompt, adapter = case.quality, case.diff, case.prompt, case.adapter
    prices, break_even, detectable = case.prices, case.break_even, case.detectable
    a, p = adapter.name, prompt.name
    change, size, evidence = diff
    beats, behind, same = (
        f"{a} beats {p} by {change} ({evidence})",
        f"{a} is {size} behind {p} ({evidence})",
        f"{change}, {evidence}",
    )
    if cheaper is None:  # no volume: the break-even says where the adapter is the cheaper side
        when = _without_volume(break_even)
        found = f"; these items detect about {detectable}" if detectable else ""
        recovers = break_even is not None and break_even.requests is not None and break_even.cheaper_after == "adapter"
        if quality == WIN:
            head = "Fine-tuning pays off" if recovers else "Fine-tuning wins on quality but costs more"
            return f"{head}: {beats}; on cost, {when}."
        if quality == NONE and break_even is not None and break_even.requests == 0:
            return f"Choose the adapter: no detectable quality difference ({same}{found}), and {when}."
        if quality == NONE and recovers and break_even is not None:
            return (
                f"No detectable quality difference between {a} and {p} ({same}{found}): choose the adapter if you "
                f"will serve more than {break_even.requests:,.0f} requests (its break-even), else keep the prompt."
            )
        if quality == NONE:
            return f"Keep the prompt: no detectable quality difference ({same}{found}), and {when}."
        return f"Keep the prompt: {behind}."
    volume = prices.requests_per_month or 0.0
    ta, tp = adapter.total(prices, volume), prompt.total(prices, volume)
    at = f"at {volume:,.0f} requests a month over {prices.months:g} months"
    faster = ""
    if adapter.wait_s and prompt.wait_s and prompt.wait_s / adapter.wait_s >= 1.2:
        faster = f" and {_times(adapter.wait_s, prompt.wait_s)} faster"
    paid = ""
    if break_even is not None and break_even.requests and break_even.cheaper_after == "adapter" and volume:
        paid = f", paid back in {cost_mod.traffic_time(break_even.requests / volume)}"
    errors = f", wrong answers at {_usd(prices.usd_per_error)} each" if prices.usd_per_error is not None else ""
    money = f"({a} {_usd(ta)}, {p} {_usd(tp)}{errors})"
    if quality == WIN and cheaper == "adapter":
        return f"Fine-tuning pays off: {beats}, and costs {_times(ta, tp)} less {at} {money}{paid}."
    if quality == WIN and prices.usd_per_error is None:
        return (
            f"Fine-tuning wins on quality but costs more: {beats}, and costs {_usd(ta - tp)} more {at} "
            f"{money}: choose it if that gain is worth the difference to you."
        )
    if quality == WIN:
        return f"Keep the prompt: {beats}, but the gain does not pay for its cost {at} {money}."
    if quality == NONE:
        found = f"; these items detect about {detectable}" if detectable else ""
        if cheaper == "adapter":
            return (
                f"Choose the adapter: no detectable quality difference ({same}{found}), {_times(ta, tp)} cheaper"
                f"{faster} {at} {money}{paid}."
            )
        slower = ""
        if adapter.wait_s and prompt.wait_s and adapter.wait_s / prompt.wait_s >= 1.2:
            slower = f" and {_times(prompt.wait_s, adapter.wait_s)} faster"
        return (
            f"Keep the prompt: no detectable quality difference ({same}{found}), and it costs {_times(tp, ta)} less"
            f"{slower} {at} {money}."
        )
    if cheaper == "adapter" and prices.usd_per_error is not None:
        return f"Choose the adapter on cost: {behind}, but it costs {_usd(tp - ta)} less {at} {money}."
    return f"Keep the prompt: {behind}."


def _without_volume(break_even: cost_mod.BreakEven | None) -> str:
    if break_even is None or break_even.requests is None:
        return "the prompt costs less at every volume"
    if break_even.requests == 0:
        return "the adapter costs less from the first request"
    if break_even.cheaper_after == "adapter":
        return f"its extra one-off cost is recovered after {break_even.requests:,.0f} requests"
    return f"the adapter costs less only until {break_even.requests:,.0f} requests, the prompt after"


def _points(rate_gap: float) -> str:
    """An error-rate difference in words: "3.0 points above", "0.2 points below"."""
    return f"{abs(rate_gap) * 100:.1f} points {'above' if rate_gap >= 0 else 'below'}"


def flips(prompt: Side, adapter: Side, prices: cost_mod.Prices) -> str:
    """What would change the decision, from the same numbers: the monthly volume at which the two
    totals cross, the price of a wrong answer at which the more accurate side wins, and the
    accuracy gap at which it would at the plan's price."""
    months, volume = prices.months, prices.requests_per_month
    usd = prices.usd_per_error
    rate = lambda s: (s.error_rate or 0.0) * (usd or 0.0)  # noqa: E731
    d_once = adapter.once - prompt.once
    d_serve = adapter.per_request + rate(adapter) - prompt.per_request - rate(prompt)
    out = []
    crossing = -d_once / (months * d_serve) if d_serve != 0 and d_once * d_serve < 0 else None
    if crossing is not None and crossing >= 1:
        below, above = ("prompt", "adapter") if d_serve < 0 else ("adapter", "prompt")
        out.append(f"the {below} costs less below {crossing:,.0f} requests a month, the {above} above")
    elif crossing is not None:  # crossed within the first request a month: cheaper at any real volume
        out.append(f"the {'adapter' if d_serve < 0 else 'prompt'} costs less at any volume of a request a month or more")
    elif d_serve != 0 or d_once != 0:
        side = "adapter" if (d_once <= 0 and d_serve <= 0) else "prompt"
        out.append(f"the {side} costs less at every volume")
    if adapter.error_rate is not None and prompt.error_rate is not None and adapter.error_rate != prompt.error_rate:
        d_rate = adapter.error_rate - prompt.error_rate
        serve = adapter.per_request - prompt.per_request
        v = volume or 0.0
        # totals equal: d_once + months v (serve + E d_rate) = 0; without a volume, per request
        price = -(d_once / (months * v) + serve) / d_rate if v else -serve / d_rate
        accurate = "adapter" if d_rate < 0 else "prompt"
        if price > 0:
            now = f" (the plan prices one at {_usd(usd)})" if usd is not None else ""
            out.append(f"at {_usd(price)} or more per wrong answer the {accurate} wins{now}")
        else:
            out.append(f"the {accurate} is more accurate and cheaper per request: no price of a wrong answer turns that")
        if usd and v:
            gap = -(d_once / (months * v) + serve) / usd
            out.append(
                f"at {_usd(usd)} per wrong answer the adapter costs less as long as its error rate is no more than "
                f"{_points(gap)} the prompt's (it is {_points(d_rate)})"
            )
    return ("What would change the decision: " + "; ".join(out) + ".") if out else ""
