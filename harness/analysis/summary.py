"""From stored records to the numbers behind a task's verdict: each arm's metric with its interval,
the paired comparisons against the prompt selected on validation, costs and break-even, the
learning curve, the majority-class floor, the seeds, the format spread and the noise floor. Pure.

Inputs are what a run directory holds (records, and the manifest's task and adapter facts), so a
report can be rebuilt, or several runs merged, without any model. The words come after, from
these numbers alone (harness.analysis.verdict).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.analysis import cost as cost_mod
from harness.analysis import effort as effort_mod
from harness.analysis import money as money_mod
from harness.analysis import selection as sel_mod
from harness.analysis import worth as worth_mod
from harness.analysis.decoding import decoding_of_facts
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
    ALPHA,
    FormatSpread,
    Row,
    align,
    mean_of,
    scored,
    side_of,
)
from harness.analysis.stats import (
    Estimate,
    Paired,
    holm,
    metric_ci,
    paired_compare,
    permutations_for,
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
    adjusted: Mapping[str, float | None]  # Holm-adjusted p of the adapter arms (the exploratory table)
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
    money: money_mod.Money

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
    trained_on = {v: int(f.get("train_size") or 0) for v, f in adapters.items()}
    selection = sel_mod.select(sides, {v: e.value for v, e in estimates.items()}, val, n_val, built_on, tokens, trained_on)
    prompt, adapter = selection.prompt, selection.adapter
    base = scored(aligned[prompt])
    paired, adjusted, headline, levels = _compare(aligned, sides, selection, metric, labels, seed, clusters)
    money = money_mod.costs(info, aligned, adapters, prices, selection, sides, seed)
    rows = _rows(info, aligned, adapters, estimates, paired, adjusted, sides, money, latency_records, headline, levels)
    chosen_decoding = next(r.decoding for r in rows if r.variant == adapter) if adapter else "free"
    curve, smallest = learning_curve([r for r in rows if r.side == "adapter" and r.decoding == chosen_decoding], adjusted)
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
            combined = {
                o: paired_compare(scored(aligned[o]), mine, metric, labels, seed=seed, clusters=clusters)
                for o in (prompt, adapter)
            }
    return Findings(
        task, info, adapters, metric, labels, tuple(items), clusters, aligned, tuple(rows), selection, adjusted, prices,
        curve, smallest, worth, tuple(e for e in (effort_of(info, side) for side in ("prompt", "adapter")) if e is not None),
        {side: sum(1 for v in sides.values() if v == side) for side in ("prompt", "adapter")}, majority, floor, draws,
        by_seed, others, combined, noise_floor(aligned, noise_records),
        bool(noise_records) and all(r.get("cached") for r in noise_records),
        format_spread(info, metric, labels, aligned, format_records, prompt, adapter,
                      paired[adapter].p_value if adapter else None, seed, clusters),
        money.one_offs, money.at_volume, money.months, money,
    )  # fmt: skip


def _rows(
    info: Mapping[str, Any],
    aligned: Mapping[str, Sequence[Mapping[str, Any]]],
    adapters: Mapping[str, Mapping[str, Any]],
    estimates: Mapping[str, Estimate],
    paired: Mapping[str, Paired],
    adjusted: Mapping[str, float | None],
    sides: Mapping[str, str],
    money: money_mod.Money,
    latency_records: Sequence[Mapping[str, Any]],
    headline: set[str],
    levels: Mapping[str, float],
) -> list[Row]:
    """`headline`: the arms tested alone (their p is not adjusted); `levels`: each compared arm's alpha."""
    labels = tuple(info.get("labels") or ())
    waits = wait_percentiles(latency_records)
    rows = []
    for v in aligned:
        facts = adapters.get(v) or {}
        pair = paired.get(v)
        rows.append(Row(
            variant=v, is_adapter=v in adapters, train_size=facts.get("train_size"), seed=int(facts.get("seed", 0)),
            metric=estimates[v], secondary={m: metric_fn(m)(scored(aligned[v]), labels) for m in info["metrics"][1:]},
            diff=pair.diff if pair else None, p_value=pair.p_value if pair else None,
            p_holm=None if v in headline else adjusted.get(v), ci_level=1 - levels.get(v, ALPHA),
            prompt_tokens=mean_of(aligned[v], "prompt_tokens"), completion_tokens=mean_of(aligned[v], "completion_tokens"),
            latency_s=mean_of(aligned[v], "latency_s"), cost_per_1k=money.costs[v] * 1000,
            train_cost=money.train_costs[v], break_even=money.break_even[v],
            overfit=bool(facts.get("val_loss_rising", False)), side=sides[v],
            constrained=bool(facts.get("constrained", False)), decoding=decoding_of_facts(facts),
            test=pair.test if pair else "", mde=pair.mde if pair else None,
            wait_p50=waits[v][0] if v in waits else None, wait_p95=waits[v][1] if v in waits else None,
        ))  # fmt: skip
    return rows


def _compare(
    aligned: Mapping[str, Sequence[Mapping[str, Any]]],
    sides: Mapping[str, str],
    selection: sel_mod.Selection,
    metric: str,
    labels: tuple[str, ...],
    seed: int,
    clusters: tuple[str, ...] | None,
) -> tuple[dict[str, Paired], dict[str, float | None], set[str], dict[str, float]]:
    """Every arm against the selected prompt: (paired comparisons, Holm-adjusted p of the
    exploratory family, the headline arms, each arm's alpha).

    The headline claims (the selected adapter, and the combined arm built on it, against the
    selected prompt) were chosen on validation before test was read: each is one confirmatory test
    at ALPHA. Every other adapter arm is exploratory: Holm over all of them, with intervals at the
    Bonferroni level and permutations enough to reach below it. The other prompts are not tested
    against the prompt picked from them (that comparison is the selection)."""
    prompt = selection.prompt
    base = scored(aligned[prompt])
    names = [v for v in aligned if v != prompt and sides[v] != "prompt"]
    # chosen on test (a run without validation records), the headline is one of the family it was
    # picked from: it gets no exemption
    headline = {v for v in (selection.adapter, selection.combined) if v} if selection.on == "validation" else set()
    family = max(1, len(names))
    levels = {v: ALPHA if v in headline or sides[v] == "prompt" else ALPHA / family for v in aligned if v != prompt}
    n_perm = permutations_for(family, ALPHA)
    paired = {
        v: paired_compare(base, scored(aligned[v]), metric, labels, seed=seed, clusters=clusters, n_perm=n_perm,
                          alpha=level)
        for v, level in levels.items()
    }  # fmt: skip
    adjusted = dict(zip(names, holm([paired[v].p_value for v in names]), strict=True))
    return paired, adjusted, headline, levels
