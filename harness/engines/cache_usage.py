"""What the harness cache holds, part by part, and clearing a part.

Everything in the cache is derived (a pulled model, a trained adapter, a merged copy, cached
answers), so any part can go; what it costs to get back differs, and the listing says so. Merged
copies are the bulk on CPU: a float32 copy of the base model per adapter served (~540 MB for the
135M default), made again in seconds.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from harness.core.disk import bytes_under
from harness.core.errors import UserError, closest
from harness.engines import merged_store


@dataclass(frozen=True)
class Part:
    name: str
    path: str  # relative to the cache root
    what: str
    if_cleared: str


PARTS = (
    Part("merged", "merged", "adapters folded into float32 copies of the base model (CPU serving), "
         f"the least recently used removed over {merged_store.BUDGET_VARIABLE} "
         f"(default {merged_store.DEFAULT_BUDGET_GB:g} GB)",
         "merged again, in seconds, when an adapter is next served (copies in use stay)"),
    Part("responses", "responses.sqlite", "cached answers and latency-probe times",
         "a rerun asks the model again"),
    Part("adapters", "adapters", "trained LoRA adapters", "trained again when a run needs one (minutes)"),
    Part("models", "models", "pulled base models", "pulled again (`harness models pull`)"),
    Part("datacheck", "datacheck", "data-check results", "checked again (seconds)"),
)  # fmt: skip
NAMES = tuple(p.name for p in PARTS)


@dataclass(frozen=True)
class Usage:
    part: Part
    bytes: int
    entries: int  # folders and files directly under the part (rows of the database)


def _files(path: Path) -> list[Path]:
    """The files a part consists of: its folder's, or the database with its journal files."""
    if path.name.endswith(".sqlite"):
        return [p for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")) if p.exists()]
    return [path] if path.exists() or path.is_symlink() else []


def _entries(path: Path) -> int:
    if path.name.endswith(".sqlite"):
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                return int(db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
        except sqlite3.Error:
            return 0
    if not path.is_dir() or path.is_symlink():
        return 0
    return sum(1 for p in path.iterdir() if not p.name.startswith("."))  # not lock files or half-built copies


def usage(root: Path) -> list[Usage]:
    out = []
    for part in PARTS:
        files = _files(root / part.path)
        out.append(Usage(part, sum(bytes_under(f) for f in files), _entries(root / part.path) if files else 0))
    return out


def parts_named(names: list[str]) -> list[Part]:
    """The parts asked for by name (`all`: every one); an unknown name is one clear line."""
    chosen: list[Part] = []
    for name in names:
        if name == "all":
            return list(PARTS)
        match = next((p for p in PARTS if p.name == name), None)
        if match is None:
            raise UserError(f"no cache part {name!r}{closest(name, NAMES)} (choose from {', '.join(NAMES)} or all)")
        if match not in chosen:
            chosen.append(match)
    return chosen


def clear(root: Path, parts: list[Part]) -> int:
    """Remove these parts; the bytes freed. A linked folder loses the link, never what it points at."""
    freed = 0
    for part in parts:
        where = root / part.path
        if part.name == "merged" and where.is_dir() and not where.is_symlink():
            freed += merged_store.trim(where, 0).freed  # a copy a live process serves stays
            continue
        for path in _files(where):
            freed += bytes_under(path)
            if path.is_symlink() or path.is_file():
                path.unlink()
            else:
                shutil.rmtree(path)
    return freed


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")
