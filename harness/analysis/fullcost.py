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
    # a sweep trial at the size and seed compare trains is the very adapter compare serves (the
    # same cache entry): its training is counted once, with the adapter
    served = {str(f.get("adapter")): float(f.get("train_device_s") or 0.0) for f in trained if f.get("adapter")}
    twice = sum(served.pop(str(t.get("adapter")), 0.0) for t in trials if t.get("adapter"))
    sweep_s = sum(float(t.get("device_s") or 0.0) for t in trials) - twice
    parts = [f"training {counted(len(trained), 'adapter')}"]
    if trials:
        parts.append(counted(len(trials), "sweep trial"))
    rows = training_rows(trained)
    parts.append(rows[1])
    if n_val:
        parts.append(f"{n_val:,} validation rows")
    return cost_mod.one_off(prices.train_rate, train_s + sweep_s, rows[0] + n_val, prices, tuple(parts))


def arm_one_off(
    info: Mapping[str, Any],
    adapters: Mapping[str, Mapping[str, Any]],
    arm: str,
    prompt: str,
    prices: cost_mod.Prices,
    n_val: int,
) -> float:
    """What producing one arm costs before its first request, the figure its break-even recovers
    and its row at the user's volume charges: a prompt, its search and its rows; an adapter (or its
    constrained twin), the sweep that tuned it, its own training and the rows it learned from and
    was chosen on (not its siblings': lora_n64 does not pay for lora_n256 or another seed); the
    combined arm, its adapter's and the prompt's (the validation rows once)."""
    facts = adapters.get(arm)
    if facts is None:
        return prompt_one_off(info, arm, prices, n_val).total
    base = adapters.get(str(facts.get("built_on") or arm), facts)
    train_s = float(base.get("train_device_s") or 0.0)
    trials = ((info.get("search") or {}).get("adapter") or {}).get("trials") or []
    sweep_s = sum(float(t.get("device_s") or 0.0) for t in trials)
    if base.get("adapter") and any(str(t.get("adapter")) == str(base["adapter"]) for t in trials):
        sweep_s -= train_s  # that trial trained this very adapter: its training is counted once
    rows = int(base.get("train_size") or 0) + n_val
    own = (train_s + sweep_s) * prices.train_rate / 3600 + rows * prices.usd_per_labelled_row
    if facts.get("side") == "combined":
        own += prompt_one_off(info, prompt, prices, n_val).total - n_val * prices.usd_per_labelled_row
    return own


def training_rows(trained: Sequence[Mapping[str, Any]]) -> tuple[int, str]:
    """The distinct training rows the adapter side learned from, and how they were counted: every
    seed draws its own subset, so the union (recorded as each adapter's `new_rows`); runs made
    before that was recorded count each seed's largest size, an upper bound."""
    if trained and all("new_rows" in f for f in trained):
        n = sum(int(f["new_rows"]) for f in trained)
        return n, f"{n:,} distinct training rows (every size and seed)"
    largest: dict[int, int] = {}
    for f in trained:
        seed = int(f.get("seed") or 0)
        largest[seed] = max(largest.get(seed, 0), int(f.get("train_size") or 0))
    n = sum(largest.values())
    return n, f"up to {n:,} training rows (each seed's largest size)"


def prompt_one_off(info: Mapping[str, Any], prompt: str, prices: cost_mod.Prices, n_val: int) -> cost_mod.OneOff:
    trials = ((info.get("search") or {}).get("prompt") or {}).get("trials") or []
    search_s = sum(float(t.get("device_s") or 0.0) for t in trials)
    entry = next((v for v in info.get("variants") or () if isinstance(v, Mapping) and v.get("name") == prompt), {})
    pool = shot_pool_size(info) if entry.get("shots") else 0
    parts = [f"prompt search {counted(len(trials), 'trial')}"] if trials else ["no prompt search"]
    booted = (info.get("bootstrap") or {}).get(prompt)
    if isinstance(booted, Mapping):  # the base model answering candidate shots, to keep the right ones
        search_s += float(booted.get("device_s") or 0.0)
        parts.append(f"bootstrapping its shots ({counted(int(booted.get('calls') or 0), 'model call')})")
    parts.append(f"a shot pool of {pool:,} rows" if pool else "no training rows")
    if n_val:
        parts.append(f"{n_val:,} validation rows")
    return cost_mod.one_off(prices.device_usd_per_hour, search_s, pool + n_val, prices, tuple(parts))


def shot_pool_size(info: Mapping[str, Any]) -> int:
    """The rows few-shot examples are drawn from: the training split less the validation carve-out
    and the rows that duplicate a test input (older runs recorded only the whole split)."""
    check = info.get("data_check") or {}
    pool = check.get("n_pool")
    return int(pool if pool is not None else check.get("n_train") or 0)


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
