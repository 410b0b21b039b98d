"""The report on the terminal: each task's table at the console's width, its verdict and notes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from harness.analysis.records import TaskSummary
from harness.core.console import UNBOUNDED, make_console
from harness.report.tables import Rows, selection_lines, table
from harness.taskkit.metrics import metric

# Columns a narrow terminal drops first; the arm, its metric and its difference always stay.
DROP_ORDER = (
    "compl tok", "prompt tok", "wait p50/p95 ms", "device ms/request", "side", "train $", "$/1k req",
    "break-even requests", "p",
)  # fmt: skip


def fitted_table(console: Any, rows: Rows, title: str) -> tuple[Table, list[str]]:
    """The table at the console's width: low-priority columns dropped (DROP_ORDER) until it fits,
    a name may fold, a number or an interval is never broken across lines."""

    def build(keep: list[str]) -> Table:
        t = Table(title=title)
        for c in keep:
            t.add_column(c, overflow="fold", no_wrap=c != "variant")
        for row in rows:
            t.add_row(*[str(row[c]) for c in keep])
        return t

    columns, hidden = list(rows[0]) if rows else [], []
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
        # names and answers are text, never markup: a variant named "[red]" is printed as it is
        if s.structured is None:
            console.print(f"[bold]Verdict:[/bold] {escape(s.verdict)}")
        else:
            console.print(f"[bold]Verdict:[/bold] {escape(s.structured.headline)}")
            for label, line in s.structured.lines:
                console.print(f"  [bold]{escape(label)}:[/bold] {escape(line)}")
        for line in selection_lines(s):
            console.print(line, markup=False)
        if s.majority:
            console.print(
                f"Majority-class baseline: always {s.majority[0]!r} scores {s.majority[1] * 100:.1f}% accuracy.",
                markup=False,
            )
        for w in s.data_warnings:
            console.print(f"[yellow]Data warning:[/yellow] {escape(w)}")
        for r in s.retention:
            console.print(f"[bold]Retention:[/bold] {escape(r.sentence)}")
        if s.learning_curve:
            curve = ", ".join(f"n={n}: {metric(s.metric).shown(m)}" for n, m, _, _ in s.learning_curve)
            console.print(
                f"Learning curve: {curve}; smallest size at which most seeds' adapters beat the best prompt: "
                f"{s.smallest_winning_size or 'none of those tried'}",
                markup=False,
            )
        console.print()
