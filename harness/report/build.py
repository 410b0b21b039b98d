"""Stored results -> tables -> rich / Markdown / self-contained HTML with plots.

Reads only run directories (manifest.json + samples.jsonl), never a model.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pandas as pd

from harness.analysis.cost import Prices
from harness.analysis.summary import RetentionRow, Row, TaskSummary
from harness.analysis.verdict import summarise_retention, summarise_task
from harness.core.console import UNBOUNDED, make_console
from harness.core.errors import UserError
from harness.core.faults import checkpoint
from harness.core.files import atomic_write, write_json
from harness.core.words import counted
from harness.report import cards
from harness.report.mdtext import code, md
from harness.report.mdtext import table as md_table
from harness.runlog import completeness
from harness.runlog.folder import (
    METRICS,
    VALIDATION,
    check_scores,
    load_formats,
    load_latency,
    load_noise,
    load_run,
    load_validation,
)
from harness.taskkit.metrics import BINARY_METRICS

SCALE_METRICS = {"accuracy", "exact_match", "macro_f1"}


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
            summary = summarise_task(
                task, info, records, adapters, prices, seed=seed, val_records=val_records.get(task, []),
                noise_records=[r for r in noise if r.get("task") == task],
                format_records=[r for r in formats if r.get("task") == task],
                latency_records=[r for r in waits if r.get("task") == task],
            )  # fmt: skip
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


def _fmt_metric(metric: str, value: float) -> str:
    return f"{value * 100:.1f}" if metric in SCALE_METRICS else f"{value:.3f}"


def _chosen(s: TaskSummary) -> tuple[str, ...]:
    if s.selection is None:
        return tuple(v for v in (s.best_prompt, s.best_adapter) if v)
    return tuple(a.variant for a in s.selection.chosen())


def volume_table(s: TaskSummary) -> pd.DataFrame | None:
    """The chosen arms at the plan's traffic: one-off, monthly and total cost over the horizon."""
    if not s.at_volume or not any(a.monthly_serving for a in s.at_volume):
        return None
    rows = []
    for a in s.at_volume:
        row = {"arm": a.arm, "one-off $": f"{a.one_off:,.2f}", "serving $/month": f"{a.monthly_serving:,.2f}"}
        if a.monthly_errors is not None:
            row["wrong answers $/month"] = f"{a.monthly_errors:,.2f}"
        row[f"total $ over {a.months:g} months"] = f"{a.total:,.2f}"
        rows.append(row)
    return pd.DataFrame(rows)


VOLUME_TITLE = "Cost at your traffic (the plan's requests_per_month, or --volume)"
FORMAT_TITLE = "Format spread of {arm} (the same test items; only the template's own text changes)"


def format_table(s: TaskSummary) -> pd.DataFrame | None:
    if s.formats is None:
        return None
    rows = [{"format": "as written", s.metric: _fmt_metric(s.metric, s.formats.original)}]
    rows += [{"format": what, s.metric: _fmt_metric(s.metric, v)} for _, what, v in s.formats.values]
    return pd.DataFrame(rows)


def selection_table(s: TaskSummary) -> pd.DataFrame | None:
    """Each side's arms with validation and test scores and test rank: the selection's optimism."""
    if s.selection is None:
        return None
    rows = [
        {
            "arm": a.variant + (" ★" if a.variant in _chosen(s) else ""),
            "side": a.side,
            f"validation {s.metric}": "—" if a.val is None else _fmt_metric(s.metric, a.val),
            f"test {s.metric}": _fmt_metric(s.metric, a.test),
            "test rank": f"{a.test_rank} of {a.side_size}",
        }
        for a in sorted(s.selection.arms, key=lambda a: (a.side, -(a.val if a.val is not None else a.test), a.variant))
    ]
    return pd.DataFrame(rows)


