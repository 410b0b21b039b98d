"""From stored records to the numbers behind a task's verdict: each arm's metric with its interval,
the paired comparisons against the prompt selected on validation, costs and break-even, the
learning curve, the majority-class floor, the seeds, the format spread and the noise floor. Pure.

Inputs are what a run directory holds (records, and the manifest's task and adapter facts), so a
report can be rebuilt, or several runs merged, without any model. The words come after, from
these numbers alone (harness.analysis.verdict).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from harness.analysis import cost as cost_mod
from harness.analysis import effort as effort_mod
from harness.analysis import fullcost
from harness.analysis import selection as sel_mod
from harness.analysis import worth as worth_mod
from harness.analysis.stats import (
    Estimate,
    Paired,
    column_stats,
    groups_of,
    holm,
    metric_ci,
    paired_compare,
    resamples,
    wait_percentiles,
)
from harness.taskkit.metrics import BINARY_METRICS, Scored, metric_fn
from harness.taskkit.metrics import metric as metric_of

ALPHA = 0.05


@dataclass(frozen=True)
class Row:
    variant: str
    is_adapter: bool
    train_size: int | None
    seed: int
    metric: Estimate
    secondary: dict[str, float]
    diff: Estimate | None  # against the best prompt, paired on the same items
    p_value: float | None
    p_holm: float | None
    prompt_tokens: float
    completion_tokens: float
    latency_s: float
    cost_per_1k: float
    train_cost: float | None
    break_even: cost_mod.BreakEven | None
    overfit: bool = False
    side: str = "prompt"  # "prompt" | "adapter" | "combined"
    constrained: bool = False
    test: str = ""  # the paired test behind p_value: the metric's own (scoring.metric)
    mde: float | None = None  # smallest difference from the selected prompt these items detect
    wait_p50: float | None = None  # seconds a single request waits (the latency probe, concurrency 1)
    wait_p95: float | None = None


@dataclass(frozen=True)
class TaskSummary:
    task: str
    metric: str
    n_items: int
    rows: tuple[Row, ...]
    best_prompt: str
    best_adapter: str | None
    verdict: str
    learning_curve: tuple[tuple[int, float, float, float], ...]  # (size, mean metric, low, high)
    smallest_winning_size: int | None
    confusion: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    disagreements: tuple[dict[str, Any], ...] = ()
    training: tuple[dict[str, Any], ...] = ()  # per adapter and epoch: train and validation loss
    majority: tuple[str, float] | None = None  # (commonest training label, its share of the test items)
    retention: tuple[RetentionRow, ...] = ()
    data_warnings: tuple[str, ...] = ()
    selection: sel_mod.Selection | None = None
    selection_note: str = ""
    efforts: tuple[effort_mod.Effort, ...] = ()
    combined: str = ""  # does the selected adapter with the selected prompt beat both?
    noise: tuple[str, int, int] | None = None  # (arm, answers changed, items) when re-run in another batch order
    formats: FormatSpread | None = None
    worth: worth_mod.Worth | None = None  # the selected prompt in training rows (the learning curve)
    one_offs: tuple[cost_mod.OneOff, ...] = ()  # (prompt side, adapter side): everything paid before serving
    at_volume: tuple[cost_mod.AtVolume, ...] = ()  # the chosen arms at the plan's requests_per_month


@dataclass(frozen=True)
class FormatSpread:
    """The selected prompt under meaning-preserving format perturbations, on the test items."""

    arm: str
    original: float  # the metric as the prompt was written
    values: tuple[tuple[str, str, float], ...]  # (arm name, what changed, metric) per perturbed format
    claim: str = ""  # the verdict's direction ("the adapter beats the prompt"); "" without an adapter
    holds: int = 0  # formats in which that claim holds


@dataclass(frozen=True)
class RetentionRow:
    """What specialising cost elsewhere: an adapter against the base model on another task."""

    source: str
    adapter: str
    task: str
    metric: str
    base: Estimate
    tuned: Estimate
    diff: Estimate
    p_value: float | None
    sentence: str


@dataclass(frozen=True)
class Findings:
    """Every number a task's verdict is written from (harness.analysis.verdict), and the records and
    facts it was computed on."""

    task: str
    info: Mapping[str, Any]  # the manifest's task facts
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
        task, info, metric, labels, tuple(items), clusters, aligned, tuple(rows), selection, adjusted, prices, curve,
        smallest, worth, tuple(e for e in (effort_of(info, side) for side in ("prompt", "adapter")) if e is not None),
        {side: sum(1 for v in sides.values() if v == side) for side in ("prompt", "adapter")}, majority, floor, draws,
        by_seed, others, combined, noise_floor(aligned, noise_records),
        bool(noise_records) and all(r.get("cached") for r in noise_records),
        format_spread(info, metric, labels, aligned, format_records, prompt, adapter, adjusted.get(adapter or ""), seed,
                      clusters),
        money.one_offs, money.at_volume, money.months,
    )  # fmt: skip


def mean_of(records: Sequence[Mapping[str, Any]], key: str) -> float:
    """An arm's mean of a record field; for time, of its fresh answers (a cached answer's time was
    measured in another run, in another batch)."""
    rs = [r for r in records if not r.get("cached")] if key == "latency_s" else records
    rs = rs or records
    return sum(float(r[key]) for r in rs) / len(rs)


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


def scored(records: Sequence[Mapping[str, Any]]) -> list[Scored]:
    return [Scored(r["prediction"], r["gold"], dict(r["scores"])) for r in records]


def significant(p: float | None, diff: Estimate) -> bool:
    if p is not None:
        return p < ALPHA
    return diff.low > 0 or diff.high < 0


def side_of(facts: Mapping[str, Any] | None) -> str:
    if facts is None:
        return "prompt"
    return "combined" if facts.get("side") == "combined" else "adapter"


def align(records: Sequence[Mapping[str, Any]], task: str) -> tuple[list[str], dict[str, list[Mapping[str, Any]]]]:
    by_variant: dict[str, dict[str, Mapping[str, Any]]] = defaultdict(dict)
    for r in records:
        by_variant[r["variant"]].setdefault(r["item"], r)
    item_sets = {frozenset(v) for v in by_variant.values()}
    items = sorted(frozenset.intersection(*item_sets)) if item_sets else []
    if not items:
        raise ValueError(f"{task}: no items shared by all variants")
    return items, {v: [recs[i] for i in items] for v, recs in by_variant.items()}


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


def prompt_worth(
    metric: str,
    labels: Sequence[str],
    rows: Sequence[Row],
    aligned: Mapping[str, Sequence[Mapping[str, Any]]],
    prompt: str,
    constrained: bool,
    seed: int,
    clusters: Sequence[str] | None,
) -> worth_mod.Worth | None:
    """The selected prompt in training rows, on the learning curve of the adapters with the
    selected adapter's decoding (each size's seeds averaged)."""
    by_size: dict[int, list[str]] = defaultdict(list)
    for r in rows:
        if r.side == "adapter" and r.constrained == constrained and r.train_size:
            by_size[int(r.train_size)].append(r.variant)
    names = [prompt] + [v for vs in by_size.values() for v in vs]
    fns = dict(zip(names, column_stats(metric_of(metric), labels, [scored(aligned[v]) for v in names]), strict=True))
    n = len(aligned[prompt])
    return worth_mod.worth_in_rows(
        prompt,
        fns[prompt],
        {s: [fns[v] for v in vs] for s, vs in by_size.items()},
        resamples(n, seed=seed, groups=groups_of(clusters)),
        n,
    )


def format_spread(
    info: Mapping[str, Any],
    metric: str,
    labels: Sequence[str],
    aligned: Mapping[str, Sequence[Mapping[str, Any]]],
    format_records: Sequence[Mapping[str, Any]],
    prompt: str,
    adapter: str | None,
    p_adapter: float | None,
    seed: int,
    clusters: Sequence[str] | None = None,
) -> FormatSpread | None:
    """The selected prompt's metric in each perturbed format (the manifest's `formats`, run on the
    same test items), and in how many of them the verdict's direction holds: the adapter compared
    with the prompt in that format, paired, with the metric's own test."""
    spec = info.get("formats") or {}
    if spec.get("of") != prompt or not format_records:
        return None
    items = [r["item"] for r in aligned[prompt]]
    by_arm: dict[str, dict[str, Mapping[str, Any]]] = defaultdict(dict)
    for r in format_records:
        by_arm[str(r["variant"])][r["item"]] = r
    claim, test = "", None
    if adapter is not None:
        main = paired_compare(
            scored(aligned[prompt]), scored(aligned[adapter]), metric, labels, seed=seed, clusters=clusters
        )
        direction = 1 if main.diff.value > 0 else -1
        if significant(p_adapter, main.diff):
            claim = "the adapter beats the prompt" if direction > 0 else "the prompt beats the adapter"

            def test(d: Paired) -> bool:
                return d.diff.value * direction > 0 and significant(d.p_value, d.diff)
        else:
            claim = "the difference stays undetectable"

            def test(d: Paired) -> bool:
                return not significant(d.p_value, d.diff)

    values, holds = [], 0
    for f in spec.get("variants", []):
        recs = by_arm.get(str(f["name"]), {})
        if not all(i in recs for i in items):
            continue  # an unfinished format (an interrupted run) is left out, never scored on fewer items
        these = scored([recs[i] for i in items])
        values.append((str(f["name"]), str(f.get("describe", "")), metric_fn(metric)(these, labels)))
        if adapter is not None and test is not None:
            holds += test(paired_compare(these, scored(aligned[adapter]), metric, labels, seed=seed, clusters=clusters))
    if not values:
        return None
    original = metric_fn(metric)(scored(aligned[prompt]), labels)
    return FormatSpread(prompt, original, tuple(values), claim, holds)


