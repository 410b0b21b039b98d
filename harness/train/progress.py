"""Rich progress for training: loss, tokens/s and ETA."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from harness.core.console import make_console
from harness.core.faults import checkpoint
from harness.train.examples import Example


class TrainingProgress:
    """The events of a training run this progress line handles (transformers' Trainer calls them)."""

    def __init__(self, examples: list[Example], work: Path, enabled: bool = True, label: str = "train"):
        self.work = work
        wall_file = work / "wall.json"
        self.prior_wall = json.loads(wall_file.read_text())["wall"] if wall_file.is_file() else 0.0
        self.tokens_per_epoch = sum(len(e.input_ids) for e in examples)
        self.enabled, self.label = enabled, label
        self._progress: Any = None
        self._task: Any = None
        self._start = 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._start = time.perf_counter()
        if not self.enabled:
            return

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            transient=False,
            console=make_console(stderr=True),  # stdout stays for tables and --format json
        )
        self._progress.start()
        self._task = self._progress.add_task(self.label, total=state.max_steps, completed=state.global_step, info="")

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
        if not self._progress or not logs or not ({"loss", "eval_loss"} & set(logs)):
            return
        elapsed = time.perf_counter() - self._start
        done_epochs = state.epoch or 0.0
        tok_s = self.tokens_per_epoch * done_epochs / elapsed if elapsed > 0 else 0.0
        info = f"loss {logs['loss']:.3f}  {tok_s:,.0f} tok/s" if "loss" in logs else f"val {logs.get('eval_loss', 0):.3f}"
        self._progress.update(self._task, completed=state.global_step, info=info)

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        # Wall time of earlier, interrupted attempts counts towards the adapter's training cost.
        (self.work / "wall.json").write_text(json.dumps({"wall": self.total_wall()}))
        checkpoint("train-saved")

    def total_wall(self) -> float:
        return self.prior_wall + time.perf_counter() - self._start

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self._progress:
            self._progress.stop()


@functools.cache
def callback_class() -> type:
    """TrainingProgress as transformers' TrainerCallback, whose other events are no-ops: made when
    training starts, since transformers takes most of a second to import."""
    from transformers import TrainerCallback

    return type("ProgressCallback", (TrainingProgress, TrainerCallback), {})