def effort_lines(s: TaskSummary) -> list[str]:
    """The equal-effort numbers: expected best validation score after n trials, and device-seconds."""
    out = []
    for e in s.efforts:
        points = ", ".join(f"{n}: {_fmt_metric(s.metric, m)} ({sec:,.0f} s)" for n, m, sec in e.curve)
        out.append(
            f"{e.label} ({e.method}, {counted(e.trials, 'trial')}, {e.device_s:,.0f} device-s): expected best validation "
            f"{s.metric} after n trials — {points}"
        )
    return out


def selection_lines(s: TaskSummary) -> list[str]:
    return [x for x in (s.selection_note, s.combined) if x]


def table(s: TaskSummary) -> pd.DataFrame:
    rows = []
    for r in s.rows:
        diff = (
            "—"
            if r.diff is None
            else f"{_fmt_metric(s.metric, r.diff.value)} [{_fmt_metric(s.metric, r.diff.low)}, "
            f"{_fmt_metric(s.metric, r.diff.high)}]"
        )
        rows.append({
            "variant": r.variant + (" ★" if r.variant in _chosen(s) else ""),
            "side": r.side,
            s.metric: f"{_fmt_metric(s.metric, r.metric.value)} [{_fmt_metric(s.metric, r.metric.low)}, "
                      f"{_fmt_metric(s.metric, r.metric.high)}]",
            **{m: _fmt_metric(m, v) for m, v in r.secondary.items()},
            f"Δ vs {s.best_prompt}": diff,
            "p": _p(r),
            "prompt tok": f"{r.prompt_tokens:.0f}", "compl tok": f"{r.completion_tokens:.1f}",
            "device ms/request": f"{r.latency_s * 1000:.0f}",
            "wait p50/p95 ms": "—" if r.wait_p50 is None else f"{r.wait_p50 * 1000:.0f}/{(r.wait_p95 or 0) * 1000:.0f}",
            "$/1k req": f"{r.cost_per_1k:.4f}",
            "train $": "—" if r.train_cost is None else f"{r.train_cost:.3f}",
            "break-even requests": _break_even(r.break_even),
        })  # fmt: skip
    return pd.DataFrame(rows)


def _break_even(be: Any) -> str:
    if be is None:
        return "—"
    if be.requests is None:
        return "never"
    if be.interval is None or not math.isfinite(be.interval[0]):
        return f"{be.requests:,.0f}"
    high = "never" if be.interval[1] is None else f"{be.interval[1]:,.0f}"
    return f"{be.requests:,.0f} [{be.interval[0]:,.0f}, {high}]"


def _p(r: Row) -> str:
    if r.p_holm is not None:
        return f"{r.p_holm:.3g} (Holm)"
    return "—" if r.p_value is None else f"{r.p_value:.3g}"


def _tests(s: TaskSummary) -> str:
    return ", ".join(sorted({r.test for r in s.rows if r.test})) or "none"


# Columns a narrow terminal drops first; the arm, its metric and its difference always stay.
DROP_ORDER = (
    "compl tok", "prompt tok", "wait p50/p95 ms", "device ms/request", "side", "train $", "$/1k req",
    "break-even requests", "p",
)  # fmt: skip


def fitted_table(console: Any, df: Any, title: str) -> tuple[Any, list[str]]:
    """The table at the console's width: low-priority columns dropped (DROP_ORDER) until it fits,
    a name may fold, a number or an interval is never broken across lines."""
    from rich.measure import Measurement
    from rich.table import Table

    def build(keep: list[str]) -> Table:
        t = Table(title=title)
        for c in keep:
            t.add_column(c, overflow="fold", no_wrap=c != "variant")
        for _, row in df.iterrows():
            t.add_row(*[str(row[c]) for c in keep])
        return t

    columns, hidden = [str(c) for c in df.columns], []
    t = build(columns)
    natural = console.options.update_width(UNBOUNDED)  # a measure is capped at the width it is given
    for c in DROP_ORDER:
        if Measurement.get(console, natural, t).maximum <= console.width:
            break
        if c in columns:
            columns.remove(c)
            hidden.append(c)
            t = build(columns)
    return t, hidden


