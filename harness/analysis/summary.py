"""From stored records to the numbers behind a task's verdict: each arm's metric with its interval,
the paired comparisons against the prompt selected on validation, costs and break-even, the
learning curve, the majority-class floor, the seeds, the format spread and the noise floor. Pure.

Inputs are what a run directory holds (records, and the manifest's task and adapter facts), so a
report can be rebuilt, or several runs merged, without any model. The words come after, from
these numbers alone (harness.analysis.verdict).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from harness.analysis import cost as cost_mod
from harness.analysis import effort as effort_mod
from harness.analysis import fullcost
from harness.analysis import selection as sel_mod
from harness.analysis import worth as worth_mod
from harness.analysis.evidence import (
    below_baseline,
    effort_of,
    format_spread,
    learning_curve,
    majority_baseline,
    noise_floor,
    prompt_draws,
    prompt_worth,
    siblings,
)
from harness.analysis.records import (
    FormatSpread,
    Row,
    align,
    mean_of,
    scored,
    side_of,
    significant,
)
from harness.analysis.stats import (
    Estimate,
    Paired,
    holm,
    metric_ci,
    paired_compare,
    wait_percentiles,
)
from harness.taskkit.metrics import metric_fn


@dataclass(frozen=True)
class Findings:
    """Every number a task's verdict is written from (harness.analysis.verdict), and the records and
    facts it was computed on."""

    task: str
    info: Mapping[str, Any]  # the manifest's task facts
    adapters: Mapping[str, Mapping[str, Any]]  # variant -> adapter facts
    metric: str
    labels: tuple[str, ...]
    items: tuple[str, ...]  # the test items every arm answered
    clusters: tuple[str, ...] | None  # the source of each item, where items share one
    aligned: Mapping[str, Sequence[Mapping[str, Any]]]  # variant -> its records, item by item
    rows: tuple[Row, ...]
    selection: sel_mod.Selection
    adjusted: Mapping[str, float | None]  # Holm-adjusted p of the adapter arms
    prices: cost_mod.Prices
    curve: tuple[tuple[int, float, float, float], ...]
    smallest: int | None
    worth: worth_mod.Worth | None
    efforts: tuple[effort_mod.Effort, ...]
    arms: Mapping[str, int]  # side -> arms compared on validation
    majority: tuple[str, float] | None
    floor: Mapping[str, Paired]  # the chosen arms that do not clear the majority-class baseline
    draws: Mapping[int, str]  # seed -> the selected prompt's few-shot draw
    by_seed: Mapping[int, Paired]  # seed -> that seed's adapter against that seed's draw
    others: Mapping[str, Paired]  # secondary metric -> the selected adapter against the selected prompt
    combined: Mapping[str, Paired]  # the combined arm against each arm it combines
    noise: tuple[str, int, int] | None
    noise_reused: bool  # the noise floor's re-run answers came from an earlier run of the same batches
    spread: FormatSpread | None
    one_offs: tuple[cost_mod.OneOff, ...]  # (prompt side, adapter side)
    at_volume: tuple[cost_mod.AtVolume, ...]
    months_to_recover: float | None

    @property
    def best_prompt(self) -> str:
        return self.selection.prompt

    @property
    def best_adapter(self) -> str | None:
        return self.selection.adapter

    def row(self, variant: str) -> Row:
        return next(r for r in self.rows if r.variant == variant)


def find(
    task: str,
    info: Mapping[str, Any],
    records: Sequence[Mapping[str, Any]],
    adapters: Mapping[str, Mapping[str, Any]],
    prices: cost_mod.Prices,
    seed: int = 0,
    val_records: Sequence[Mapping[str, Any]] = (),
    noise_records: Sequence[Mapping[str, Any]] = (),
    format_records: Sequence[Mapping[str, Any]] = (),
    latency_records: Sequence[Mapping[str, Any]] = (),
) -> Findings:
    """`info`: the manifest's task facts (metrics, labels, kind, search); `adapters`: variant -> adapter
    facts (constrained twins and combined arms included); `val_records`: the validation records
    every arm was selected on. Selection lives in `selection`; this only reads its result."""
    metric = str(info["metrics"][0])
    labels = tuple(info.get("labels") or ())
    items, aligned = align(records, task)
    known = info.get("clusters") or {}
    clusters = tuple(str(known.get(i, i)) for i in items) if known else None
    sides = {v: side_of(adapters.get(v)) for v in aligned}
    if "prompt" not in sides.values():
        raise ValueError(f"{task}: no prompt variant to compare against")
    estimates = {v: metric_ci(scored(rs), metric, labels, seed=seed, clusters=clusters) for v, rs in aligned.items()}
    val, n_val = sel_mod.validation_scores(val_records, metric, labels, list(aligned))
    built_on = {v: str(f.get("built_on", v)) for v, f in adapters.items()}
    tokens = {v: mean_of(aligned[v], "prompt_tokens") for v in aligned}
    selection = sel_mod.select(sides, {v: e.value for v, e in estimates.items()}, val, n_val, built_on, tokens)
    prompt, adapter = selection.prompt, selection.adapter
    base = scored(aligned[prompt])
    paired = {
        v: paired_compare(base, scored(rs), metric, labels, seed=seed, clusters=clusters)
        for v, rs in aligned.items()
        if v != prompt
    }
    # Holm's family: the adapter arms against the selected prompt. The other prompts are not tested
    # against the prompt picked from them (that comparison is the selection, made on validation).
    names = [v for v in paired if sides[v] != "prompt"]
    adjusted = dict(zip(names, holm([paired[v].p_value for v in names]), strict=True))
    money = _costs(info, aligned, adapters, prices, selection, sides, seed, paired, adjusted)
    rows = _rows(info, aligned, adapters, estimates, paired, adjusted, sides, money, latency_records)
    chosen_decoding = next(r.constrained for r in rows if r.variant == adapter) if adapter else False
    curve, smallest = learning_curve([r for r in rows if r.side == "adapter" and r.constrained == chosen_decoding], adjusted)
    worth = prompt_worth(metric, labels, rows, aligned, prompt, chosen_decoding, seed, clusters) if adapter else None
    majority = majority_baseline(info, metric, [r["gold"] for r in aligned[prompt]])
    chosen = {v: aligned[v] for v in (prompt, adapter) if v}
    floor = below_baseline(metric, majority, chosen, seed, clusters) if majority else {}
    draws = prompt_draws(info, prompt, aligned) if adapter else {}
    by_seed, others, combined = {}, {}, {}
    if adapter:
        by_seed = {
            r.seed: paired_compare(scored(aligned[draws[r.seed]]), scored(aligned[r.variant]), metric, labels,
                                   seed=seed, clusters=clusters)
            for r in siblings(rows, adapter)
            if r.seed in draws
        }  # fmt: skip
        others = {
            m: paired_compare(base, scored(aligned[adapter]), m, labels, seed=seed, clusters=clusters)
            for m in info["metrics"][1:]
        }
        if selection.combined:
            mine = scored(aligned[selection.combined])
            combined = {o: paired_compare(scored(aligned[o]), mine, metric, labels, seed=seed) for o in (prompt, adapter)}
    return Findings(
        task, info, adapters, metric, labels, tuple(items), clusters, aligned, tuple(rows), selection, adjusted, prices,
        curve, smallest, worth, tuple(e for e in (effort_of(info, side) for side in ("prompt", "adapter")) if e is not None),
        {side: sum(1 for v in sides.values() if v == side) for side in ("prompt", "adapter")}, majority, floor, draws,
        by_seed, others, combined, noise_floor(aligned, noise_records),
        bool(noise_records) and all(r.get("cached") for r in noise_records),
        format_spread(info, metric, labels, aligned, format_records, prompt, adapter, adjusted.get(adapter or ""), seed,
                      clusters),
        money.one_offs, money.at_volume, money.months,
    )  # fmt: skip


@dataclass(frozen=True)
class _Money:
    costs: Mapping[str, float]  # serving $ per request
    train_costs: Mapping[str, float | None]
    break_even: Mapping[str, cost_mod.BreakEven | None]
    one_offs: tuple[cost_mod.OneOff, ...]
    at_volume: tuple[cost_mod.AtVolume, ...]
    months: float | None  # of the plan's traffic until the adapter's one-off cost is recovered


def _costs(
    info: Mapping[str, Any],
    aligned: Mapping[str, Sequence[Mapping[str, Any]]],
    adapters: Mapping[str, Mapping[str, Any]],
    prices: cost_mod.Prices,
    selection: sel_mod.Selection,
    sides: Mapping[str, str],
    seed: int,
    paired: Mapping[str, Paired],
    adjusted: Mapping[str, float | None],
) -> _Money:
    """Every arm's serving cost, training cost and break-even against the selected prompt; the
    chosen arms' one-off and monthly costs at the plan's traffic."""
    prompt, adapter = selection.prompt, selection.adapter
    costs = {
        v: cost_mod.cost_per_request(
            prices, mean_of(aligned[v], "latency_s"), mean_of(aligned[v], "prompt_tokens"),
            mean_of(aligned[v], "completion_tokens"),
        )
        for v in aligned
    }  # fmt: skip
    wrong = {v: fullcost.wrong_answers(info, aligned[v]) for v in aligned}
    effective = dict(costs)  # what a request costs, a wrong answer's price included: what break-even compares
    if prices.usd_per_error is not None:
        usd = prices.usd_per_error
        effective = {v: c + (sum(wrong[v]) / len(wrong[v]) * usd if wrong[v] else 0.0) for v, c in costs.items()}
    n_val_used = selection.n_val_items if selection.on == "validation" else 0
    adapter_once = fullcost.adapter_one_off(info, adapters, prices, n_val_used) if adapter else None
    prompt_once = fullcost.prompt_one_off(info, prompt, prices, n_val_used)
    # what deploying the adapter must pay back: its side's whole one-off cost less the prompt side's
    to_recover = (adapter_once.total - prompt_once.total) if adapter_once else 0.0
    train_costs: dict[str, float | None] = {}
    break_even: dict[str, cost_mod.BreakEven | None] = {}
    for v in aligned:
        facts = adapters.get(v)
        train_costs[v] = cost_mod.training_cost(prices, float(facts.get("train_device_s", 0.0))) if facts else None
        break_even[v] = None
        if facts is not None and train_costs[v] is not None:
            d = paired[v].diff if v in paired else None
            not_worse = d is None or not (significant(adjusted.get(v), d) and d.value < 0)
            be = cost_mod.break_even(to_recover, effective[prompt], effective[v], not_worse)
            if be.requests:
                be = replace(be, interval=_break_even_ci(to_recover, prices, aligned, prompt, v, wrong, seed))
            break_even[v] = be
    volume: tuple[cost_mod.AtVolume, ...] = ()
    months = None
    if adapter_once is not None and adapter is not None:
        both = adapter_once.total + prompt_once.total
        once = {"prompt": prompt_once.total, "adapter": adapter_once.total, "combined": both}
        volume = tuple(
            cost_mod.at_volume(v, prices, once[sides[v]], costs[v], fullcost.error_rate(info, aligned[v]))
            for v in dict.fromkeys([prompt, adapter, *(x for x in (selection.combined,) if x)])
        )
        recovered = break_even[adapter]
        months = cost_mod.months_to_recover(recovered.requests if recovered else None, prices)
    one_offs = (prompt_once, adapter_once) if adapter_once else ()
    return _Money(costs, train_costs, break_even, one_offs, volume, months)


def _rows(
    info: Mapping[str, Any],
    aligned: Mapping[str, Sequence[Mapping[str, Any]]],
    adapters: Mapping[str, Mapping[str, Any]],
    estimates: Mapping[str, Estimate],
    paired: Mapping[str, Paired],
    adjusted: Mapping[str, float | None],
    sides: Mapping[str, str],
    money: _Money,
    latency_records: Sequence[Mapping[str, Any]],
) -> list[Row]:
    labels = tuple(info.get("labels") or ())
    waits = wait_percentiles(latency_records)
    rows = []
    for v in aligned:
        facts = adapters.get(v) or {}
        pair = paired.get(v)
        rows.append(Row(
            variant=v, is_adapter=v in adapters, train_size=facts.get("train_size"), seed=int(facts.get("seed", 0)),
            metric=estimates[v], secondary={m: metric_fn(m)(scored(aligned[v]), labels) for m in info["metrics"][1:]},
            diff=pair.diff if pair else None, p_value=pair.p_value if pair else None, p_holm=adjusted.get(v),
            prompt_tokens=mean_of(aligned[v], "prompt_tokens"), completion_tokens=mean_of(aligned[v], "completion_tokens"),
            latency_s=mean_of(aligned[v], "latency_s"), cost_per_1k=money.costs[v] * 1000,
            train_cost=money.train_costs[v], break_even=money.break_even[v],
            overfit=bool(facts.get("val_loss_rising", False)), side=sides[v],
            constrained=bool(facts.get("constrained", False)),
            test=pair.test if pair else "", mde=pair.mde if pair else None,
            wait_p50=waits[v][0] if v in waits else None, wait_p95=waits[v][1] if v in waits else None,
        ))  # fmt: skip
    return rows


def _batches(records: Sequence[Mapping[str, Any]]) -> list[tuple[float, int]]:
    """(device seconds per request, requests) per batch of an arm's fresh answers: the requests of one
    batch share its timing (run.evaluate batches one variant at a time)."""
    fresh = [r for r in records if not r.get("cached")] or list(records)
    counts: dict[float, int] = defaultdict(int)
    for r in fresh:
        counts[float(r["latency_s"])] += 1
    return sorted(counts.items())


def _break_even_ci(
    to_recover: float,
    prices: cost_mod.Prices,
    aligned: Mapping[str, Sequence[Mapping[str, Any]]],
    prompt: str,
    adapter: str,
    wrong: Mapping[str, list[float]],
    seed: int,
) -> tuple[float, float | None] | None:
    def fixed(v: str) -> float:
        rs = aligned[v]
        tokens_p = sum(float(r["prompt_tokens"]) for r in rs) / len(rs)
        tokens_c = sum(float(r["completion_tokens"]) for r in rs) / len(rs)
        return cost_mod.cost_per_request(prices, 0.0, tokens_p, tokens_c)

    errors = None
    if prices.usd_per_error is not None and wrong[prompt] and wrong[adapter]:
        errors = (wrong[prompt], wrong[adapter], prices.usd_per_error)
    return cost_mod.break_even_interval(
        to_recover, _batches(aligned[prompt]), _batches(aligned[adapter]), fixed(prompt), fixed(adapter),
        prices.device_usd_per_hour, errors, seed=seed,
    )  # fmt: skip
