"""From stored records to per-task comparisons and plain-language verdicts. Pure.

Inputs are what a run directory holds (records, and the manifest's task and adapter facts),
so a report can be rebuilt, or several runs merged, without any model.
"""

from __future__ import annotations

import math
import statistics
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
from harness.core.words import counted
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


def scored(records: Sequence[Mapping[str, Any]]) -> list[Scored]:
    return [Scored(r["prediction"], r["gold"], dict(r["scores"])) for r in records]


def _significant(p: float | None, diff: Estimate) -> bool:
    if p is not None:
        return p < ALPHA
    return diff.low > 0 or diff.high < 0


def _pct(x: float, metric: str) -> str:
    return f"{x * 100:+.1f} points" if metric_of(metric).points else f"{x:+.3f}"


def _span(e: Estimate, metric: str) -> str:
    scale = 100 if metric_of(metric).points else 1
    fmt = "{:.1f}" if scale == 100 else "{:.3f}"
    return f"95% CI {fmt.format(e.low * scale)} to {fmt.format(e.high * scale)}"


def _side(facts: Mapping[str, Any] | None) -> str:
    if facts is None:
        return "prompt"
    return "combined" if facts.get("side") == "combined" else "adapter"


def _align(records: Sequence[Mapping[str, Any]], task: str) -> tuple[list[str], dict[str, list[Mapping[str, Any]]]]:
    by_variant: dict[str, dict[str, Mapping[str, Any]]] = defaultdict(dict)
    for r in records:
        by_variant[r["variant"]].setdefault(r["item"], r)
    item_sets = {frozenset(v) for v in by_variant.values()}
    items = sorted(frozenset.intersection(*item_sets)) if item_sets else []
    if not items:
        raise ValueError(f"{task}: no items shared by all variants")
    return items, {v: [recs[i] for i in items] for v, recs in by_variant.items()}


