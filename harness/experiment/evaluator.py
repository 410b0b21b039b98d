"""The runner's evaluate() with a progress bar on the console, for one run folder and backend."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from harness.core.console import make_console
from harness.core.types import Sample
from harness.engines.backends.base import Backend
from harness.experiment.runner import evaluate
from harness.experiment.variant import Variant
from harness.taskkit.registry import Task

console = make_console(stderr=True)


class Evaluator:
    def __init__(self, run_dir: Path, backend: Backend, seed: int, batch_size: int):
        self.run_dir, self.backend, self.seed, self.batch_size = run_dir, backend, seed, batch_size

    def __call__(
        self,
        task: Task,
        variants: Sequence[Variant],
        items: Sequence[Sample],
        pool: Sequence[Sample],
        split: str = "test",
        calibration: Sequence[Sample] = (),
    ) -> list[dict[str, Any]]:
        """`calibration`: the validation items a batch-calibrated arm estimates its prior on."""
        label = f"eval {task.name} [{split}] {', '.join(v.name for v in variants)}"
        columns = (TextColumn(label, markup=False), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console) as prog:
            bar = prog.add_task("eval", total=None)

            def update(done: int, total: int) -> None:
                prog.update(bar, completed=done, total=total)

            return evaluate(
                task, variants, items, pool, self.backend, self.run_dir, seed=self.seed, batch_size=self.batch_size,
                on_batch=update, split=split, calibration_items=calibration,
            )  # fmt: skip
