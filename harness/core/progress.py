"""Progress bars with an ETA for the long phases (sweep and search trials, model pull), on stderr:
stdout stays for tables, verdicts and `--format json`. A console that is not a terminal gets the
final state once, not a stream of redraws."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from harness.core.console import make_console


class Bar:
    def __init__(self, label: str, total: int | None, done: int = 0):

        columns: list[Any] = [TextColumn(label, markup=False)]
        if total is None:  # a phase of unknown length: how long it has taken so far
            columns += [SpinnerColumn(), TimeElapsedColumn()]
        else:
            columns += [BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
        self._progress = Progress(*columns, console=make_console(stderr=True))
        self._task = self._progress.add_task(label, total=total, completed=done)
        self._progress.start()

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._task, n)

    def close(self) -> None:
        self._progress.stop()


@contextlib.contextmanager
def bar(label: str, total: int | None, done: int = 0) -> Iterator[Bar]:
    b = Bar(label, total, done)
    try:
        yield b
    finally:
        b.close()
