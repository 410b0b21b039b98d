"""The consoles the harness prints to. A terminal gets rich's layout at its width; a pipe or a log
file gets every line whole: tables at their natural width and text never wrapped, so a name is
never cut to "…" and a number never breaks across lines (`harness tasks | grep`, CI logs)."""

from __future__ import annotations

from rich.console import Console

UNBOUNDED = 100_000  # columns: wider than any line the harness prints


def make_console(stderr: bool = False) -> Console:
    probe = Console(stderr=stderr)
    if probe.is_terminal:
        return probe
    return Console(stderr=stderr, width=UNBOUNDED, soft_wrap=True)


def heading(console: Console, title: str) -> None:
    """A section title: a terminal gets a rule across its width; a pipe gets the title between short
    rules (a rule across UNBOUNDED columns is 100,000 characters a line: `preview -n 300 | less` was
    90 MB)."""
    if console.width < UNBOUNDED:
        console.rule(title)
    else:
        console.print(f"── {title} ──", markup=False, highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    """One line on stderr that a person should read: the run goes on."""
    make_console(stderr=True).print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)
