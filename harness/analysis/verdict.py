"""The words of a task's verdict, written from its numbers alone (harness.analysis.summary): one
sentence that names the action (harness.analysis.decision), then labelled lines: how sure, cost at
volume, what would change the decision, robustness (formats, seeds, noise floor, worth in rows),
tuning budgets, data caveats. Pure.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from harness.analysis import cost as cost_mod
from harness.analysis import decision as decision_mod
from harness.analysis import effort as effort_mod
from harness.analysis import fullcost
from harness.analysis import selection as sel_mod
from harness.analysis import worth as worth_mod
from harness.analysis.decoding import decoding_of_facts, decoding_sentence
from harness.analysis.evidence import confusion_counts, epoch_losses, shown_answer, siblings
from harness.analysis.proportions import wilson
from harness.analysis.records import (
    ALPHA,
    FormatSpread,
    RetentionRow,
    Row,
    TaskSummary,
    VerdictText,
    scored,
    side_of,
    significant,
)
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
    note += decoding_sentence(info, adapters, prompt, adapter)
    classified = f.labels and info.get("kind") == "classification"
    confusion = {v: confusion_counts(aligned[v]) for v in aligned} if classified else {}
    disagreements: tuple[dict[str, Any], ...] = ()
    if adapter:
        disagreements = tuple(
            {"item": a["item"], "gold": a["gold"], prompt: shown_answer(b), adapter: shown_answer(a)}
            for a, b in zip(aligned[adapter], aligned[prompt], strict=True)
            if a["prediction"] != b["prediction"]
        )
    words, decided = verdict(f)
    return TaskSummary(
        f.task, metric, len(f.items), f.rows, prompt, adapter, words.text, f.curve, f.smallest, confusion, disagreements,
        epoch_losses({k: v for k, v in adapters.items() if side_of(v) == "adapter" and decoding_of_facts(v) == "free"}),
        majority=f.majority, selection=f.selection, selection_note=note, efforts=f.efforts,
        combined=combined_sentence(f), noise=f.noise, formats=f.spread, worth=f.worth, one_offs=f.one_offs,
        at_volume=f.at_volume, structured=words, decided=decided,
    )  # fmt: skip


def headline_p(row: Row) -> float | None:
    """The p the decision reads: the arm's own test when it was chosen on validation (Holm leaves it
    out, `p_holm` None); Holm's over the adapter arms when it was chosen on test, among them."""
    return row.p_value if row.p_holm is None else row.p_holm


def quality_of(row: Row) -> str:
    """The adapter against the prompt, by its own (confirmatory) test."""
    assert row.diff is not None
    if not significant(headline_p(row), row.diff):
        return decision_mod.NONE
    return decision_mod.WIN if row.diff.value > 0 else decision_mod.LOSS


def _side(f: Findings, v: str) -> decision_mod.Side:
    r = f.row(v)
    return decision_mod.Side(
        v, f.money.once[v], f.money.costs[v], fullcost.error_rate(f.info, f.aligned[v]),
        r.wait_p50 if r.wait_p50 is not None else r.latency_s,
    )  # fmt: skip


def decide(f: Findings) -> decision_mod.Decision | None:
    """The decision rule applied to the chosen arms (harness.analysis.decision)."""
    adapter = f.best_adapter
    if adapter is None:
        return None
    a, m = f.row(adapter), metric_of(f.metric)
    assert a.diff is not None
    p_said = headline_p(a)
    holm = " after Holm" if a.p_holm is not None and a.p_holm != a.p_value else ""
    p = f", {a.test} p = {p_said:.2g}{holm}" if p_said is not None else ""
    diff = (m.change(a.diff.value), m.change(abs(a.diff.value)).lstrip("+"), f"{_span(a.diff, f.metric)}{p}")
    detectable = m.change(a.mde).lstrip("+") if a.mde is not None else ""
    quality = quality_of(a)
    d = decision_mod.decide(quality, diff, _side(f, f.best_prompt), _side(f, adapter), f.prices, a.break_even, detectable)
    floor = _floor_headline(quality, f.best_prompt, adapter, frozenset(f.floor))
    if floor is None:
        return d
    change, size, evidence = diff
    prompt = f.best_prompt
    said = {
        decision_mod.WIN: f"{floor}: {adapter} beats {prompt} by {change} ({evidence}).",
        decision_mod.LOSS: f"{floor}: {adapter} is {size} behind {prompt} ({evidence}).",
        decision_mod.NONE: f"{floor}: no detectable difference between {adapter} and {prompt} ({change}, {evidence}).",
    }[quality]
    return replace(d, headline=said, short={"adapter": floor, "prompt": floor})


def _floor_headline(quality: str, prompt: str, adapter: str, below: frozenset[str]) -> str | None:
    """An arm that scores what always answering the commonest label scores has not shown what it
    seems to: said first, in the headline a reader of the decision card alone sees."""
    if quality == decision_mod.WIN and adapter in below:
        return "Fine-tuning beats the prompt but not the majority-class baseline"
    if quality == decision_mod.LOSS and prompt in below:
        return "Keep the prompt, though it does not clear the majority-class baseline"
    if quality == decision_mod.NONE and {adapter, prompt} <= below:
        return "Neither chosen arm clears the majority-class baseline"
    return None


