"""The built-in tasks' hand-written fixture rows (they live in each task file, next to the task)."""

from __future__ import annotations

import json
from pathlib import Path

from harness.taskkit.registry import builtin_dir, registry

BUILTIN = sorted(p.stem for p in builtin_dir("tasks").glob("*.py") if not p.name.startswith("_"))


def _fixtures() -> tuple[dict[str, dict[str, list[dict]]], dict[str, str]]:
    tasks = registry(())
    rows, wrong = {}, {}
    for name in BUILTIN:
        fx = tasks[name].fixtures
        assert fx is not None, f"built-in task {name} has no fixtures"
        rows[name] = {split: [dict(r) for r in split_rows] for split, split_rows in fx.rows.items()}
        wrong[name] = fx.wrong
    return rows, wrong


ROWS, WRONG = _fixtures()


def write_data_dir(root: Path, tasks: list[str] | None = None) -> Path:
    for task, splits in ROWS.items():
        if tasks and task not in tasks:
            continue
        (root / task).mkdir(parents=True, exist_ok=True)
        for split, rows in splits.items():
            (root / task / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root