def summarise_task(
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
) -> TaskSummary:
    """`info`: the manifest's task facts (metrics, labels, kind, search); `adapters`: variant -> adapter
    facts (constrained twins and combined arms included); `val_records`: the validation records
    every arm was selected on. Selection lives in `selection`; this only reads its result."""
    metric = str(info["metrics"][0])
    labels = tuple(info.get("labels") or ())
    items, aligned = _align(records, task)
    known = info.get("clusters") or {}
    clusters = [str(known.get(i, i)) for i in items] if known else None
    estimates = {v: metric_ci(scored(rs), metric, labels, seed=seed, clusters=clusters) for v, rs in aligned.items()}
    sides = {v: _side(adapters.get(v)) for v in aligned}
    if "prompt" not in sides.values():
        raise ValueError(f"{task}: no prompt variant to compare against")

    def mean(v: str, key: str) -> float:
        # a cached answer's time was measured in another run, in another batch: the fresh ones decide
        rs = [r for r in aligned[v] if not r.get("cached")] if key == "latency_s" else aligned[v]
        rs = rs or aligned[v]
        return sum(float(r[key]) for r in rs) / len(rs)

    val, n_val = sel_mod.validation_scores(val_records, metric, labels, list(aligned))
    built_on = {v: str(f.get("built_on", v)) for v, f in adapters.items()}
    selection = sel_mod.select(
        sides,
        {v: e.value for v, e in estimates.items()},
        val,
        n_val,
        built_on,
        {v: mean(v, "prompt_tokens") for v in aligned},
    )
    best_prompt, best_adapter = selection.prompt, selection.adapter
    base = scored(aligned[best_prompt])
    paired = {
        v: paired_compare(base, scored(rs), metric, labels, seed=seed, clusters=clusters)
        for v, rs in aligned.items()
        if v != best_prompt
    }
    # Holm's family: the adapter arms against the selected prompt. The other prompts are not tested
    # against the prompt picked from them (that comparison is the selection, made on validation).
    names = [v for v in paired if sides[v] != "prompt"]
    adjusted = dict(zip(names, holm([paired[v].p_value for v in names]), strict=True))

    costs = {
        v: cost_mod.cost_per_request(prices, mean(v, "latency_s"), mean(v, "prompt_tokens"), mean(v, "completion_tokens"))
        for v in aligned
    }
    wrong = {v: fullcost.wrong_answers(info, aligned[v]) for v in aligned}
    effective = dict(costs)  # what a request costs, a wrong answer's price included: what break-even compares
    if prices.usd_per_error is not None:
        usd = prices.usd_per_error
        effective = {v: c + (sum(wrong[v]) / len(wrong[v]) * usd if wrong[v] else 0.0) for v, c in costs.items()}
    n_val_used = selection.n_val_items if selection.on == "validation" else 0
    adapter_once = fullcost.adapter_one_off(info, adapters, prices, n_val_used) if best_adapter else None
    prompt_once = fullcost.prompt_one_off(info, best_prompt, prices, n_val_used)
    # what deploying the adapter must pay back: its side's whole one-off cost less the prompt side's
    to_recover = (adapter_once.total - prompt_once.total) if adapter_once else 0.0
    rows = []
    for v in aligned:
        facts = adapters.get(v)
        train_cost = cost_mod.training_cost(prices, float(facts.get("train_device_s", 0.0))) if facts else None
        be = None
        if facts is not None and train_cost is not None:
            d = paired[v].diff if v in paired else None
            not_worse = d is None or not (_significant(adjusted.get(v), d) and d.value < 0)
            be = cost_mod.break_even(to_recover, effective[best_prompt], effective[v], not_worse)
            if be.requests:
                be = replace(be, interval=_break_even_ci(to_recover, prices, aligned, best_prompt, v, wrong, seed))
        secondary = {m: metric_fn(m)(scored(aligned[v]), labels) for m in info["metrics"][1:]}
        rows.append(Row(
            variant=v, is_adapter=facts is not None, train_size=(facts or {}).get("train_size"),
            seed=int((facts or {}).get("seed", 0)), metric=estimates[v], secondary=secondary,
            diff=paired[v].diff if v in paired else None, p_value=paired[v].p_value if v in paired else None,
            p_holm=adjusted.get(v), prompt_tokens=mean(v, "prompt_tokens"),
            completion_tokens=mean(v, "completion_tokens"), latency_s=mean(v, "latency_s"),
            cost_per_1k=costs[v] * 1000, train_cost=train_cost, break_even=be,
            overfit=bool((facts or {}).get("val_loss_rising", False)), side=sides[v],
            constrained=bool((facts or {}).get("constrained", False)), test=paired[v].test if v in paired else "",
            mde=paired[v].mde if v in paired else None,
        ))  # fmt: skip
    waits = wait_percentiles(latency_records)
    rows = [
        replace(r, wait_p50=waits[r.variant][0], wait_p95=waits[r.variant][1]) if r.variant in waits else r for r in rows
    ]
    by_row = {r.variant: r for r in rows}
    chosen_decoding = by_row[best_adapter].constrained if best_adapter else False
    curve, smallest = learning_curve([r for r in rows if r.side == "adapter" and r.constrained == chosen_decoding], adjusted)
    worth = None
    if best_adapter:
        worth = prompt_worth(metric, labels, rows, aligned, best_prompt, chosen_decoding, seed, clusters)
    efforts = tuple(e for e in (_effort(info, side) for side in ("prompt", "adapter")) if e is not None)
    arms = {side: sum(1 for v in sides.values() if v == side) for side in ("prompt", "adapter")}
    majority = majority_baseline(info, metric, [r["gold"] for r in aligned[best_prompt]])
    chosen = {v: aligned[v] for v in (best_prompt, best_adapter) if v}
    floor = below_baseline(metric, majority, chosen, seed, clusters) if majority else {}
    verdict = write_verdict(metric, rows, best_prompt, best_adapter, adjusted, len(items), frozenset(floor))
    if best_adapter:
        draws = prompt_draws(info, best_prompt, aligned)
        by_seed = {
            r.seed: paired_compare(
                scored(aligned[draws[r.seed]]), scored(aligned[r.variant]), metric, labels, seed=seed, clusters=clusters
            )
            for r in siblings(rows, best_adapter)
            if r.seed in draws
        }
        seeds = seed_sentence(metric, rows, best_prompt, best_adapter, adjusted, draws, by_seed)
        verdict = f"{verdict} {seeds}".strip()
        others = {
            m: paired_compare(base, scored(aligned[best_adapter]), m, labels, seed=seed, clusters=clusters)
            for m in info["metrics"][1:]
        }
        verdict = f"{verdict} {disagreement(metric, by_row[best_adapter], others, best_adapter, best_prompt)}".strip()
    if majority is not None and floor:
        verdict = f"{verdict} {baseline_sentence(metric, majority, floor, len(chosen))}".strip()
    budget = effort_mod.budget_sentence(efforts, arms, selection.on)
    noise = noise_floor(aligned, noise_records)
    spread = format_spread(
        info, metric, labels, aligned, format_records, best_prompt, best_adapter, adjusted.get(best_adapter or ""), seed,
        clusters,
    )  # fmt: skip
    volume: tuple[cost_mod.AtVolume, ...] = ()
    money = ""
    if adapter_once is not None and best_adapter is not None:
        once = {
            "prompt": prompt_once.total,
            "adapter": adapter_once.total,
            "combined": adapter_once.total + prompt_once.total,
        }
        volume = tuple(
            cost_mod.at_volume(v, prices, once[sides[v]], costs[v], fullcost.error_rate(info, aligned[v]))
            for v in dict.fromkeys([best_prompt, best_adapter, *(x for x in (selection.combined,) if x)])
        )
        be = by_row[best_adapter].break_even
        months = cost_mod.months_to_recover(be.requests if be else None, prices)
        recover = (
            f" Break-even: {cost_mod.traffic_time(months)} of that traffic." if months is not None and months > 0 else ""
        )
        at_traffic = fullcost.volume_sentence(volume, prices)
        once_sentence = fullcost.one_off_sentence(adapter_once, prompt_once, prices)
        money = f"{once_sentence} {at_traffic}{recover}" if at_traffic else once_sentence
    parts = (
        verdict,
        money,
        worth_mod.sentence(worth),
        rows_sentence(info, selection, rows, best_prompt, best_adapter),
        cluster_sentence(info, clusters),
        format_sentence(spread, metric),
        noise_sentence(noise, bool(noise_records) and all(r.get("cached") for r in noise_records)),
        budget,
    )
    verdict = " ".join(p for p in parts if p)
    scale = 100 if metric in BINARY_METRICS or metric == "macro_f1" else 1
    note = sel_mod.describe(selection, lambda x: f"{x * scale:.1f}" if scale == 100 else f"{x:.3f}")
    covered = (info.get("validation") or {}).get("labels_covered")
    if covered and selection.on == "validation":
        note += f" The validation items cover {covered[0]} of {covered[1]} labels."
    combined = ""
    if selection.combined and best_adapter:
        combined = combined_sentence(metric, selection.combined, best_prompt, best_adapter, aligned, labels, seed)
    confusion = {v: confusion_counts(aligned[v]) for v in aligned} if labels and info.get("kind") == "classification" else {}
    disagreements: tuple[dict[str, Any], ...] = ()
    if best_adapter:
        disagreements = tuple(
            {"item": a["item"], "gold": a["gold"], best_prompt: shown_answer(b), best_adapter: shown_answer(a)}
            for a, b in zip(aligned[best_adapter], aligned[best_prompt], strict=True)
            if a["prediction"] != b["prediction"]
        )
    return TaskSummary(
        task,
        metric,
        len(items),
        tuple(rows),
        best_prompt,
        best_adapter,
        verdict,
        curve,
        smallest,
        confusion,
        disagreements,
        epoch_losses({k: v for k, v in adapters.items() if _side(v) == "adapter" and not v.get("constrained")}),
        majority=majority,
        selection=selection,
        selection_note=note,
        efforts=efforts,
        combined=combined,
        noise=noise,
        formats=spread,
        worth=worth,
        one_offs=(prompt_once, adapter_once) if adapter_once else (),
        at_volume=volume,
    )


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


