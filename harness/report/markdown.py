"""The report's sections as Markdown (report.md): names and sentences escaped (harness.report.mdtext),
tables as pipe tables; figures left out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.report import cards
from harness.report.mdtext import code, md
from harness.report.mdtext import table as md_table
from harness.report.sections import (
    TITLE,
    Block,
    Bullets,
    Card,
    Disagreements,
    Heading,
    RunLine,
    Table,
    Text,
    Verdict,
)

SHOWN_DISAGREEMENTS = 10  # all of them are in metrics.json


def to_markdown(blocks: Sequence[Block]) -> str:
    lines = [f"# {TITLE}", ""]
    for b in blocks:
        if isinstance(b, RunLine):
            lines += _run_line(b)
    lines.append("")
    for b in blocks:
        lines += _block(b)
    return "\n".join(lines) + "\n"


def _run_line(b: RunLine) -> list[str]:
    line = (
        f"Run {code(b.run_id)} — model {code(b.model)} (hash {md(b.model_hash)}), backend "
        f"{code(b.backend)}, git {md(b.git_sha)}, {md(b.created)}."
    )
    return [line] + [f"**{md(w)}**" for w in b.warnings]


def _block(b: Block) -> list[str]:
    import pandas as pd  # 0.2-0.3 s to import: only when a report is written, not with every command

    if isinstance(b, Heading):
        return [f"## {md(b.text)}", ""]
    if isinstance(b, Card):
        return cards.markdown(b.card)
    if isinstance(b, Verdict):
        return [f"**Verdict:** {md(b.text)}", "", *(f"- **{md(k)}:** {md(v)}" for k, v in b.lines), ""]
    if isinstance(b, Text):
        return [md(b.text), ""]
    if isinstance(b, Table):
        options: dict[str, Any] = {} if b.numbers else {"disable_numparse": True}
        title = [f"{md(b.title)}:", ""] if b.title else []
        return [*title, md_table(pd.DataFrame(b.rows), **options), ""]
    if isinstance(b, Bullets):
        items = [f"- {x}" if b.literal else f"- {md(x)}" for x in b.items]
        return [f"{md(b.title)}:", "", *items, "", *([md(b.after), ""] if b.after else [])]
    if isinstance(b, Disagreements):
        head = (
            f"Items where {b.adapter} and {b.prompt} disagree: {len(b.rows)} "
            f"(first {SHOWN_DISAGREEMENTS} below; all in metrics.json)."
        )
        return [md(head), "", md_table(pd.DataFrame(list(b.rows[:SHOWN_DISAGREEMENTS]))), ""]
    return []  # figures and confusion matrices: the page shows them
