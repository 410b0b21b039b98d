"""The evidence a verdict weighs besides the headline comparison: the prompt's worth in training rows,
the format spread, the noise floor, the majority-class floor, the seeds' draws, the learning curve,
the training curves, the confusion counts. Pure."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from harness.analysis import effort as effort_mod
from harness.analysis import worth as worth_mod
from harness.analysis.records import FormatSpread, Row, scored, significant
from harness.analysis.stats import Paired, column_stats, groups_of, paired_compare, resamples
from harness.taskkit.metrics import BINARY_METRICS, Scored, metric_fn
from harness.taskkit.metrics import metric as metric_of


def prompt_worth(
    metric: str,
    labels: Sequence[str],
    rows: Sequence[Row],
    aligned: Mapping[str, Sequence[Mapping[str, Any]]],
    prompt: str,
    decoding: str,
    seed: int,
    clusters: Sequence[str] | None,
) -> worth_mod.Worth | None:
    """The selected prompt in training rows, on the learning curve of the adapters with the
    selected adapter's decoding (each size's seeds averaged)."""
    by_size: dict[int, list[str]] = defaultdict(list)
    for r in rows:
        if r.side == "adapter" and r.decoding == decoding and r.train_size:
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
        seed=seed,
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
        r for r in rows if r.side == chosen.side and r.train_size == chosen.train_size and r.decoding == chosen.decoding
    )
    return sorted(group, key=lambda r: r.seed)


_DRAW_KEYS: tuple[str, ...] = ("template", "shots", "selection", "constrained", "cue", "label_order", "layout")
_DRAW_KEYS += ("max_tokens", "adapter", "scoring", "calibration")


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