def rows_sentence(
    info: Mapping[str, Any], selection: sel_mod.Selection, rows: Sequence[Row], prompt: str, adapter: str | None
) -> str:
    """Every labelled row each side consumed: the prompt's shot pool, the adapter's training rows,
    and the validation rows both were selected on."""
    if adapter is None:
        return ""
    entries = {str(v.get("name")): v for v in info.get("variants") or () if isinstance(v, Mapping)}
    shots = int((entries.get(prompt) or {}).get("shots") or 0)
    pool = (info.get("data_check") or {}).get("n_train")
    size = next((r.train_size for r in rows if r.variant == adapter), None)
    if shots and pool:
        prompt_part = f"{prompt} shows {shots} examples per request drawn from a pool of {int(pool):,} training rows"
    else:
        prompt_part = f"{prompt} uses no training rows"
    val = f"; both were chosen on the same {selection.n_val_items:,} validation rows" if selection.on == "validation" else ""
    return f"Labelled rows used: {prompt_part}; {adapter} learned from {size:,} training rows{val}."


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
        if _significant(p_adapter, main.diff):
            claim = "the adapter beats the prompt" if direction > 0 else "the prompt beats the adapter"

            def test(d: Paired) -> bool:
                return d.diff.value * direction > 0 and _significant(d.p_value, d.diff)
        else:
            claim = "the difference stays undetectable"

            def test(d: Paired) -> bool:
                return not _significant(d.p_value, d.diff)

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