def noise_floor(
    aligned: Mapping[str, Sequence[Mapping[str, Any]]], noise_records: Sequence[Mapping[str, Any]]
) -> tuple[str, int, int] | None:
    """(arm, answers that changed, items compared): the arm's test answers against the same prompts
    re-run in another order and batch composition (vLLM's greedy output can depend on the batch)."""
    by_arm: dict[str, dict[str, Mapping[str, Any]]] = defaultdict(dict)
    for r in noise_records:
        by_arm[str(r["variant"]).removeprefix("noise:")][r["item"]] = r
    for arm, rerun in by_arm.items():
        if arm in aligned:
            pairs = [(r, rerun[r["item"]]) for r in aligned[arm] if r["item"] in rerun]
            if pairs:
                return arm, sum(1 for a, b in pairs if a["prediction"] != b["prediction"]), len(pairs)
    return None


def effort_of(info: Mapping[str, Any], side: str) -> effort_mod.Effort | None:
    found = (info.get("search") or {}).get(side)
    if not found:
        return None
    label = "prompt search" if side == "prompt" else "adapter sweep"
    return effort_mod.effort(side, label, str(found.get("method", "")), found.get("trials", []))


def majority_baseline(info: Mapping[str, Any], metric: str, golds: Sequence[str]) -> tuple[str, float] | None:
    """Always answering the commonest training label: the floor any variant must clear."""
    counts = info.get("data_check", {}).get("label_counts") or {}
    if not counts or not golds or metric not in BINARY_METRICS | {"macro_f1"}:
        return None
    label = max(counts, key=lambda k: counts[k])
    return label, sum(g == label for g in golds) / len(golds)


