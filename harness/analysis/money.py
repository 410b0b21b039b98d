"""What each arm costs: per request (device time, tokens, and wrong answers where the plan prices
them), its own one-off cost, where its total crosses the selected prompt's, and the chosen arms
at the plan's traffic. Pure: reads records and a run's facts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from harness.analysis import cost as cost_mod
from harness.analysis import fullcost
from harness.analysis import selection as sel_mod
from harness.analysis.records import mean_of


@dataclass(frozen=True)
class Money:
    costs: Mapping[str, float]  # serving $ per request
    effective: Mapping[str, float]  # per request with wrong answers priced (= costs without that price)
    train_costs: Mapping[str, float | None]
    once: Mapping[str, float]  # each arm's own one-off cost (fullcost.arm_one_off)
    break_even: Mapping[str, cost_mod.BreakEven | None]
    one_offs: tuple[cost_mod.OneOff, ...]  # (prompt side, adapter side): the whole comparison
    at_volume: tuple[cost_mod.AtVolume, ...]
    months: float | None  # of the plan's traffic until the chosen adapter's total crosses the prompt's


def item_costs(prices: cost_mod.Prices, records: Sequence[Mapping[str, Any]], wrong: Sequence[float]) -> list[float]:
    """Each item's cost per request: its device time (a cached answer's time was measured in another
    run, so it counts at the arm's fresh mean: the vector's mean is the arm's cost), its tokens, and
    its wrong answer at the plan's price. Their mean is the arm's effective cost."""
    fresh = mean_of(records, "latency_s")
    usd = prices.usd_per_error or 0.0
    out = []
    for i, r in enumerate(records):
        secs = fresh if r.get("cached") else float(r["latency_s"])
        c = cost_mod.cost_per_request(prices, secs, float(r["prompt_tokens"]), float(r["completion_tokens"]))
        out.append(c + (wrong[i] * usd if wrong else 0.0))
    return out


def costs(
    info: Mapping[str, Any],
    aligned: Mapping[str, Sequence[Mapping[str, Any]]],
    adapters: Mapping[str, Mapping[str, Any]],
    prices: cost_mod.Prices,
    selection: sel_mod.Selection,
    sides: Mapping[str, str],
    seed: int,
) -> Money:
    """Every arm's serving cost, own one-off cost and break-even against the selected prompt; the
    chosen arms' one-off and monthly costs at the plan's traffic."""
    prompt, adapter = selection.prompt, selection.adapter
    per_request = {
        v: cost_mod.cost_per_request(
            prices, mean_of(aligned[v], "latency_s"), mean_of(aligned[v], "prompt_tokens"),
            mean_of(aligned[v], "completion_tokens"),
        )
        for v in aligned
    }  # fmt: skip
    wrong = {v: fullcost.wrong_answers(info, aligned[v]) for v in aligned}
    items = {v: item_costs(prices, aligned[v], wrong[v]) for v in aligned}
    effective = {v: sum(xs) / len(xs) for v, xs in items.items()}  # per request, wrong answers priced
    n_val = selection.n_val_items if selection.on == "validation" else 0
    once = {v: fullcost.arm_one_off(info, adapters, v, prompt, prices, n_val) for v in aligned}
    train_costs: dict[str, float | None] = {}
    break_even: dict[str, cost_mod.BreakEven | None] = {}
    for v in aligned:
        facts = adapters.get(v)
        train_costs[v] = cost_mod.training_cost(prices, float(facts.get("train_device_s", 0.0))) if facts else None
        break_even[v] = None
        if facts is not None:
            be = cost_mod.break_even(once[v], effective[v], once[prompt], effective[prompt])
            if be.requests:
                interval = cost_mod.break_even_interval(once[v] - once[prompt], items[prompt], items[v], seed=seed)
                be = replace(be, interval=interval)
            break_even[v] = be
    volume: tuple[cost_mod.AtVolume, ...] = ()
    months = None
    one_offs: tuple[cost_mod.OneOff, ...] = ()
    if adapter is not None:
        volume = tuple(
            cost_mod.at_volume(v, prices, once[v], per_request[v], fullcost.error_rate(info, aligned[v]))
            for v in dict.fromkeys([prompt, adapter, *(x for x in (selection.combined,) if x)])
        )
        crossed = break_even[adapter]
        months = cost_mod.months_to_recover(crossed.requests if crossed else None, prices)
        one_offs = (
            fullcost.prompt_one_off(info, prompt, prices, n_val),
            fullcost.adapter_one_off(info, adapters, prices, n_val),
        )
    return Money(per_request, effective, train_costs, once, break_even, one_offs, volume, months)
