"""The rules every command-line option value passes before its command runs, kept in one table
(harness.cli.option_rules applies them to every command).

An option's name means the same thing in every command (`--limit`, `--seed`, `--alpha`), so its
range is declared once here and checked for every command that takes it: a command added later
cannot forget a check, and a test fails when a numeric option has no range. Output folders
(`--results`, `--out`) are checked the same way, before any model work, without creating anything,
and input files (`--plan`, `--config`, `--wheel`) must exist even where the command would not read them.
Rules that tie two options together (the discordance at least the effect) stay with their command.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

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
        lo, hi = number_text(self.lo), number_text(self.hi)
        if self.hi is None:
            if (self.lo == 0 and self.lo_open) or (self.lo == 1 and not self.lo_open):
                return "positive"
            return f"above {lo}" if self.lo_open else f"{lo} or more"
        if self.lo_open and self.hi_open:
            return f"between {lo} and {hi}"
        if not self.lo_open and not self.hi_open:
            return f"from {lo} to {hi}"
        return f"{'above' if self.lo_open else 'at least'} {lo} and {'below' if self.hi_open else 'at most'} {hi}"


def number_text(x: float | None) -> str:
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
    "icc": Range(0, 1), "alpha_family": COUNT,
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


def env_flag(name: str) -> bool:
    """A yes/no environment variable (HARNESS_NO_SERVE): "false" or "no" must not read as yes."""
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise UserError(f"{name}={os.environ[name]} is not a yes/no value: set it to 1 or 0")
