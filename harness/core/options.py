"""The rules every command-line option value passes before its command runs, kept in one table.

An option's name means the same thing in every command (`--limit`, `--seed`, `--alpha`), so its
range is declared once here and checked for every command that takes it: a command added later
cannot forget a check, and a test fails when a numeric option has no range. Output folders
(`--results`, `--out`) are checked the same way, before any model work, without creating anything,
and input files (`--plan`, `--config`, `--wheel`) must exist even where the command would not read them.
Rules that tie two options together (the discordance at least the effect) stay with their command.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import tempfile
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import UserError


@dataclass(frozen=True)
class Range:
    """lo..hi, each end open or closed; None is unbounded. Values are finite numbers."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def holds(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return not (self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi))

    def describe(self) -> str:
        lo, hi = _num(self.lo), _num(self.hi)
        if self.hi is None:
            if (self.lo == 0 and self.lo_open) or (self.lo == 1 and not self.lo_open):
                return "positive"
            return f"above {lo}" if self.lo_open else f"{lo} or more"
        if self.lo_open and self.hi_open:
            return f"between {lo} and {hi}"
        if not self.lo_open and not self.hi_open:
            return f"from {lo} to {hi}"
        return f"{'above' if self.lo_open else 'at least'} {lo} and {'below' if self.hi_open else 'at most'} {hi}"


def _num(x: float | None) -> str:
    """A bound or a value as typed: whole numbers in full (4294967295, never 4.29497e+09)."""
    if x is None:
        return ""
    if isinstance(x, float) and math.isfinite(x) and x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return str(x) if isinstance(x, int) else f"{x:g}"


COUNT = Range(1)  # a whole number of things, at least one
NON_NEGATIVE = Range(0)
POSITIVE = Range(0, lo_open=True)
SHARE = Range(0, 1, lo_open=True, hi_open=True)  # a probability strictly inside (0, 1)
TIMEOUT_S = Range(0, 86_400, lo_open=True, hi_open=True)
SEED = Range(0, 2**32 - 1)  # what every library takes (numpy refuses a negative seed)
RETRIES = Range(0, 20)

RANGES: dict[str, Range] = {
    # sizes and counts
    "limit": COUNT, "n": COUNT, "val_limit": COUNT, "trials": COUNT, "batch_size": COUNT, "train_size": COUNT,
    "rank": COUNT, "max_seq_len": COUNT, "shots": NON_NEGATIVE, "search_trials": NON_NEGATIVE,
    "formats": Range(0, 50), "latency_probe": Range(0, 1000),
    "seed": SEED,
    # training
    "epochs": POSITIVE, "lr": POSITIVE,
    # statistics
    "alpha": SHARE, "power": SHARE, "effect": Range(0, 100, lo_open=True), "discordance": Range(0, 1, lo_open=True),
    "icc": Range(0, 1),
    # money and volume
    "volume": POSITIVE, "usd_per_error": NON_NEGATIVE, "usd_per_hour": NON_NEGATIVE,
    # a server
    "port": Range(1, 65535), "connect_timeout": TIMEOUT_S, "read_timeout": TIMEOUT_S, "retries": RETRIES,
    "max_device_s": POSITIVE,
}  # fmt: skip

OUTPUT_FOLDERS = ("results", "out_dir")  # option names whose value is a folder the command writes into
INPUT_FILES = ("plan", "config", "wheel")  # option names whose value is a file the command reads
# inputs their command checks first with words of its own (a folder of splits, a run directory, an adapter)
CHECKED_BY_COMMAND = ("data", "yaml_file", "run_dirs", "candidate", "baseline", "adapter")


def check_value(name: str, flag: str, value: Any) -> None:
    """One option's value against its declared rule (None: the option was not given)."""
    if value is None:
        return
    rule = RANGES.get(name)
    if rule is not None and not isinstance(value, bool) and isinstance(value, int | float) and not rule.holds(value):
        if not math.isfinite(value):
            raise UserError(f"{flag} must be a finite number, got {_num(value)}")
        raise UserError(f"{flag} must be {rule.describe()}, got {_num(value)}")
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
    import typer

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


def env_flag(name: str) -> bool:
    """A yes/no environment variable (HARNESS_NO_SERVE): "false" or "no" must not read as yes."""
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise UserError(f"{name}={os.environ[name]} is not a yes/no value: set it to 1 or 0")
