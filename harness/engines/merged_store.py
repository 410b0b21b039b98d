"""The folder of merged copies (the base model with one adapter folded in), kept within a disk budget.

A copy is a float32 base model: ~540 MB for the 135M default, ~7 GB for a 1.7B model, one per
adapter served on CPU, so a few prompt-and-adapter searches filled gigabytes with copies nobody
would serve again. After each use the least recently used copies go until the folder fits
`HARNESS_MERGED_MAX_GB` (default 4; 0 keeps only copies in use). A copy goes back in seconds
(merged again when next served).

A copy a live process uses is never removed: the process holds a shared lock on the copy's key
until it exits (an engine may open the files at any point until then), and removal takes that
lock exclusively without waiting, so it passes over a copy in use, the caller's own included.
Lock files stay, empty, one per key: a user waiting on a key and a remover must lock the same file.
They are opened read-only (flock needs no more), so users sharing a cache lock each other's.
A half-built copy left by a killed merge (a hidden staging folder) goes when its key is unlocked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.core.disk import bytes_under
from harness.core.errors import UserError

BUDGET_VARIABLE = "HARNESS_MERGED_MAX_GB"
DEFAULT_BUDGET_GB = 4.0
LOCKS = ".locks"

_held: dict[str, int] = {}  # lock path -> descriptor, for the life of the process


def budget_bytes() -> int:
    """The budget from the environment; a value that is not a number of gigabytes is the user's error."""
    raw = os.environ.get(BUDGET_VARIABLE, "").strip()
    if not raw:
        return int(DEFAULT_BUDGET_GB * 1e9)
    try:
        gb = float(raw)
    except ValueError:
        gb = -1.0
    if not gb >= 0 or gb == float("inf"):  # also refuses nan
        raise UserError(
            f"{BUDGET_VARIABLE}={raw!r} must be a number of gigabytes, 0 or more (default {DEFAULT_BUDGET_GB:g})"
        )
    return int(gb * 1e9)


def _lock_path(folder: Path, key: str) -> Path:
    return folder / LOCKS / f"{key}.lock"


def hold(folder: Path, key: str) -> None:
    """Mark the copy `key` in use by this process until it exits (waits while a remover holds it)."""
    path = _lock_path(folder, key)
    if str(path) in _held:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
    except OSError:
        return  # a read-only cache: nobody can remove the copy either
    fcntl.flock(fd, fcntl.LOCK_SH)
    _held[str(path)] = fd


def touch(copy: Path) -> None:
    """Record a use: the folder's modification time orders copies for removal."""
    with contextlib.suppress(OSError):  # a read-only cache still serves; it is only never trimmed by recency
        os.utime(copy)


def _remove_if_unused(folder: Path, key: str, paths: list[Path]) -> bool:
    """Remove these folders of `key` unless a process holds the key; whether they went."""
    lock = _lock_path(folder, key)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDONLY | os.O_CREAT, 0o666)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # in use (here or by another process)
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)
        return True
    finally:
        os.close(fd)  # also releases the lock


@dataclass(frozen=True)
class Trimmed:
    removed: tuple[str, ...]  # keys of copies removed
    freed: int  # bytes
    kept: int  # bytes left in the folder


def trim(folder: Path, budget: int) -> Trimmed:
    """Remove abandoned staging folders, then least recently used copies until the folder fits `budget`;
    copies in use stay even over budget."""
    if not folder.is_dir():
        return Trimmed((), 0, 0)
    copies: list[tuple[float, str, Path, int]] = []
    removed: list[str] = []
    freed = 0
    for entry in folder.iterdir():
        if entry.name == LOCKS or not entry.is_dir() or entry.is_symlink():
            continue
        if entry.name.startswith("."):  # ".{key}-XXXX", from core.files.staged_dir
            key = entry.name[1:].rsplit("-", 1)[0]
            size = bytes_under(entry)
            if _remove_if_unused(folder, key, [entry]):
                freed += size
            continue
        try:
            used = entry.stat().st_mtime
        except OSError:
            continue
        copies.append((used, entry.name, entry, bytes_under(entry)))
    total = sum(c[3] for c in copies)
    for _, key, path, size in sorted(copies):
        if total <= budget:
            break
        if _remove_if_unused(folder, key, [path]):
            removed.append(key)
            total -= size
            freed += size
    return Trimmed(tuple(removed), freed, total)