def print_rich(summaries: Sequence[TaskSummary]) -> None:
    console = make_console()
    for s in summaries:
        title = f"{s.task} — {s.metric}, {s.n_items} test items (95% CI; Δ paired vs best prompt)"
        t, hidden = fitted_table(console, table(s), title)
        console.print(t)
        if hidden:
            console.print(
                f"(hidden to fit {console.width} columns: {', '.join(hidden)}; every column is in report.md)",
                markup=False,
                style="dim",
            )
        console.print(f"[bold]Verdict:[/bold] {s.verdict}")
        for line in selection_lines(s):
            console.print(line, markup=False)
        if s.majority:
            console.print(f"Majority-class baseline: always {s.majority[0]!r} scores {s.majority[1] * 100:.1f}% accuracy.")
        for w in s.data_warnings:
            console.print(f"[yellow]Data warning:[/yellow] {w}")
        for r in s.retention:
            console.print(f"[bold]Retention:[/bold] {r.sentence}")
        if s.learning_curve:
            curve = ", ".join(f"n={n}: {_fmt_metric(s.metric, m)}" for n, m, _, _ in s.learning_curve)
            console.print(
                f"Learning curve: {curve}; smallest size at which most seeds' adapters beat the best prompt: "
                f"{s.smallest_winning_size or 'none of those tried'}"
            )
        console.print()


