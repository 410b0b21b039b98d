"""The full cost of each side, and each arm at the user's volume. Pure: reads a run's task facts.

One-off cost of the adapter side: every adapter trained for the task (each size and seed of the
learning curve, not only the one deployed) and every adapter-sweep trial, in training
device-seconds, plus the labelled rows it learned from and was chosen on. Of the prompt side:
every prompt-search trial's evaluation device-seconds, plus the labelled rows it drew examples
from and was chosen on. Labelled rows cost `usd_per_labelled_row` (default 0, and said so).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.analysis import cost as cost_mod
from harness.core.words import counted
from harness.taskkit.metrics import BINARY_METRICS, metric


def adapter_one_off(
    info: Mapping[str, Any], adapters: Mapping[str, Mapping[str, Any]], prices: cost_mod.Prices, n_val: int
) -> cost_mod.OneOff:
    trained = [f for f in adapters.values() if not f.get("built_on") and f.get("side") != "combined"]
    train_s = sum(float(f.get("train_device_s") or 0.0) for f in trained)
    trials = ((info.get("search") or {}).get("adapter") or {}).get("trials") or []
    sweep_s = sum(float(t.get("device_s") or 0.0) for t in trials)
    largest = max((int(f.get("train_size") or 0) for f in trained), default=0)
    parts = [f"training {counted(len(trained), 'adapter')}"]
    if trials:
        parts.append(counted(len(trials), "sweep trial"))
    parts.append(f"{largest:,} training rows (the largest size trained)")
    if n_val:
        parts.append(f"{n_val:,} validation rows")
    return cost_mod.one_off(prices.train_rate, train_s + sweep_s, largest + n_val, prices, tuple(parts))


def prompt_one_off(info: Mapping[str, Any], prompt: str, prices: cost_mod.Prices, n_val: int) -> cost_mod.OneOff:
    trials = ((info.get("search") or {}).get("prompt") or {}).get("trials") or []
    search_s = sum(float(t.get("device_s") or 0.0) for t in trials)
    entry = next((v for v in info.get("variants") or () if isinstance(v, Mapping) and v.get("name") == prompt), {})
    pool = int((info.get("data_check") or {}).get("n_train") or 0) if entry.get("shots") else 0
    parts = [f"prompt search {counted(len(trials), 'trial')}"] if trials else ["no prompt search"]
    parts.append(f"a shot pool of {pool:,} rows" if pool else "no training rows")
    if n_val:
        parts.append(f"{n_val:,} validation rows")
    return cost_mod.one_off(prices.device_usd_per_hour, search_s, pool + n_val, prices, tuple(parts))


def wrong_answers(info: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> list[float]:
    """1.0 per wrong answer, 0.0 per right one, from the task's first right/wrong metric; [] when it has none."""

    binary = next((m for m in info.get("metrics") or () if m in BINARY_METRICS), None)
    if binary is None:
        return []
    key = metric(binary).item_key
    assert key is not None
    return [1.0 - float(r["scores"].get(key, 0.0)) for r in records]


def error_rate(info: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> float | None:
    """The share of wrong answers; None when the task has no right/wrong metric."""
    wrong = wrong_answers(info, records)
    return sum(wrong) / len(wrong) if wrong else None


def _usd(x: float) -> str:
    return f"${x:,.2f}" if x >= 0.01 or x == 0 else f"${x:.4f}"


def one_off_sentence(adapter: cost_mod.OneOff, prompt: cost_mod.OneOff, prices: cost_mod.Prices) -> str:
    rows = f" at ${prices.usd_per_labelled_row:g} a labelled row"
    return (
        f"One-off costs: the adapter side {_usd(adapter.total)} ({', '.join(adapter.parts)}), the prompt side "
        f"{_usd(prompt.total)} ({', '.join(prompt.parts)}){rows}"
        + (" (set usd_per_labelled_row to price them)" if prices.usd_per_labelled_row == 0 else "")
        + "."
    )


def volume_sentence(arms: Sequence[cost_mod.AtVolume], prices: cost_mod.Prices) -> str:
    if not prices.requests_per_month:
        return ""
    errors = prices.usd_per_error is not None and any(a.monthly_errors is not None for a in arms)
    each = "; ".join(
        f"{a.arm} {_usd(a.total)} ({_usd(a.one_off)} once, {_usd(a.monthly)} a month"
        + (f" of which {_usd(a.monthly_errors or 0.0)} wrong answers" if errors else "")
        + ")"
        for a in sorted(arms, key=lambda a: a.total)
    )
    priced = f", wrong answers at {_usd(prices.usd_per_error or 0.0)} each" if errors else ""
    return f"At {prices.requests_per_month:,.0f} requests a month over {prices.months:g} months{priced}: {each}."
