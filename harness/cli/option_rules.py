"""Every command checks its options by their declared rules (harness.core.options) before it runs,
and its --help says each numeric option's range: typer's side of the one table of option rules."""

from __future__ import annotations

import functools
import inspect
import math
import tempfile
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from harness.core.errors import UserError
from harness.core.options import INPUT_FILES, OUTPUT_FOLDERS, RANGES, number_text


def check_value(name: str, flag: str, value: Any) -> None:
    """One option's value against its declared rule (None: the option was not given)."""
    if value is None:
        return
    rule = RANGES.get(name)
    if rule is not None and not isinstance(value, bool) and isinstance(value, int | float) and not rule.holds(value):
        if not math.isfinite(value):
            raise UserError(f"{flag} must be a finite number, got {number_text(value)}")
        raise UserError(f"{flag} must be {rule.describe()}, got {number_text(value)}")
    if name in OUTPUT_FOLDERS:
        check_output_folder(Path(value), flag)
    if name in INPUT_FILES and not Path(value).is_file():  # also where a cached result would not read it
        raise UserError(f"{flag} file not found: {value}" if not Path(value).exists() else f"{flag} {value} is not a file")


def check_output_folder(path: Path, flag: str) -> None:
    """Refuse now a folder the command could not create or write into; leaves nothing behind.

    A write is tried in the nearest folder that exists (permission bits say nothing to root, and
    /proc or a read-only mount refuse only when written)."""
    here = path.absolute()
    while not here.exists() and here != here.parent:
        here = here.parent
    if not here.is_dir():
        raise UserError(f"{flag} {path}: {here} is a file, not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=here, prefix=".harness-probe-"):
            pass
    except OSError as exc:
        raise UserError(f"{flag} {path} is not writable: no file can be made in {here} ({exc.strerror or exc})") from None


def flags_of(callback: Callable[..., Any]) -> dict[str, str]:
    """Each parameter's flag as the user types it: its declared one (-n, --out), else --name."""
    flags = {}
    for name, hint in typing.get_type_hints(callback, include_extras=True).items():
        decls: list[str] = []
        for meta in getattr(hint, "__metadata__", ()):
            decls += list(getattr(meta, "param_decls", ()) or ())
            default = getattr(meta, "default", None)
            if isinstance(default, str) and default.startswith("-"):
                decls.insert(0, default)
        long = [d for d in decls if d.startswith("--")]
        flags[name] = long[0] if long else decls[0] if decls else "--" + name.replace("_", "-")
    return flags


def guarded(callback: Callable[..., Any]) -> Callable[..., Any]:
    """The command's function, checking each given value by its option's rule first."""
    if getattr(callback, "__guarded__", False):
        return callback
    signature = inspect.signature(callback)
    flags = flags_of(callback)

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        for name, value in signature.bind_partial(*args, **kwargs).arguments.items():
            check_value(name, flags.get(name, name), value)
        return callback(*args, **kwargs)

    run.__guarded__ = True  # type: ignore[attr-defined]
    return run


def show_ranges(callback: Callable[..., Any]) -> None:
    """Each numeric option's range at the end of its `--help` text, from the same table that checks
    it, so a user reads the rule before breaking it. The annotations are strings (postponed
    evaluation), which typer evaluates afresh each time, so the evaluated hint with its amended option
    replaces the string in the function's annotations (an option object shared by several commands
    gets the words once)."""
    defaults = inspect.signature(callback).parameters
    for name, hint in typing.get_type_hints(callback, include_extras=True).items():
        rule = RANGES.get(name)
        base = typing.get_args(hint)[0] if hasattr(hint, "__metadata__") else hint
        kinds = set(typing.get_args(base)) or {base}
        if rule is None or not kinds & {int, float} or name not in defaults:
            continue
        words = f"Must be {rule.describe()}."
        if not hasattr(hint, "__metadata__"):  # a plain `seed: int = 0` is an option with no help of its own
            if defaults[name].default is inspect.Parameter.empty:
                continue  # an argument: typer shows no help for it
            hint = typing.Annotated[hint, typer.Option(help=words)]
        for meta in hint.__metadata__:
            if hasattr(meta, "help") and words not in (meta.help or ""):
                meta.help = f"{meta.help} {words}" if meta.help else words
        callback.__annotations__[name] = hint
