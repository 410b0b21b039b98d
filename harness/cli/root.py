"""The `harness` command: every command module registered on one typer app, each command's options
checked by their declared rules before it runs, and one exit status per outcome."""

from __future__ import annotations

import os
import signal
import sys
from typing import Annotated, Any

import typer

from harness.cli import authoring, engines, experiments, results
from harness.cli.common import STATE, TasksDir, app, err, models_app
from harness.cli.exhausted import describe
from harness.cli.option_rules import guarded, show_ranges
from harness.core.allocator import DISABLE_ENV
from harness.core.errors import UserError
from harness.core.options import env_flag
from harness.engines import engine_log, merged_store
from harness.taskkit.registry import set_extra_dirs

COMMAND_MODULES = (authoring, engines, experiments, results)  # imported for their commands


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option(help="Show tracebacks of internal errors.")] = False, tasks_dir: TasksDir = None
) -> None:
    STATE["debug"] = debug
    merged_store.budget_bytes()  # a bad setting is refused before any work, not when a copy is first made
    env_flag(DISABLE_ENV)  # read by the entry point, which cannot say what is wrong with it
    # transformers and the hub draw tqdm bars of their own ("Loading weights" in every training run),
    # \r-joined junk in a piped log: the console has the harness's bars. Read when they are imported.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    set_extra_dirs(tasks_dir or [])  # every invocation states its own folders (none carried over)


def _guard_commands() -> None:
    """Every command checks its options by their declared rules (harness.core.options) before it
    runs, and its --help says each numeric option's range."""
    for group in (app, models_app):
        for info in group.registered_commands:
            if info.callback is not None:
                show_ranges(info.callback)
                info.callback = guarded(info.callback)


_guard_commands()


def main() -> None:
    """Exit status: 0 success, 1 a check failed (gate, check-adapter) or an internal error,
    2 the user's input is wrong, 130 interrupted (the run is resumable)."""
    interrupted: list[bool] = []

    def on_sigint(signum: int, frame: Any) -> None:
        interrupted.append(True)
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread (an embedding program): leave its handler alone
        previous = None
    code: int
    try:
        code = _exit_code(app(standalone_mode=False))
        if code == 130:  # typer turns KeyboardInterrupt into a returned 130
            interrupted.append(True)
    except UserError as exc:
        one_line = " ".join(str(exc).splitlines())  # whatever a value held (a newline, U+2028), one line
        err.print(f"error: {one_line}", markup=False, highlight=False, soft_wrap=True)
        code = 2
    except (typer.Exit, SystemExit) as exc:
        code = _exit_code(getattr(exc, "exit_code", getattr(exc, "code", 0)))
    except (typer.Abort, KeyboardInterrupt):
        interrupted.append(True)
        code = 130
    except Exception as exc:
        code = _unexpected(exc, bool(interrupted))
    if interrupted:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the message
        err.print("interrupted: finished work is saved; rerun the same command to resume", markup=False)
        code = 130
    if previous is not None:
        signal.signal(signal.SIGINT, previous)
    sys.exit(code)


def _unexpected(exc: Exception, interrupted: bool) -> int:
    """What an exception no command turned into a UserError says, and its exit status."""
    # Usage errors (unknown option, missing argument) from typer's click: show them as click does.
    if hasattr(exc, "show") and hasattr(exc, "exit_code"):
        exc.show()
        sys.exit(int(exc.exit_code))
    exhausted = describe(exc)
    if interrupted:  # an engine that died of the same Ctrl-C raises its own error: still an interrupt
        return 130
    if exhausted is not None:  # the machine's disk or memory, not a bug: say so, and what helps
        err.print(f"error: {exhausted}", markup=False, highlight=False, soft_wrap=True)
        return 2
    if STATE["debug"] or os.environ.get("HARNESS_DEBUG"):
        raise exc
    log = engine_log.last()
    seen = f"; the engine's own output is in {log}" if log is not None and log.is_file() else ""
    err.print(
        # one line, as every error line: a log keeps it whole and a grep finds it
        f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())} (rerun with --debug for the traceback{seen})",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return 1


def _exit_code(value: Any) -> int:
    """click hands back the code of typer.Exit as a return value when not standalone."""
    if value is None or isinstance(value, bool):
        return int(bool(value))
    return value if isinstance(value, int) else 1


if __name__ == "__main__":
    main()
