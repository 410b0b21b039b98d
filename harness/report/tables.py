"""The report's tables and lines, as plain rows of text: every renderer (terminal, Markdown, HTML)
shows the same cells."""

from __future__ import annotations

import math
from typing import Any

from harness.analysis.records import Row, TaskSummary
from harness.core.words import counted
from harness.taskkit.metrics import metric

Rows = list[dict[str, str]]


def chosen(s: TaskSummary) -> tuple[str, ...]:
    if s.selection is None:
        return tuple(v for v in (s.best_prompt, s.best_adapter) if v)
    return tuple(a.variant for a in s.selection.chosen())


def volume_table(s: TaskSummary) -> Rows | None:
    """The chosen arms at the plan's traffic: one-off, monthly and total cost over the horizon."""
    if not s.at_volume or not any(a.monthly_serving for a in s.at_volume):
        return None
    rows: Rows = []
    for a in s.at_volume:
        row = {"arm": a.arm, "one-off $": f"{a.one_off:,.2f}", "serving $/month": f"{a.monthly_serving:,.2f}"}
        if a.monthly_errors is not None:
            row["wrong answers $/month"] = f"{a.monthly_errors:,.2f}"
        row[f"total $ over {a.months:g} months"] = f"{a.total:,.2f}"
        rows.append(row)
    return rows


VOLUME_TITLE = "Cost at your traffic (the plan's requests_per_month, or --volume)"
FORMAT_TITLE = "Format spread of {arm} (the same test items; only the template's own text changes)"


def format_table(s: TaskSummary) -> Rows | None:
    if s.formats is None:
        return None
    rows = [{"format": "as written", s.metric: metric(s.metric).shown(s.formats.original)}]
    rows += [{"format": what, s.metric: metric(s.metric).shown(v)} for _, what, v in s.formats.values]
    return rows


def selection_table(s: TaskSummary) -> Rows | None:
    """Each side's arms with validation and test scores and test rank: the selection's optimism."""
    if s.selection is None:
        return None
    rows = [
        {
            "arm": a.variant + (" ★" if a.variant in chosen(s) else ""),
            "side": a.side,
            f"validation {s.metric}": "—" if a.val is None else metric(s.metric).shown(a.val),
            f"test {s.metric}": metric(s.metric).shown(a.test),
            "test rank": f"{a.test_rank} of {a.side_size}",
        }
        for a in sorted(s.selection.arms, key=lambda a: (a.side, -(a.val if a.val is not None else a.test), a.variant))
    ]
    return rows


def effort_lines(s: TaskSummary) -> list[str]:
    """The equal-effort numbers: expected best validation score after n trials, and device-seconds."""
    out = []
    for e in s.efforts:
        points = ", ".join(f"{n}: {metric(s.metric).shown(m)} ({sec:,.0f} s)" for n, m, sec in e.curve)
        out.append(
            f"{e.label} ({e.method}, {counted(e.trials, 'trial')}, {e.device_s:,.0f} device-s): expected best validation "
            f"{s.metric} after n trials — {points}"
        )
    return out


def selection_lines(s: TaskSummary) -> list[str]:
    return [x for x in (s.selection_note, s.combined) if x]


def table(s: TaskSummary) -> Rows:
    rows: Rows = []
    for r in s.rows:
        level = "" if r.diff is None or abs(r.ci_level - 0.95) < 1e-9 else f" {r.ci_level:.1%}"
        diff = (
            "—"
            if r.diff is None
            else f"{metric(s.metric).shown(r.diff.value)} [{metric(s.metric).shown(r.diff.low)}, "
            f"{metric(s.metric).shown(r.diff.high)}]{level}"
        )
        rows.append({
            "variant": r.variant + (" ★" if r.variant in chosen(s) else ""),
            "side": r.side,
            s.metric: f"{metric(s.metric).shown(r.metric.value)} [{metric(s.metric).shown(r.metric.low)}, "
                      f"{metric(s.metric).shown(r.metric.high)}]",
            **{m: metric(m).shown(v) for m, v in r.secondary.items()},
            f"Δ vs {s.best_prompt}": diff,
            "p": _p(r),
            "prompt tok": f"{r.prompt_tokens:.0f}", "compl tok": f"{r.completion_tokens:.1f}",
            "device ms/request": f"{r.latency_s * 1000:.0f}",
            "wait p50/p95 ms": "—" if r.wait_p50 is None else f"{r.wait_p50 * 1000:.0f}/{(r.wait_p95 or 0) * 1000:.0f}",
            "$/1k req": f"{r.cost_per_1k:.4f}",
            "train $": "—" if r.train_cost is None else f"{r.train_cost:.3f}",
            "break-even requests": _break_even(r.break_even),
        })  # fmt: skip
    return rows


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
    if r.p_value is not None and r.side != "prompt":
        return f"{r.p_value:.3g} (headline)"
    return "—" if r.p_value is None else f"{r.p_value:.3g}"


def tests_used(s: TaskSummary) -> str:
    return ", ".join(sorted({r.test for r in s.rows if r.test})) or "none"