def cluster_sentence(info: Mapping[str, Any], clusters: Sequence[str] | None) -> str:
    """Said when the test items share sources, since every interval and test above accounts for it."""
    if clusters is None or groups_of(clusters) is None:
        return ""
    field = info.get("cluster_field") or "source"
    return (
        f"The test items come from {len(set(clusters))} {field}s ({len(clusters)} items): intervals and tests "
        f"resample whole {field}s (clustered), since items that share a {field} are not independent."
    )


def format_sentence(spread: FormatSpread | None, metric: str) -> str:
    if spread is None:
        return ""
    scale = 100 if metric_of(metric).points else 1
    fmt = "{:.1f}" if scale == 100 else "{:.3f}"
    vals = [v for _, _, v in spread.values]
    n = len(vals)
    head = (
        f"Format spread of {spread.arm} over {counted(n, 'meaning-preserving format')} (separators, "
        f"casing, spacing, field names, label order): {metric} min {fmt.format(min(vals) * scale)}, median "
        f"{fmt.format(statistics.median(vals) * scale)}, max {fmt.format(max(vals) * scale)} (as written "
        f"{fmt.format(spread.original * scale)})"
    )
    if not spread.claim:
        return head + "."
    if spread.claim == "the difference stays undetectable":
        return f"{head}; against the adapter the difference stays undetectable in {spread.holds} of {n} formats."
    return f"{head}; {spread.claim} in {spread.holds} of {n} formats."


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


def noise_sentence(noise: tuple[str, int, int] | None, reused: bool = False) -> str:
    """`reused`: the re-run's answers came from an earlier run of the same batches on this machine."""
    if noise is None:
        return ""
    arm, changed, n = noise
    when = " (the re-run of an earlier run on this machine, same batches)" if reused else ""
    if changed == 0:
        return f"Noise floor: {arm} re-run on the same {n} items in another batch order{when} gave the same answers."
    return (
        f"Noise floor: {arm} re-run on the same {n} items in another batch order{when} changed "
        f"{counted(changed, 'answer')} ({changed / n:.1%}): differences of that many items are run-to-run noise."
    )


def _effort(info: Mapping[str, Any], side: str) -> effort_mod.Effort | None:
    found = (info.get("search") or {}).get(side)
    if not found:
        return None
    label = "prompt search" if side == "prompt" else "adapter sweep"
    return effort_mod.effort(side, label, str(found.get("method", "")), found.get("trials", []))


