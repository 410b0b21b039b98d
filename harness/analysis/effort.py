"""Tuning effort of each side, shown: expected best validation score against trials and
against device-seconds (Dodge et al. 2019, "Show your work"). Pure.

The expected maximum of n trials drawn without replacement from the N trials that ran: with
the scores sorted ascending, the i-th is the maximum of a random n-subset with probability
C(i-1, n-1) / C(N, n). At n = N it is the best score; at n = 1 the mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import comb
from typing import Any

from harness.core.words import counted


def expected_max(values: Sequence[float], n: int) -> float:
    if not values:
        raise ValueError("no trials")
    if not 1 <= n <= len(values):
        raise ValueError(f"n must be between 1 and {len(values)}, got {n}")
    ordered = sorted(values)
    total = comb(len(ordered), n)
    return sum(v * comb(i, n - 1) for i, v in enumerate(ordered)) / total


@dataclass(frozen=True)
class Effort:
    side: str  # "prompt" | "adapter"
    label: str  # "prompt search" | "adapter sweep"
    method: str
    trials: int
    device_s: float
    best: float
    curve: tuple[tuple[int, float, float], ...]  # (trials, expected best, expected device-seconds)


def effort(side: str, label: str, method: str, trials: Sequence[Mapping[str, Any]]) -> Effort | None:
    """`trials`: dicts with `metric` and `device_s` (every trial, resumed ones included)."""
    if not trials:
        return None
    scores = [float(t["metric"]) for t in trials]
    seconds = [float(t.get("device_s") or 0.0) for t in trials]
    per_trial = sum(seconds) / len(seconds)
    curve = tuple((n, expected_max(scores, n), n * per_trial) for n in range(1, len(scores) + 1))
    return Effort(side, label, method, len(trials), sum(seconds), max(scores), curve)


def budget_sentence(efforts: Sequence[Effort], arms: Mapping[str, int], on: str = "validation") -> str:
    """E.g. 'Tuning budget: prompt search 12 trials, 340 device-s; adapter sweep 6 trials, 1,900 device-s.'
    `on`: the split the arms were compared on (a run without validation records chose on test)."""
    parts = [f"{e.label} {counted(e.trials, 'trial')}, {e.device_s:,.0f} device-s" for e in efforts]
    for side in ("prompt", "adapter"):
        if not any(e.side == side for e in efforts) and arms.get(side):
            parts.append(f"{side} side untuned ({counted(arms[side], 'arm')} compared on {on})")
    return "Tuning budget: " + "; ".join(parts) + "." if parts else ""
