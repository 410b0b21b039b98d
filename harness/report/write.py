"""A run folder's report files: metrics.json (every number), report.md and report.html (the same
sections, rendered twice), each written atomically."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.analysis.records import TaskSummary
from harness.core.faults import checkpoint
from harness.core.files import atomic_write, write_json
from harness.report.html import to_html
from harness.report.markdown import to_markdown
from harness.report.sections import sections
from harness.runlog.folder import METRICS


def metrics_json(summaries: Sequence[TaskSummary]) -> dict[str, Any]:
    return {s.task: {**asdict(s), "rows": [asdict(r) for r in s.rows]} for s in summaries}


def write_reports(out_dir: Path, summaries: Sequence[TaskSummary], manifests: Sequence[dict[str, Any]]) -> None:
    write_json(out_dir / METRICS, metrics_json(summaries))
    checkpoint("mid-report")
    atomic_write(out_dir / "report.md", to_markdown(sections(summaries, manifests, figures=False)))
    atomic_write(out_dir / "report.html", to_html(sections(summaries, manifests)))