def to_markdown(summaries: Sequence[TaskSummary], manifests: Sequence[dict[str, Any]]) -> str:
    lines = ["# Prompt or fine-tune? Comparison report", ""]
    for m in manifests:
        lines.append(
            f"Run {code(m.get('run_id'))} — model {code(m.get('model'))} (hash {md(m.get('model_hash'))}), backend "
            f"{code(m.get('backend'))}, git {md(str(m.get('git_sha', '?'))[:10])}, {md(m.get('created', ''))}."
        )
        if m.get("backend") == "fake":
            lines.append("**FAKE backend: scripted answers, not a model. These numbers mean nothing.**")
        if m.get("missing"):
            lines.append(f"**{md(completeness.sentence(m['missing']))}**")
    lines += ["", "## Decisions", ""]
    for s in summaries:
        lines += cards.markdown(cards.card(s))
    for s in summaries:
        lines += [
            f"## {md(s.task)}",
            "",
            f"**Verdict:** {md(s.verdict)}",
            "",
            f"{s.metric} with 95% bootstrap CI over {s.n_items} test items; Δ is the paired difference against "
            f"the selected prompt ({md(s.best_prompt)}); p is the metric's own paired test ({_tests(s)}), "
            "Holm-corrected across the adapter arms; the other prompts' p is unadjusted (they were not "
            "chosen by it: selection is on validation). "
            "★ marks the arms chosen on validation.",
            "",
            md_table(table(s)),
            "",
        ]
        lines += [md(x) + "\n" for x in selection_lines(s)]
        sel = selection_table(s)
        if sel is not None:
            lines += ["Selection (validation chooses; test only reports):", "", md_table(sel), ""]
        if s.efforts:
            lines += ["Tuning effort (expected best validation score against trials, Dodge et al. 2019):", ""]
            lines += [f"- {md(x)}" for x in effort_lines(s)] + [""]
        if s.learning_curve:
            lines += ["Learning curve (adapter metric by number of labelled training examples):", ""]
            lines += [
                f"- n={n}: {_fmt_metric(s.metric, m)} [{_fmt_metric(s.metric, lo)}, {_fmt_metric(s.metric, hi)}]"
                for n, m, lo, hi in s.learning_curve
            ]
            lines += [
                "",
                f"Smallest size at which most of its seeds' adapters significantly beat the best prompt "
                f"(the curve is the mean over seeds; the verdict compares the adapter chosen on validation): "
                f"{md(s.smallest_winning_size or 'none of those tried')}.",
                "",
            ]
        money = volume_table(s)
        if money is not None:
            lines += [f"{VOLUME_TITLE}:", "", md_table(money, disable_numparse=True), ""]
        spread = format_table(s)
        if spread is not None and s.formats is not None:
            lines += [
                f"{md(FORMAT_TITLE.format(arm=s.formats.arm))}:",
                "",
                md_table(spread, disable_numparse=True),
                "",
            ]
        if s.majority:
            lines += [
                f"Majority-class baseline: always answering {md(repr(s.majority[0]))} (the commonest training label) "
                f"scores {s.majority[1] * 100:.1f}% accuracy on these items.",
                "",
            ]
        if s.data_warnings:
            lines += ["Data warnings:", ""] + [f"- {md(w)}" for w in s.data_warnings] + [""]
        if s.retention:
            lines += ["Retention (what specialising cost on other tasks):", ""]
            lines += [f"- {md(r.sentence)}" for r in s.retention]
            lines.append("")
        if s.training:
            lines += [
                "Training and validation loss per epoch (validation loss rising while training loss falls "
                "means overfitting):",
                "",
                md_table(pd.DataFrame(list(s.training))),
                "",
            ]
        if s.disagreements:
            lines += [
                f"Items where {md(s.best_adapter)} and {md(s.best_prompt)} disagree: {len(s.disagreements)} "
                f"(first 10 below; all in metrics.json).",
                "",
            ]
            lines += [md_table(pd.DataFrame(list(s.disagreements[:10]))), ""]
    return "\n".join(lines) + "\n"


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def plots(s: TaskSummary) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(s.rows) + 1.2))
    names = [r.variant for r in s.rows]
    vals = [r.metric.value for r in s.rows]
    err = [[r.metric.value - r.metric.low for r in s.rows], [r.metric.high - r.metric.value for r in s.rows]]
    ax.barh(names, vals, xerr=err, color=["tab:orange" if r.is_adapter else "tab:blue" for r in s.rows], capsize=3)
    ax.set_xlabel(f"{s.metric} (95% CI)")
    ax.set_title(f"{s.task}: prompts (blue) vs adapters (orange)")
    out.append(("Metric per variant", _png(fig)))
    if s.learning_curve:
        fig, ax = plt.subplots(figsize=(7, 4))
        xs = [c[0] for c in s.learning_curve]
        ax.errorbar(
            xs,
            [c[1] for c in s.learning_curve],
            yerr=[[c[1] - c[2] for c in s.learning_curve], [c[3] - c[1] for c in s.learning_curve]],
            marker="o",
            color="tab:orange",
            label="LoRA adapter",
            capsize=3,
        )
        for r in s.rows:
            if not r.is_adapter:
                ax.axhline(r.metric.value, linestyle="--", linewidth=1, label=r.variant)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("labelled training examples")
        ax.set_ylabel(s.metric)
        ax.legend(fontsize=8)
        ax.set_title(f"{s.task}: learning curve")
        out.append(("Learning curve", _png(fig)))
    if s.efforts:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
        for e in s.efforts:
            color = "tab:blue" if e.side == "prompt" else "tab:orange"
            axes[0].plot([c[0] for c in e.curve], [c[1] for c in e.curve], marker="o", color=color, label=e.label)
            axes[1].plot([c[2] for c in e.curve], [c[1] for c in e.curve], marker="o", color=color, label=e.label)
        axes[0].set_xlabel("trials")
        axes[1].set_xlabel("device-seconds")
        axes[0].set_ylabel(f"expected best validation {s.metric}")
        axes[0].legend(fontsize=8)
        fig.suptitle(f"{s.task}: tuning effort of each side (expected maximum over random subsets of trials)")
        out.append(("Equal effort", _png(fig)))
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in s.rows:
        ax.scatter(r.cost_per_1k, r.metric.value, color="tab:orange" if r.is_adapter else "tab:blue")
        ax.annotate(r.variant, (r.cost_per_1k, r.metric.value), fontsize=7)
    ax.set_xlabel("cost per 1,000 requests ($)")
    ax.set_ylabel(s.metric)
    ax.set_title(f"{s.task}: quality against cost")
    out.append(("Quality against cost", _png(fig)))
    return out


