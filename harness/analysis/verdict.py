"""The words of a task's verdict, written from its numbers alone (harness.analysis.summary): the
headline decision, how sure it is, what each side cost, the seeds, the baseline floor, the format
spread, the noise floor and the tuning budget, in one paragraph a decision-maker reads. Pure.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from harness.analysis import cost as cost_mod
from harness.analysis import effort as effort_mod
from harness.analysis import fullcost
from harness.analysis import selection as sel_mod
from harness.analysis import worth as worth_mod
from harness.analysis.evidence import confusion_counts, epoch_losses, shown_answer, siblings
from harness.analysis.records import ALPHA, FormatSpread, RetentionRow, Row, TaskSummary, scored, side_of, significant
from harness.analysis.stats import Estimate, Paired, groups_of, metric_ci, paired_compare
from harness.analysis.summary import Findings
from harness.core.words import counted
from harness.taskkit.metrics import metric as metric_of


def _span(e: Estimate, metric: str) -> str:
    return metric_of(metric).interval(e.low, e.high)


def task_summary(f: Findings) -> TaskSummary:
    """A task's summary: the numbers `find` computed (harness.analysis.summary), then the words."""
    info, adapters = f.info, f.adapters
    prompt, adapter, metric, aligned = f.best_prompt, f.best_adapter, f.metric, f.aligned
    note = sel_mod.describe(f.selection, metric_of(metric).shown)
    covered = (info.get("validation") or {}).get("labels_covered")
    if covered and f.selection.on == "validation":
        note += f" The validation items cover {covered[0]} of {covered[1]} labels."
    classified = f.labels and info.get("kind") == "classification"
    confusion = {v: confusion_counts(aligned[v]) for v in aligned} if classified else {}
    disagreements: tuple[dict[str, Any], ...] = ()
    if adapter:
        disagreements = tuple(
            {"item": a["item"], "gold": a["gold"], prompt: shown_answer(b), adapter: shown_answer(a)}
            for a, b in zip(aligned[adapter], aligned[prompt], strict=True)
            if a["prediction"] != b["prediction"]
        )
    return TaskSummary(
        f.task, metric, len(f.items), f.rows, prompt, adapter, verdict(f), f.curve, f.smallest, confusion, disagreements,
        epoch_losses({k: v for k, v in adapters.items() if side_of(v) == "adapter" and not v.get("constrained")}),
        majority=f.majority, selection=f.selection, selection_note=note, efforts=f.efforts,
        combined=combined_sentence(f), noise=f.noise, formats=f.spread, worth=f.worth, one_offs=f.one_offs,
        at_volume=f.at_volume,
    )  # fmt: skip


def verdict(f: Findings) -> str:
    """The verdict paragraph: the decision, then what backs it and what it cost."""
    prompt, adapter, metric = f.best_prompt, f.best_adapter, f.metric
    head = write_verdict(metric, f.rows, prompt, adapter, f.adjusted, len(f.items), frozenset(f.floor))
    if adapter:
        head = f"{head} {seed_sentence(metric, f.rows, prompt, adapter, f.adjusted, f.draws, f.by_seed)}".strip()
        head = f"{head} {disagreement(metric, f.row(adapter), f.others, adapter, prompt)}".strip()
    if f.majority is not None and f.floor:
        chosen = len([v for v in (prompt, adapter) if v])
        head = f"{head} {baseline_sentence(metric, f.majority, f.floor, chosen)}".strip()
    parts = (
        head,
        money_sentence(f),
        worth_mod.sentence(f.worth),
        rows_sentence(f.info, f.selection, f.rows, prompt, adapter),
        cluster_sentence(f.info, f.clusters),
        format_sentence(f.spread, metric),
        noise_sentence(f.noise, f.noise_reused),
        effort_mod.budget_sentence(f.efforts, f.arms, f.selection.on),
    )
    return " ".join(p for p in parts if p)


