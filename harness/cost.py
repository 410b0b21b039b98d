"""Cost per request, training cost and break-even. Pure.

cost per request = device seconds per request x $/hour / 3600 (+ $/token for hosted APIs);
training cost = training device seconds x $/hour / 3600;
break-even requests = training cost / (prompt cost per request - adapter cost per request),
only when the adapter is at least as good as the prompt it replaces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Prices:
    device_usd_per_hour: float = 2.0  # an on-demand GPU-class machine; override per plan
    train_device_usd_per_hour: float | None = None  # None: same device price as serving
    usd_per_1k_prompt_tokens: float = 0.0  # hosted APIs only
    usd_per_1k_completion_tokens: float = 0.0

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

    @property
    def sentence(self) -> str:
        """A clause for a verdict: "the training cost is recovered after 2,817 requests"."""
        if self.requests is None and self.reason.startswith("never: "):
            return f"the training cost is never recovered: {self.reason.removeprefix('never: ')}"
        if self.requests is None:
            return (
                "the training cost is never recovered on cost alone (each adapter request costs as much as a "
                "prompt request or more): pay for it only if the quality gain is worth it"
            )
        if self.requests == 0:
            return "there is no training cost to recover"
        return f"the training cost is recovered {self.reason}"


def break_even(train_cost: float, prompt_cost: float, adapter_cost: float, adapter_not_worse: bool) -> BreakEven:
    if not adapter_not_worse:
        return BreakEven(None, "never: the adapter is worse than the prompt")
    if train_cost <= 0:
        return BreakEven(0.0, "immediately: no training cost")
    saving = prompt_cost - adapter_cost
    if saving <= 0:
        return BreakEven(
            None,
            "never on cost alone: each adapter request costs as much or more; "
            "pay for it only if the quality gain is worth it",
        )
    return BreakEven(math.ceil(train_cost / saving), f"after {math.ceil(train_cost / saving):,} requests")