def below_baseline(
    metric: str,
    majority: tuple[str, float],
    chosen: Mapping[str, Sequence[Mapping[str, Any]]],
    seed: int = 0,
    clusters: Sequence[str] | None = None,
) -> dict[str, Paired]:
    """The chosen arms that do not clear the majority-class baseline detectably, each with its paired
    comparison against always answering the commonest training label: an adapter that "pays off"
    against a weak prompt while scoring what that constant answer scores has learned the label prior,
    not the task. Paired on the same items with the metric's own test (accuracy-type metrics only: the
    constant answer's macro-F1 is no floor)."""
    if metric not in BINARY_METRICS or not chosen:
        return {}
    label = majority[0]
    constant = [Scored(label, r["gold"], {"correct": float(r["gold"] == label)}) for r in next(iter(chosen.values()))]
    short = {}
    for name, records in chosen.items():
        pc = paired_compare(constant, scored(records), metric, seed=seed, clusters=clusters)
        if not significant(pc.p_value, pc.diff) or pc.diff.value <= 0:
            short[name] = pc
    return short


def epoch_losses(adapters: Mapping[str, Mapping[str, Any]]) -> tuple[dict[str, Any], ...]:
    """Mean training loss and validation loss per epoch for each adapter (the overfitting view)."""

    rows = []
    for name, facts in adapters.items():
        by_epoch: dict[int, list[float]] = defaultdict(list)
        for point in facts.get("loss_curve", []):
            by_epoch[max(1, math.ceil(float(point.get("epoch") or 0) - 1e-9))].append(float(point["loss"]))
        val = {max(1, round(float(p.get("epoch") or 0))): float(p["val_loss"]) for p in facts.get("val_curve", [])}
        for epoch in sorted(set(by_epoch) | set(val)):
            losses = by_epoch.get(epoch, [])
            rows.append(
                {
                    "adapter": name,
                    "epoch": epoch,
                    "train_loss": round(sum(losses) / len(losses), 4) if losses else None,
                    "val_loss": round(val[epoch], 4) if epoch in val else None,
                }
            )
    return tuple(rows)


