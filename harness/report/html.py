"""The report's sections as one self-contained page (report.html): every text escaped, figures
inline, the decision cards with a volume slider (inline script, no external resource)."""

from __future__ import annotations

import html
from collections.abc import Sequence

from harness.report import cards
from harness.report.sections import (
    TITLE,
    Block,
    Bullets,
    Card,
    Confusion,
    Disagreements,
    Figure,
    Heading,
    RunLine,
    Table,
    Text,
    Verdict,
)

SHOWN_DISAGREEMENTS = 50
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}"
    ".verdict{background:#f3f7ff;border-left:4px solid #36c;padding:.6em 1em;font-size:1.05em}"
    "img{max-width:100%}"
)


def to_html(blocks: Sequence[Block]) -> str:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>Prompt or fine-tune?</title><style>{STYLE}"
        f"{cards.CSS}</style></head><body><h1>{TITLE}</h1>"
    ]
    parts += [_block(b) for b in blocks]
    parts += [cards.page_script(), "</body></html>"]
    return "\n".join(parts)


def _block(b: Block) -> str:
    import pandas as pd  # 0.2-0.3 s to import: only when a report is written, not with every command

    e = html.escape
    if isinstance(b, RunLine):
        line = (
            f"<p>Run <code>{e(b.run_id)}</code>, model <code>{e(b.model)}</code> (hash {e(b.model_hash)}), backend "
            f"<code>{e(b.backend)}</code>, git {e(b.git_sha)}, {e(b.created)}</p>"
        )
        return "\n".join([line, *(f"<p><b>{e(w)}</b></p>" for w in b.warnings)])
    if isinstance(b, Heading):
        return f"<h2>{e(b.text)}</h2>"
    if isinstance(b, Card):
        return cards.html_card(b.card)
    if isinstance(b, Verdict):
        lines = "".join(f"<li><b>{e(k)}:</b> {e(v)}</li>" for k, v in b.lines)
        return f"<div class='verdict'><p><b>Verdict:</b> {e(b.text)}</p>" + (f"<ul>{lines}</ul>" if lines else "") + "</div>"
    if isinstance(b, Text):
        return f"<p>{e(b.text)}</p>"
    if isinstance(b, Table):
        title = f"<h3>{e(b.title)}</h3>" if b.title else ""
        return title + pd.DataFrame(b.rows).to_html(index=False, escape=True)
    if isinstance(b, Bullets):
        items = "".join(f"<li>{e(x)}</li>" for x in b.items)
        return f"<h3>{e(b.title)}</h3><ul>{items}</ul>" + (f"<p>{e(b.after)}</p>" if b.after else "")
    if isinstance(b, Figure):
        return f"<h3>{e(b.title)}</h3><img alt='{e(b.title)}' src='data:image/png;base64,{b.png}'>"
    if isinstance(b, Confusion):
        counts = pd.DataFrame(b.counts).T.fillna(0).astype(int)
        return f"<h3>Confusion matrix: {e(b.variant)} (rows: gold)</h3>" + counts.to_html()
    if isinstance(b, Disagreements):
        shown = pd.DataFrame(list(b.rows[:SHOWN_DISAGREEMENTS])).to_html(index=False)
        return f"<h3>Disagreements ({len(b.rows)})</h3>" + shown
    raise TypeError(f"no HTML for {type(b).__name__}")
