"""results/<run-id>/: manifest.json, samples.jsonl (append-only), metrics.json, reports.

samples.jsonl gets one record per finished (item, variant), flushed and fsynced per batch;
everything else is written to a temporary file and renamed. A torn last line (the process
died mid-write) is cut off on the next open, so a rerun resumes exactly where it stopped.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from harness.core.errors import UserError
from harness.core.files import read_json
from harness.core.schema import validate
from harness.runlog.schema import LatencyRecord, Manifest, Record
from harness.taskkit.metrics import score_key

SAMPLES = "samples.jsonl"
FORMATS = "formats.jsonl"  # the selected prompt in perturbed formats: the format spread
NOISE = "noise.jsonl"  # the zero-shot arm re-run in another batch order: the run-to-run noise floor
VALIDATION = "validation.jsonl"  # the same records on validation items: what selections are made on
MANIFEST = "manifest.json"
METRICS = "metrics.json"


def repair_tail(path: Path) -> int:
    """Cut a torn final line (no trailing newline) left by a crash; returns bytes removed."""
    if not path.is_file():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with path.open("rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return 0
        block = min(size, 1 << 20)
        f.seek(size - block)
        tail = f.read(block)
        keep = size - block + tail.rfind(b"\n") + 1 if b"\n" in tail else 0
        f.truncate(keep)
        return size - keep


def read_samples(path: Path, schema: type = Record) -> list[dict[str, Any]]:
    """Every complete record, each checked against `schema`; a torn last line is ignored, a
    corrupt middle line is an error."""
    if not path.is_file():
        return []
    records = []
    lines = path.read_bytes().split(b"\n")
    for lineno, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (ValueError, RecursionError):  # bad JSON, bad UTF-8, or nested too deeply
            if lineno == len(lines):  # torn tail from a crash: not a finished record
                continue
            raise UserError(f"{path} line {lineno} is corrupt; delete that line (or the run) and rerun") from None
        validate(schema, record, f"{path} line {lineno}")
        records.append(record)
    return records


def unique_records(records: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(item, variant) -> record; the first one wins, so a duplicate can never change numbers."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in records:
        out.setdefault((r["item"], r["variant"]), r)
    return out


class SampleWriter:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        repair_tail(path)
        self._f = path.open("a", encoding="utf-8")

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        for r in records:
            self._f.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Exclusive lock on a run directory: a second writer refuses instead of interleaving. The lock is
    on the directory itself (flock on its descriptor), so taking it writes nothing into the run; a
    directory made here for a run that then wrote nothing is removed again."""
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise UserError(f"cannot write to results folder {run_dir}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"run directory {run_dir} is in use by another harness process; wait for it or pass another --run-id"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
        if created:
            with contextlib.suppress(OSError):  # not empty: the run wrote something, which stays
                run_dir.rmdir()


def load_run(run: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A run's manifest and its records, one per (item, variant); UserError when it is not a run."""
    if not (run / MANIFEST).is_file():
        raise UserError(f"{run} is not a run directory (no {MANIFEST})")
    manifest = read_json(run / MANIFEST)
    validate(Manifest, manifest, run / MANIFEST)
    records = list(unique_records(read_samples(run / SAMPLES)).values())
    if not records:
        raise UserError(f"run {run} has no results yet (empty {SAMPLES})")
    check_scores(run / SAMPLES, manifest, records)
    return manifest, records


def check_scores(path: Path, manifest: dict[str, Any], records: list[dict[str, Any]]) -> None:
    """Each record carries the per-item score its task's metrics are computed from."""

    needed = {name: {score_key(m) for m in info["metrics"]} for name, info in manifest["tasks"].items()}
    for r in records:
        missing = needed.get(r["task"], set()) - set(r["scores"])
        if missing:
            raise UserError(
                f"{path}: the record of item {r['item']!r}, variant {r['variant']!r} has no {sorted(missing)[0]!r} "
                f"score, which its task's metrics need"
            )


def load_noise(run: Path) -> list[dict[str, Any]]:
    """A run's noise-floor records (none for runs made before the noise floor)."""
    return list(unique_records(read_samples(run / NOISE)).values())


def load_formats(run: Path) -> list[dict[str, Any]]:
    """A run's format-spread records (none for runs made before the format spread, or with --formats 0)."""
    return list(unique_records(read_samples(run / FORMATS)).values())


def load_validation(run: Path) -> list[dict[str, Any]]:
    """A run's validation records (none for runs made before selection moved to validation)."""
    return list(unique_records(read_samples(run / VALIDATION)).values())


LATENCY = "latency.jsonl"


def load_latency(run: Path) -> list[dict[str, Any]]:
    """A run's latency-probe records (none for runs made before the probe, or with latency_probe = 0)."""
    return list(unique_records(read_samples(run / LATENCY, LatencyRecord)).values())