def learning_curve(rows: Sequence[Row], adjusted: Mapping[str, float | None]) -> tuple[tuple, int | None]:
    sizes: dict[int, list[Row]] = defaultdict(list)
    for r in rows:
        if r.is_adapter and r.train_size:
            sizes[int(r.train_size)].append(r)
    curve = []
    smallest = None
    for size in sorted(sizes):
        group = sizes[size]
        mean = sum(r.metric.value for r in group) / len(group)
        curve.append((size, mean, min(r.metric.low for r in group), max(r.metric.high for r in group)))
        wins = [r for r in group if r.diff is not None and r.diff.value > 0 and significant(adjusted.get(r.variant), r.diff)]
        if smallest is None and wins and len(wins) * 2 > len(group):
            smallest = size
    return tuple(curve), smallest


def confusion_counts(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in records:
        table[r["gold"]][r["prediction"] if r["prediction"] is not None else "(none)"] += 1
    return {g: dict(p) for g, p in table.items()}


def siblings(rows: Sequence[Row], adapter: str) -> list[Row]:
    """The adapter arm and its siblings: same size, side and decoding, other training seeds."""
    chosen = next(r for r in rows if r.variant == adapter)
    group = (
        r
        for r in rows
        if r.side == chosen.side and r.train_size == chosen.train_size and r.constrained == chosen.constrained
    )
    return sorted(group, key=lambda r: r.seed)


_DRAW_KEYS = ("template", "shots", "selection", "constrained", "cue", "label_order", "layout", "max_tokens", "adapter")


def prompt_draws(info: Mapping[str, Any], prompt: str, aligned: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[int, str]:
    """{seed: arm} for the selected prompt's few-shot draws (run.seeded_prompts): the same prompt
    with its examples drawn by each seed. Empty when the prompt draws no examples at random."""
    entries = [v for v in info.get("variants") or () if isinstance(v, Mapping)]
    mine = next((v for v in entries if v.get("name") == prompt), None)
    if mine is None or mine.get("shot_seed") is None:
        return {}
    return {
        int(v["shot_seed"]): str(v["name"])
        for v in entries
        if v.get("shot_seed") is not None and v["name"] in aligned and all(v.get(k) == mine.get(k) for k in _DRAW_KEYS)
    }


def shown_answer(record: Mapping[str, Any]) -> str:
    """An answer as a reader sees it: the prediction, or what the model said when it gave none
    (a table showed 'nan' for an output that is not a label)."""
    if record.get("prediction") is not None:
        return str(record["prediction"])
    said = " ".join(str(record.get("output") or "").split())
    return f'(not an answer: "{said[:40]}{"…" if len(said) > 40 else ""}")' if said else "(no output)"
