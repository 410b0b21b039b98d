"""Stored runs -> per-task summaries: one or more run folders read (never a model), merged where
their items pair, each task summarised with its verdict, retention and data warnings."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.analysis.cost import Prices
from harness.analysis.records import RetentionRow, TaskSummary
from harness.analysis.summary import find
from harness.analysis.verdict import summarise_retention, task_summary
from harness.core.errors import UserError
from harness.runlog import completeness
from harness.runlog.folder import (
    VALIDATION,
    check_scores,
    load_formats,
    load_latency,
    load_noise,
    load_run,
    load_validation,
)
from harness.taskkit.metrics import BINARY_METRICS


def load_runs(
    run_dirs: Sequence[Path],
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    """(manifests, test records by task, validation records by task), variants prefixed by run id
    when several runs are merged."""
    manifests, by_task, val_by_task = [], defaultdict(list), defaultdict(list)
    items_of: dict[str, tuple[str, frozenset[str], str | None]] = {}
    loaded = [load_run(d) for d in run_dirs]
    labels = run_labels([str(m.get("run_id", d.name)) for (m, _), d in zip(loaded, run_dirs, strict=True)], run_dirs)
    for d, label, (manifest, records) in zip(run_dirs, labels, loaded, strict=True):
        merged = len(run_dirs) > 1
        manifest = {**manifest, "run_id": label} if merged else manifest  # the name its arms carry here
        manifests.append({**manifest, "missing": completeness.missing_answers(manifest, records)})
        prefix = f"{label}:" if merged else ""
        for task in {r["task"] for r in records}:
            # the items the run evaluates, as its manifest lists them: a run still going (or killed) has
            # answered fewer, which the report flags as incomplete rather than as other data
            info = manifest.get("tasks", {}).get(task) or {}
            ids = frozenset(info.get("test_items") or (r["item"] for r in records if r["task"] == task))
            content = info.get("test_data_hash")
            if task in items_of and items_of[task][1] != ids:
                raise UserError(
                    f"runs {items_of[task][0]} and {d} evaluated different {task} test items; "
                    "paired statistics need the same items, so they cannot be merged"
                )
            if task in items_of and None not in (content, items_of[task][2]) and items_of[task][2] != content:
                raise UserError(
                    f"runs {items_of[task][0]} and {d} evaluated the same {task} item ids with other contents "
                    "(their test data hashes differ: a revised data file); the items do not pair, so they cannot be merged"
                )
            items_of.setdefault(task, (str(d), ids, content))
        by_task_records = [{**r, "variant": prefix + r["variant"]} for r in records]
        for r in by_task_records:
            by_task[r["task"]].append(r)
        validation = load_validation(d)
        check_scores(d / VALIDATION, manifest, validation)
        for r in validation:
            val_by_task[r["task"]].append({**r, "variant": prefix + r["variant"]})
    return manifests, by_task, val_by_task


def run_labels(run_ids: Sequence[str], run_dirs: Sequence[Path]) -> list[str]:
    """The names that tell merged runs apart (each arm is shown as NAME:variant): their run ids, or,
    where two share one (the same --run-id in two results folders, a copied run), the shortest
    path ending that differs. The same run twice is refused: its records would count double."""
    resolved = [d.resolve() for d in run_dirs]
    for i, d in enumerate(resolved):
        if d in resolved[:i]:
            raise UserError(f"run {run_dirs[i]} is given twice")
    if len(set(run_ids)) == len(run_ids):
        return list(run_ids)
    depth = 1
    while len({d.parts[-depth:] for d in resolved}) < len(resolved):
        depth += 1
    return ["/".join(d.parts[-depth:]) for d in resolved]


def _is_retention(variant: str) -> bool:
    return "retention[" in variant


def summarise(
    run_dirs: Sequence[Path], volume: float | None = None, usd_per_error: float | None = None
) -> tuple[list[TaskSummary], list[dict[str, Any]]]:
    """`volume` and `usd_per_error` replace the runs' prices: the same results read at the reader's
    traffic and price of a wrong answer."""
    manifests, all_records, val_records = load_runs(run_dirs)
    noise = [r for run in run_dirs for r in load_noise(run)]
    formats = [r for run in run_dirs for r in load_formats(run)]
    waits = [r for run in run_dirs for r in load_latency(run)]
    by_task = {t: [r for r in rs if not _is_retention(r["variant"])] for t, rs in all_records.items()}
    by_task = {t: rs for t, rs in by_task.items() if rs}
    summaries = []
    for task, records in sorted(by_task.items()):
        info, adapters, prices = None, {}, Prices()
        for m in manifests:
            prefix = f"{m['run_id']}:" if len(manifests) > 1 else ""  # load_runs' label
            if task in m.get("tasks", {}):
                info = info or m["tasks"][task]
                adapters.update({prefix + k: v for k, v in m["tasks"][task].get("adapters", {}).items()})
                prices = Prices(**m.get("prices", {}))
        if info is None:
            raise UserError(f"no manifest describes task {task}")
        if volume is not None:
            prices = replace(prices, requests_per_month=volume)
        if usd_per_error is not None:
            if not BINARY_METRICS & set(info.get("metrics") or ()):
                raise UserError(
                    f"--usd-per-error prices wrong answers, and {task}'s metrics ({', '.join(info['metrics'])}) "
                    "do not count them (accuracy or exact_match do)"
                )
            prices = replace(prices, usd_per_error=usd_per_error)
        seed = int(manifests[0].get("seed", 0))
        try:
            summary = task_summary(find(
                task, info, records, adapters, prices, seed=seed, val_records=val_records.get(task, []),
                noise_records=[r for r in noise if r.get("task") == task],
                format_records=[r for r in formats if r.get("task") == task],
                latency_records=[r for r in waits if r.get("task") == task],
            ))  # fmt: skip
        except ValueError as exc:
            raise UserError(str(exc)) from None
        retention: list[RetentionRow] = []
        for m in manifests:
            for other, other_info in m.get("retention", {}).get(task, {}).items():
                retention += summarise_retention(task, other, other_info, all_records.get(other, []), seed=seed)
        warnings = tuple(info.get("data_check", {}).get("warnings", ()))
        warnings += tuple(
            f"retention on {other} was not measured: its data is not in HARNESS_DATA_DIR (name retention tasks "
            "with --retention)"
            for other in info.get("retention_skipped") or ()
        )
        summaries.append(replace(summary, retention=tuple(retention), data_warnings=warnings))
    return summaries, manifests