def verdict(f: Findings) -> tuple[VerdictText, decision_mod.Decision | None]:
    """The verdict: the decision, then what backs it and what it cost, line by line."""
    prompt, adapter, metric = f.best_prompt, f.best_adapter, f.metric
    d = decide(f)
    if adapter is None or d is None:
        head = f"Best prompt: {prompt} ({metric} {f.row(prompt).metric.value:.3f}). No adapter was evaluated."
        shown = " ".join(x for x in (format_sentence(f.spread, metric), noise_sentence(f.noise, f.noise_reused)) if x)
        budget = effort_mod.budget_sentence(f.efforts, f.arms, f.selection.on).removeprefix("Tuning budget: ")
        only = (("Robustness", shown), ("Tuning budgets", budget), ("Data caveats", leakage_sentence(f.info)))
        return VerdictText(head, tuple((k, v) for k, v in only if v)), None
    a = f.row(adapter)
    sure = [
        sure_sentence(f, a),
        disagreement(metric, a, f.others, adapter, prompt),
        baseline_sentence(metric, f.majority, f.floor, 2) if f.majority is not None and f.floor else "",
        cluster_sentence(f.info, f.clusters),
        " Warning: its validation loss rose over the last epochs (overfitting)." if a.overfit else "",
    ]
    robust = [
        format_sentence(f.spread, metric),
        seed_sentence(metric, f.rows, prompt, adapter, f.adjusted, f.draws, f.by_seed),
        noise_sentence(f.noise, f.noise_reused),
        worth_mod.sentence(f.worth),
    ]
    lines = (
        ("How sure", " ".join(x.strip() for x in sure if x)),
        ("Cost at volume", money_sentence(f)),
        ("What would change the decision", d.flips.removeprefix("What would change the decision: ")),
        ("Robustness", " ".join(x for x in robust if x)),
        ("Tuning budgets", effort_mod.budget_sentence(f.efforts, f.arms, f.selection.on).removeprefix("Tuning budget: ")),
        ("Data caveats", " ".join(x for x in (rows_sentence(f.info, f.selection, f.rows, prompt, adapter),
                                              leakage_sentence(f.info)) if x)),
    )  # fmt: skip
    return VerdictText(d.headline, tuple((k, v) for k, v in lines if v)), d


def sure_sentence(f: Findings, a: Row) -> str:
    """The headline test, whether its interval agrees with it, and what these items could detect."""
    assert a.diff is not None
    m = metric_of(f.metric)
    p = headline_p(a)
    sig = significant(p, a.diff)
    excludes = a.diff.low > 0 or a.diff.high < 0
    test = f"{a.test} p = {p:.2g}" if p is not None else "no test"
    if a.p_holm is None:
        how = "one confirmatory test of the arms chosen on validation (not corrected for the exploratory arms)"
    else:
        how = "Holm-adjusted over every adapter arm, since the arms were chosen on test (no validation records)"
    change = f"{m.change(a.diff.value)} ({_span(a.diff, f.metric)})"
    out = f"{a.variant} against {f.best_prompt}: {change}, {test}, {how} on {len(f.items)} test items."
    if p is not None and sig != excludes:
        out += (
            f" The interval {'excludes' if excludes else 'covers'} zero while the test "
            f"{'does not reject' if excludes else 'rejects'}: a borderline difference."
        )
    if not sig and a.mde is not None:
        out += (
            f" Post hoc, these items detect a difference of about {m.change(a.mde).lstrip('+')} (the observed "
            f"disagreement, alpha {ALPHA}, power 0.8); a smaller one needs more items (`harness size`)."
        )
    return out


def leakage_sentence(info: Mapping[str, Any]) -> str:
    n = int((info.get("data_check") or {}).get("leaked_rows") or 0)
    if not n:
        return ""
    return (
        f"{counted(n, 'training row')} duplicated a test input (after normalising case, punctuation and spaces): "
        "dropped from validation, adapter training and the shot pool."
    )


def money_sentence(f: Findings) -> str:
    """The one-off costs of both sides, and each chosen arm's cost at the plan's traffic."""
    if len(f.one_offs) < 2 or f.one_offs[1] is None or f.best_adapter is None:
        return ""
    prompt_once, adapter_once = f.one_offs
    be = f.row(f.best_adapter).break_even
    months = f.months_to_recover
    when = f" ({cost_mod.traffic_time(months)} of that traffic)" if months is not None and months > 0 else ""
    crossing = f" Break-even of {f.best_adapter} against {f.best_prompt}: {be.sentence}{when}." if be else ""
    at_traffic = fullcost.volume_sentence(f.at_volume, f.prices)
    once_sentence = fullcost.one_off_sentence(adapter_once, prompt_once, f.prices)
    return " ".join(x for x in (token_sentence(f), once_sentence, at_traffic) if x) + crossing


def token_sentence(f: Findings) -> str:
    """What each request carries: the adapter's prompt against the prompt arm's, in tokens."""
    if f.best_adapter is None:
        return ""
    a, p = f.row(f.best_adapter), f.row(f.best_prompt)
    if not p.prompt_tokens:
        return ""
    fewer = 1 - a.prompt_tokens / p.prompt_tokens
    if round(fewer * 100) == 0:
        return f"{a.variant} sends as many prompt tokens a request as {p.variant}."
    more = "fewer" if fewer >= 0 else "more"
    return f"{a.variant} sends {abs(fewer) * 100:.0f}% {more} prompt tokens a request than {p.variant}."


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
    pool = fullcost.shot_pool_size(info)
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
    low, high = wilson(changed, n)  # the rate a sample of n items bounds, not a count over every item
    bound = f"the flip rate is below {high:.1%} (95% Wilson bound)"
    if changed == 0:
        return f"Noise floor: {arm} re-run on {n} test items in another batch order{when} gave the same answers: {bound}."
    return (
        f"Noise floor: {arm} re-run on {n} test items in another batch order{when} changed "
        f"{counted(changed, 'answer')} ({changed / n:.1%}, 95% CI {low:.1%} to {high:.1%}): differences of "
        "that rate are run-to-run noise."
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