def money_sentence(f: Findings) -> str:
    """The one-off costs of both sides, and each chosen arm's cost at the plan's traffic."""
    if len(f.one_offs) < 2 or f.one_offs[1] is None or f.best_adapter is None:
        return ""
    prompt_once, adapter_once = f.one_offs
    months = f.months_to_recover
    recover = f" Break-even: {cost_mod.traffic_time(months)} of that traffic." if months is not None and months > 0 else ""
    at_traffic = fullcost.volume_sentence(f.at_volume, f.prices)
    once_sentence = fullcost.one_off_sentence(adapter_once, prompt_once, f.prices)
    return f"{once_sentence} {at_traffic}{recover}" if at_traffic else once_sentence


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
    sig = significant(adjusted.get(best_adapter), a.diff)
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
            f"{head}: {best_adapter} beats {best_prompt} by {metric_of(metric).change(a.diff.value)} "
            f"({_span(a.diff, metric)}), {token_note}; {pay}.{overfit}"
        )
    if sig and a.diff.value < 0:
        head = (
            "Keep the prompt, though it does not clear the majority-class baseline"
            if best_prompt in below_floor
            else "Keep the prompt"
        )
        return (
            f"{head}: {best_adapter} is {metric_of(metric).change(-a.diff.value).lstrip('+')} behind {best_prompt} "
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
        f" These {n_items} test items detect a difference of about {metric_of(metric).change(a.mde).lstrip('+')} "
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
        f"{head} difference between {best_adapter} and {best_prompt} ({metric_of(metric).change(a.diff.value)}, "
        f"{_span(a.diff, metric)}{test}): keep the prompt unless cost decides; the adapter needs {token_note}, "
        f"and {pay}.{overfit}{borderline}{power}"
    )


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
        wins = sum(1 for d in by_seed.values() if d.diff.value > 0 and significant(d.p_value, d.diff))
        losses = sum(1 for d in by_seed.values() if d.diff.value < 0 and significant(d.p_value, d.diff))
        against = "each seed's adapter against the same seed's few-shot draw"
        n = len(by_seed)
    else:
        wins = sum(
            1 for r in group if r.diff is not None and r.diff.value > 0 and significant(adjusted.get(r.variant), r.diff)
        )
        losses = sum(
            1 for r in group if r.diff is not None and r.diff.value < 0 and significant(adjusted.get(r.variant), r.diff)
        )
        against, n = f"each seed's adapter against {prompt}", len(group)
    tail = f" and loses in {losses}" if losses else ""
    return f"{out}; the adapter beats the prompt in {wins} of {n} seeds{tail} ({against})."


def disagreement(metric: str, adapter: Row, others: Mapping[str, Paired], name: str, prompt: str) -> str:
    """A secondary metric that moves the other way from the primary one: said, with its own interval
    and test, so a macro-F1 gain is never read as an accuracy gain."""
    if adapter.diff is None or adapter.diff.value == 0:
        return ""
    out = []
    for m, pc in others.items():
        if pc.diff.value * adapter.diff.value < 0:
            out.append(
                f"The metrics disagree in direction: on {m}, {name} is {metric_of(m).change(pc.diff.value)} "
                f"against {prompt} "
                f"({_span(pc.diff, m)}" + (f", {pc.test} p = {pc.p_value:.2g})." if pc.p_value is not None else ").")
            )
    return " ".join(out)