def combined_sentence(
    metric: str,
    combined: str,
    prompt: str,
    adapter: str,
    aligned: Mapping[str, Sequence[Mapping[str, Any]]],
    labels: Sequence[str],
    seed: int,
) -> str:
    """Prompting and fine-tuning are not exclusive: does the adapter served with the selected
    prompt beat both the adapter and the prompt on their own (paired, on test)?"""
    mine = scored(aligned[combined])
    vs = {other: paired_compare(scored(aligned[other]), mine, metric, labels, seed=seed) for other in (prompt, adapter)}
    wins = [o for o, c in vs.items() if c.diff.value > 0 and _significant(c.p_value, c.diff)]
    losses = [o for o, c in vs.items() if c.diff.value < 0 and _significant(c.p_value, c.diff)]
    detail = "; ".join(f"vs {o}: {_pct(c.diff.value, metric)} ({_span(c.diff, metric)})" for o, c in vs.items())
    if len(wins) == 2:
        head = f"The combination {combined} beats both the adapter and the prompt"
    elif wins:
        head = f"The combination {combined} beats {wins[0]} but not {'/'.join(set(vs) - set(wins))}"
    elif losses:
        head = f"The combination {combined} is worse than {' and '.join(losses)}"
    else:
        head = f"The combination {combined} shows no detectable difference from either"
    return f"{head} ({detail})."


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
        if not _significant(pc.p_value, pc.diff) or pc.diff.value <= 0:
            short[name] = pc
    return short


def baseline_sentence(metric: str, majority: tuple[str, float], short: Mapping[str, Paired], n_chosen: int) -> str:
    """`below_baseline`'s finding, said in the verdict with each arm's difference from the constant answer."""
    if not short:
        return ""
    label, share = majority  # (the commonest training label, its share of these items)
    each = []
    for name, pc in short.items():
        p = f", {pc.test} p = {pc.p_value:.2g}" if pc.p_value is not None else ""
        each.append(f"{name} {_pct(pc.diff.value, metric)} ({_span(pc.diff, metric)}{p})")
    who = "Neither chosen arm clears" if len(short) == n_chosen > 1 else f"{next(iter(short))} does not clear"
    return (
        f"{who} the majority-class baseline detectably: always answering {label!r} scores "
        f"{share * 100:.1f}% on these items; against it, " + "; ".join(each) + "."
    )


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


def summarise_retention(
    source: str, task: str, info: Mapping[str, Any], records: Sequence[Mapping[str, Any]], seed: int = 0
) -> tuple[RetentionRow, ...]:
    """Records named retention[source]:base and retention[source]:<adapter> on `task`."""
    prefix = f"retention[{source}]:"
    metric = str(info["metrics"][0])
    labels = tuple(info.get("labels") or ())
    by_variant: dict[str, dict[str, Mapping[str, Any]]] = defaultdict(dict)
    for r in records:
        if r["variant"].startswith(prefix):
            by_variant[r["variant"][len(prefix) :]].setdefault(r["item"], r)
    if "base" not in by_variant:
        return ()
    out = []
    for adapter, recs in sorted(by_variant.items()):
        if adapter == "base":
            continue
        items = sorted(set(recs) & set(by_variant["base"]))
        a, b = scored([by_variant["base"][i] for i in items]), scored([recs[i] for i in items])
        pair = paired_compare(a, b, metric, labels, seed=seed)
        base_est, tuned = metric_ci(a, metric, labels, seed=seed), metric_ci(b, metric, labels, seed=seed)
        sig = _significant(pair.p_value, pair.diff)
        change = pair.diff.value
        if sig and change < 0:
            verb = f"loses {_pct(-change, metric).lstrip('+')}"
        elif sig and change > 0:
            verb = f"gains {_pct(change, metric).lstrip('+')}"
        else:
            verb = f"shows no detectable change ({_pct(change, metric)},"
        detail = f"{_span(pair.diff, metric)})" if verb.endswith(",") else f"({_span(pair.diff, metric)})"
        sentence = (
            f"The {source} adapter {adapter} {verb} {detail} on {task} against the base model, "
            f"zero-shot on {len(items)} items."
        )
        if base_est.value == 0 and tuned.value == 0:  # a floor, not evidence: pick a task the base model can do
            sentence = (
                f"Retention of the {source} adapter {adapter} on {task} is uninformative: neither it nor the "
                f"base model scores above 0 {metric} zero-shot on {len(items)} items; choose a retention "
                "task the base model can do."
            )
        out.append(RetentionRow(source, adapter, task, metric, base_est, tuned, pair.diff, pair.p_value, sentence))
    return tuple(out)


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
        wins = [
            r for r in group if r.diff is not None and r.diff.value > 0 and _significant(adjusted.get(r.variant), r.diff)
        ]
        if smallest is None and wins and len(wins) * 2 > len(group):
            smallest = size
    return tuple(curve), smallest


