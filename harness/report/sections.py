"""The report as one list of sections, which the Markdown and HTML renderers both walk: what the
report says is decided here once; how a heading, a table or a list looks is each renderer's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.analysis.records import TaskSummary
from harness.report import cards, tables
from harness.report.plots import plots
from harness.report.tables import Rows
from harness.runlog import completeness
from harness.taskkit.metrics import metric

TITLE = "Prompt or fine-tune? Comparison report"


@dataclass(frozen=True)
class RunLine:
    """Which run the report is of: its id, model, backend, code version and time."""

    run_id: str
    model: str
    model_hash: str
    backend: str
    git_sha: str
    created: str
    warnings: tuple[str, ...]  # said in bold: a fake backend, an unfinished run


@dataclass(frozen=True)
class Heading:
    text: str


@dataclass(frozen=True)
class Card:
    card: cards.Card


@dataclass(frozen=True)
class Verdict:
    """The headline that names the action, then labelled lines (harness.analysis.records.VerdictText)."""

    text: str
    lines: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Table:
    title: str | None
    rows: Rows
    numbers: bool = True  # cells that read as numbers are aligned as numbers (Markdown)


@dataclass(frozen=True)
class Bullets:
    title: str
    items: tuple[str, ...]
    after: str = ""  # a sentence under the list
    literal: bool = False  # items the harness wrote from numbers alone: nothing in them to escape


@dataclass(frozen=True)
class Figure:
    """A plot: pages show it; Markdown, a text format, leaves it out."""

    title: str
    png: str  # base64


@dataclass(frozen=True)
class Confusion:
    """A confusion matrix (gold rows, answer columns): pages show it."""

    variant: str
    counts: dict[str, dict[str, int]]


@dataclass(frozen=True)
class Disagreements:
    """The items on which the selected adapter and prompt answer differently."""

    prompt: str
    adapter: str
    rows: tuple[dict[str, Any], ...]


Block = RunLine | Heading | Card | Verdict | Text | Table | Bullets | Figure | Confusion | Disagreements


def sections(summaries: Sequence[TaskSummary], manifests: Sequence[dict[str, Any]], figures: bool = True) -> list[Block]:
    """`figures`: draw the plots (the Markdown renderer does not show them)."""
    out: list[Block] = [run_line(m) for m in manifests]
    out.append(Heading("Decisions"))
    out += [Card(cards.card(s)) for s in summaries]
    for s in summaries:
        out += task_sections(s, figures)
    return out


def run_line(m: dict[str, Any]) -> RunLine:
    warnings = (
        ["FAKE backend: scripted answers, not a model. These numbers mean nothing."] if m.get("backend") == "fake" else []
    )
    if m.get("missing"):
        warnings.append(completeness.sentence(m["missing"]))
    return RunLine(
        str(m.get("run_id")), str(m.get("model")), str(m.get("model_hash")), str(m.get("backend")),
        str(m.get("git_sha", "?"))[:10], str(m.get("created", "")), tuple(warnings),
    )  # fmt: skip


def task_sections(s: TaskSummary, figures: bool = True) -> list[Block]:
    shown = metric(s.metric).shown
    out: list[Block] = [
        Heading(s.task),
        Verdict(s.structured.headline, s.structured.lines) if s.structured else Verdict(s.verdict),
        Text(
            f"{s.metric} with its 95% CI over {s.n_items} test items; Δ is the paired difference against "
            f"the selected prompt ({s.best_prompt}); p is the metric's own paired test ({tables.tests_used(s)}). "
            "The headline arms (★, chosen on validation before test was read) are each one confirmatory test, "
            "unadjusted; every other adapter arm is exploratory: its p is Holm-corrected across them and its "
            "Δ interval is at the matching Bonferroni level (shown). The other prompts' p is unadjusted (they "
            "were not chosen by it: selection is on validation)."
        ),
        Table(None, tables.table(s)),
    ]
    out += [Text(x) for x in tables.selection_lines(s)]
    selection = tables.selection_table(s)
    if selection is not None:
        out.append(Table("Selection (validation chooses; test only reports)", selection))
    if s.efforts:
        title = "Tuning effort (expected best validation score against trials, Dodge et al. 2019)"
        out.append(Bullets(title, tuple(tables.effort_lines(s))))
    if s.learning_curve:
        out.append(
            Bullets(
                "Learning curve (adapter metric by number of labelled training examples)",
                tuple(f"n={n}: {shown(m)} [{shown(lo)}, {shown(hi)}]" for n, m, lo, hi in s.learning_curve),
                "Smallest size at which most of its seeds' adapters significantly beat the best prompt "
                "(the curve is the mean over seeds; the verdict compares the adapter chosen on validation): "
                f"{s.smallest_winning_size or 'none of those tried'}.",
                literal=True,
            )
        )
    out += _costs_and_notes(s)
    if figures:
        out += [Figure(title, data) for title, data in plots(s)]
    if s.confusion and len(next(iter(s.confusion.values()), {})) <= 12:
        out += [Confusion(v, s.confusion[v]) for v in (s.best_prompt, s.best_adapter) if v and v in s.confusion]
    if s.disagreements and s.best_adapter:
        out.append(Disagreements(s.best_prompt, s.best_adapter, s.disagreements))
    return out


def _costs_and_notes(s: TaskSummary) -> list[Block]:
    out: list[Block] = []
    money = tables.volume_table(s)
    if money is not None:
        out.append(Table(tables.VOLUME_TITLE, money, numbers=False))
    spread = tables.format_table(s)
    if spread is not None and s.formats is not None:
        out.append(Table(tables.FORMAT_TITLE.format(arm=s.formats.arm), spread, numbers=False))
    if s.majority:
        out.append(
            Text(
                f"Majority-class baseline: always answering {s.majority[0]!r} (the commonest training label) "
                f"scores {s.majority[1] * 100:.1f}% accuracy on these items."
            )
        )
    if s.data_warnings:
        out.append(Bullets("Data warnings", s.data_warnings))
    if s.retention:
        out.append(Bullets("Retention (what specialising cost on other tasks)", tuple(r.sentence for r in s.retention)))
    if s.training:
        title = "Training and validation loss per epoch (validation loss rising while training loss falls means overfitting)"
        out.append(Table(title, [dict(r) for r in s.training]))
    return out