def baseline_sentence(metric: str, majority: tuple[str, float], short: Mapping[str, Paired], n_chosen: int) -> str:
    """`below_baseline`'s finding, said in the verdict with each arm's difference from the constant answer."""
    if not short:
        return ""
    label, share = majority  # (the commonest training label, its share of these items)
    each = []
    for name, pc in short.items():
        p = f", {pc.test} p = {pc.p_value:.2g}" if pc.p_value is not None else ""
        each.append(f"{name} {metric_of(metric).change(pc.diff.value)} ({_span(pc.diff, metric)}{p})")
    who = "Neither chosen arm clears" if len(short) == n_chosen > 1 else f"{next(iter(short))} does not clear"
    return (
        f"{who} the majority-class baseline detectably: always answering {label!r} scores "
        f"{share * 100:.1f}% on these items; against it, " + "; ".join(each) + "."
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
    shown = metric_of(metric).shown
    vals = [v for _, _, v in spread.values]
    n = len(vals)
    head = (
        f"Format spread of {spread.arm} over {counted(n, 'meaning-preserving format')} (separators, "
        f"casing, spacing, field names, label order): {metric} min {shown(min(vals))}, median "
        f"{shown(statistics.median(vals))}, max {shown(max(vals))} (as written {shown(spread.original)})"
    )
    if not spread.claim:
        return head + "."
    if spread.claim == "the difference stays undetectable":
        return f"{head}; against the adapter the difference stays undetectable in {spread.holds} of {n} formats."
    return f"{head}; {spread.claim} in {spread.holds} of {n} formats."


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


def combined_sentence(f: Findings) -> str:
    """Prompting and fine-tuning are not exclusive: does the adapter served with the selected
    prompt beat both the adapter and the prompt on their own (paired, on test)?"""
    if not f.combined or f.selection.combined is None:
        return ""
    combined, metric, vs = f.selection.combined, f.metric, f.combined
    wins = [o for o, c in vs.items() if c.diff.value > 0 and significant(c.p_value, c.diff)]
    losses = [o for o, c in vs.items() if c.diff.value < 0 and significant(c.p_value, c.diff)]
    detail = "; ".join(f"vs {o}: {metric_of(metric).change(c.diff.value)} ({_span(c.diff, metric)})" for o, c in vs.items())
    if len(wins) == 2:
        head = f"The combination {combined} beats both the adapter and the prompt"
    elif wins:
        head = f"The combination {combined} beats {wins[0]} but not {'/'.join(set(vs) - set(wins))}"
    elif losses:
        head = f"The combination {combined} is worse than {' and '.join(losses)}"
    else:
        head = f"The combination {combined} shows no detectable difference from either"
    return f"{head} ({detail})."


def summarise_retention(
    source: str, task: str, info: Mapping[str, Any], records: Sequence[Mapping[str, Any]], seed: int = 0
) -> tuple[RetentionRow, ...]:
    """Records named retention[source]:base and retention[source]:<adapter> on `task`: each adapter
    against the base model there, with its sentence."""
    prefix = f"retention[{source}]:"
    metric = str(info["metrics"][0])
    labels = tuple(info.get("labels") or ())
    by_variant: dict[str, dict[str, Mapping[str, Any]]] = {}
    for r in records:
        if r["variant"].startswith(prefix):
            by_variant.setdefault(r["variant"][len(prefix) :], {}).setdefault(r["item"], r)
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
        row = RetentionRow(source, adapter, task, metric, base_est, tuned, pair.diff, pair.p_value, "")
        out.append(replace(row, sentence=retention_sentence(row, len(items))))
    return tuple(out)


def retention_sentence(row: RetentionRow, n_items: int) -> str:
    change, m = row.diff.value, metric_of(row.metric)
    if row.base.value == 0 and row.tuned.value == 0:  # a floor, not evidence: pick a task the base model can do
        return (
            f"Retention of the {row.source} adapter {row.adapter} on {row.task} is uninformative: neither it nor the "
            f"base model scores above 0 {row.metric} zero-shot on {n_items} items; choose a retention "
            "task the base model can do."
        )
    sig = significant(row.p_value, row.diff)
    if sig and change < 0:
        verb = f"loses {m.change(-change).lstrip('+')}"
    elif sig and change > 0:
        verb = f"gains {m.change(change).lstrip('+')}"
    else:
        verb = f"shows no detectable change ({m.change(change)},"
    detail = f"{_span(row.diff, row.metric)})" if verb.endswith(",") else f"({_span(row.diff, row.metric)})"
    return (
        f"The {row.source} adapter {row.adapter} {verb} {detail} on {row.task} against the base model, "
        f"zero-shot on {n_items} items."
    )