def to_html(summaries: Sequence[TaskSummary], manifests: Sequence[dict[str, Any]]) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Prompt or fine-tune?</title><style>",
        "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}"
        ".verdict{background:#f3f7ff;border-left:4px solid #36c;padding:.6em 1em;font-size:1.05em}"
        "img{max-width:100%}" + cards.CSS + "</style></head><body><h1>Prompt or fine-tune? Comparison report</h1>",
    ]
    for m in manifests:
        parts.append(
            f"<p>Run <code>{html.escape(str(m.get('run_id')))}</code>, model <code>{html.escape(str(m.get('model')))}"
            f"</code>, backend <code>{html.escape(str(m.get('backend')))}</code>, "
            f"{html.escape(str(m.get('created', '')))}</p>"
        )
        if m.get("backend") == "fake":
            parts.append("<p><b>FAKE backend: scripted answers, not a model.</b></p>")
        if m.get("missing"):
            parts.append(f"<p><b>{html.escape(completeness.sentence(m['missing']))}</b></p>")
    parts += [cards.html_card(cards.card(s)) for s in summaries]
    for s in summaries:
        parts += [
            f"<h2>{html.escape(s.task)}</h2>",
            f"<p class='verdict'><b>Verdict:</b> {html.escape(s.verdict)}</p>",
            table(s).to_html(index=False, escape=True),
        ]
        parts += [f"<p>{html.escape(x)}</p>" for x in selection_lines(s)]
        sel = selection_table(s)
        if sel is not None:
            parts += ["<h3>Selection (validation chooses; test only reports)</h3>", sel.to_html(index=False)]
        if s.efforts:
            parts += ["<h3>Tuning effort</h3><ul>"] + [f"<li>{html.escape(x)}</li>" for x in effort_lines(s)] + ["</ul>"]
        money = volume_table(s)
        if money is not None:
            parts += [f"<h3>{html.escape(VOLUME_TITLE)}</h3>", money.to_html(index=False)]
        spread = format_table(s)
        if spread is not None and s.formats is not None:
            parts += [f"<h3>{html.escape(FORMAT_TITLE.format(arm=s.formats.arm))}</h3>", spread.to_html(index=False)]
        if s.majority:
            parts.append(
                f"<p>Majority-class baseline: always answering {html.escape(s.majority[0])!r} scores "
                f"{s.majority[1] * 100:.1f}% accuracy on these items.</p>"
            )
        parts += [f"<p><b>Data warning:</b> {html.escape(w)}</p>" for w in s.data_warnings]
        parts += [f"<p><b>Retention:</b> {html.escape(r.sentence)}</p>" for r in s.retention]
        if s.training:
            parts += ["<h3>Training and validation loss per epoch</h3>", pd.DataFrame(list(s.training)).to_html(index=False)]
        for title, data in plots(s):
            parts.append(f"<h3>{title}</h3><img alt='{title}' src='data:image/png;base64,{data}'>")
        if s.confusion and len(next(iter(s.confusion.values()), {})) <= 12:
            for v in (s.best_prompt, s.best_adapter):
                if v and v in s.confusion:
                    df = pd.DataFrame(s.confusion[v]).T.fillna(0).astype(int)
                    parts += [f"<h3>Confusion matrix: {html.escape(v)} (rows: gold)</h3>", df.to_html()]
        if s.disagreements:
            parts += [
                f"<h3>Disagreements ({len(s.disagreements)})</h3>",
                pd.DataFrame(list(s.disagreements[:50])).to_html(index=False),
            ]
    parts.append(cards.page_script())
    parts.append("</body></html>")
    return "\n".join(parts)


def metrics_json(summaries: Sequence[TaskSummary]) -> dict[str, Any]:
    return {s.task: {**asdict(s), "rows": [asdict(r) for r in s.rows]} for s in summaries}


def write_reports(out_dir: Path, summaries: Sequence[TaskSummary], manifests: Sequence[dict[str, Any]]) -> None:
    write_json(out_dir / METRICS, metrics_json(summaries))
    checkpoint("mid-report")
    atomic_write(out_dir / "report.md", to_markdown(summaries, manifests))
    atomic_write(out_dir / "report.html", to_html(summaries, manifests))