def confusion_counts(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in records:
        table[r["gold"]][r["prediction"] if r["prediction"] is not None else "(none)"] += 1
    return {g: dict(p) for g, p in table.items()}


def write_verdict(
    metric: str,
    rows: Sequence[Row],
    best_prompt: str,
    best_adapter: str | None,
    adjusted: Mapping[str, float | None],
    n_items: int = 0,
    below_floor: frozenset[str] = frozenset(),
) -> str:
    """`below_floor`: the chosen arms that do not clear the majority-class baseline. When the winner is
    one of them, the headline (what a reader of the decision card alone sees) says so: an adapter
    that beats a weak prompt but scores what always answering the commonest label scores has not
    shown that fine-tuning pays off, only that it beats that prompt."""
    by = {r.variant: r for r in rows}
    p = by[best_prompt]
    if best_adapter is None:
        return f"Best prompt: {best_prompt} ({metric} {p.metric.value:.3f}). No adapter was evaluated."
    a = by[best_adapter]
    assert a.diff is not None
    sig = _significant(adjusted.get(best_adapter), a.diff)
    tokens = 1 - a.prompt_tokens / p.prompt_tokens if p.prompt_tokens else 0.0
    token_note = f"{abs(tokens) * 100:.0f}% {'fewer' if tokens >= 0 else 'more'} prompt tokens than {best_prompt}"
    pay = a.break_even.sentence if a.break_even else ""
    overfit = " Warning: its validation loss rose over the last epochs (overfitting)." if a.overfit else ""
    if sig and a.diff.value > 0:
        head = (
            "Fine-tuning beats the prompt but not the majority-class baseline"
            if best_adapter in below_floor
            else "Fine-tuning pays off"
        )
        return (
            f"{head}: {best_adapter} beats {best_prompt} by {_pct(a.diff.value, metric)} "
            f"({_span(a.diff, metric)}), {token_note}; {pay}.{overfit}"
        )
    if sig and a.diff.value < 0:
        head = (
            "Keep the prompt, though it does not clear the majority-class baseline"
            if best_prompt in below_floor
            else "Keep the prompt"
        )
        return (
            f"{head}: {best_adapter} is {_pct(-a.diff.value, metric).lstrip('+')} behind {best_prompt} "
            f"({_span(a.diff, metric)}).{overfit}"
        )
    p_holm = adjusted.get(best_adapter)
    test = f"; {a.test} p = {p_holm:.2g} after Holm correction" if p_holm is not None else ""
    borderline = (
        " The bootstrap interval excludes zero while the test does not reject: a borderline difference."
        if p_holm is not None and (a.diff.low > 0 or a.diff.high < 0)
        else ""
    )
    power = (
        f" These {n_items} test items detect a difference of about {_pct(a.mde, metric).lstrip('+')} "
        f"(paired, alpha {ALPHA}, power 0.8); a smaller one needs more items (`harness size`)."
        if a.mde is not None and n_items
        else ""
    )
    head = (
        "Neither chosen arm clears the majority-class baseline: no detectable"
        if {best_adapter, best_prompt} <= below_floor
        else "No detectable"
    )
    return (
        f"{head} difference between {best_adapter} and {best_prompt} ({_pct(a.diff.value, metric)}, "
        f"{_span(a.diff, metric)}{test}): keep the prompt unless cost decides; the adapter needs {token_note}, "
        f"and {pay}.{overfit}{borderline}{power}"
    )


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


def _mean_sd(values: Sequence[float], metric: str) -> str:
    scale, unit = (100, " points") if metric_of(metric).points else (1, "")
    return f"{statistics.mean(values) * scale:.1f} ± {statistics.stdev(values) * scale:.1f}{unit}"


def seed_sentence(
    metric: str,
    rows: Sequence[Row],
    prompt: str,
    adapter: str,
    adjusted: Mapping[str, float | None],
    draws: Mapping[int, str] | None = None,
    by_seed: Mapping[int, Paired] | None = None,
) -> str:
    """With several seeds, the selected adapter's siblings (other training seeds) as mean +- sd, the
    selected prompt's few-shot draws likewise, and in how many seeds the adapter beats the prompt:
    each seed's adapter against the same seed's draw where the prompt draws examples (`by_seed`),
    else against the selected prompt (Holm-adjusted, as in the table)."""
    group = siblings(rows, adapter)
    if len(group) < 2:
        return ""
    chosen = next(r for r in group if r.variant == adapter)
    by = {r.variant: r for r in rows}
    seeds = ", ".join(str(r.seed) for r in group)
    draws, by_seed = draws or {}, by_seed or {}
    spread = _mean_sd([r.metric.value for r in group], metric)
    out = f"Across seeds {seeds}: {adapter} (n={chosen.train_size}) {metric} {spread}"
    if len(draws) >= 2:
        family = prompt.removesuffix(f"_s{next(s for s, v in draws.items() if v == prompt)}")
        values = [by[v].metric.value for v in draws.values()]
        out += f", {family} over its few-shot draws {_mean_sd(values, metric)}"
    if len(by_seed) >= 2:
        wins = sum(1 for d in by_seed.values() if d.diff.value > 0 and _significant(d.p_value, d.diff))
        losses = sum(1 for d in by_seed.values() if d.diff.value < 0 and _significant(d.p_value, d.diff))
        against = "each seed's adapter against the same seed's few-shot draw"
        n = len(by_seed)
    else:
        wins = sum(
            1 for r in group if r.diff is not None and r.diff.value > 0 and _significant(adjusted.get(r.variant), r.diff)
        )
        losses = sum(
            1 for r in group if r.diff is not None and r.diff.value < 0 and _significant(adjusted.get(r.variant), r.diff)
        )
        against, n = f"each seed's adapter against {prompt}", len(group)
    tail = f" and loses in {losses}" if losses else ""
    return f"{out}; the adapter beats the prompt in {wins} of {n} seeds{tail} ({against})."


def shown_answer(record: Mapping[str, Any]) -> str:
    """An answer as a reader sees it: the prediction, or what the model said when it gave none
    (a table showed 'nan' for an output that is not a label)."""
    if record.get("prediction") is not None:
        return str(record["prediction"])
    said = " ".join(str(record.get("output") or "").split())
    return f'(not an answer: "{said[:40]}{"…" if len(said) > 40 else ""}")' if said else "(no output)"


def disagreement(metric: str, adapter: Row, others: Mapping[str, Paired], name: str, prompt: str) -> str:
    """A secondary metric that moves the other way from the primary one: said, with its own interval
    and test, so a macro-F1 gain is never read as an accuracy gain."""
    if adapter.diff is None or adapter.diff.value == 0:
        return ""
    out = []
    for m, pc in others.items():
        if pc.diff.value * adapter.diff.value < 0:
            out.append(
                f"The metrics disagree in direction: on {m}, {name} is {_pct(pc.diff.value, m)} against {prompt} "
                f"({_span(pc.diff, m)}" + (f", {pc.test} p = {pc.p_value:.2g})." if pc.p_value is not None else ").")
            )
    return " ".join(out)
