"""A task's splits: local JSONL under HARNESS_DATA_DIR, else the Hugging Face hub."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.tasks import Task
from harness.types import Sample


def data_dir() -> Path | None:
    value = os.environ.get("HARNESS_DATA_DIR")
    return Path(value) if value else None


def local_path(task: Task, split: str) -> Path | None:
    root = data_dir()
    if root is None:
        return None
    path = root / task.name / f"{split}.jsonl"
    return path if path.is_file() else None


def count_rows(task: Task, split: str) -> int | None:
    path = local_path(task, split)
    if path is None:
        return None
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def _read_jsonl(path: Path, task: Task, split: str) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}: line {lineno} is not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}: line {lineno} is not a JSON object")
            rows.append((lineno, row))
    return rows


def _read_hub(task: Task, split: str) -> list[tuple[int, dict[str, Any]]]:
    if task.hub is None or split not in task.hub.splits:
        where = data_dir() or "HARNESS_DATA_DIR (unset)"
        raise UserError(
            f"no data for {task.name}/{split}: {where}/{task.name}/{split}.jsonl is missing and "
            "the task names no hub dataset for it; set HARNESS_DATA_DIR"
        )
    try:
        import datasets

        ds = datasets.load_dataset(task.hub.path, task.hub.config, split=task.hub.splits[split])
    except Exception as exc:  # offline, gated, renamed: all mean "could not load"
        raise UserError(
            f"could not load {task.hub.path} from the hub for {task.name}/{split} ({exc}); "
            "set HARNESS_DATA_DIR to a local mirror"
        ) from None
    return [(i + 1, task.hub.row_map(dict(row))) for i, row in enumerate(ds)]


def load_split(task: Task, split: str) -> tuple[Sample, ...]:
    """Every row of a split as Samples; row errors name task, split and line."""
    path = local_path(task, split)
    rows = _read_jsonl(path, task, split) if path is not None else _read_hub(task, split)
    if not rows:
        raise UserError(f"{task.name}/{split} is empty")
    samples = []
    for lineno, row in rows:
        missing = [f for f in task.required_fields if f not in row]
        if missing:
            raise UserError(f"{task.name}/{split} line {lineno}: missing field {missing[0]!r}")
        try:
            sample = task.to_sample(row)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise UserError(f"{task.name}/{split} line {lineno}: cannot build a sample ({exc})") from None
        if task.labels and task.kind in ("classification", "multiple_choice") and sample.target not in task.labels:
            raise UserError(f"{task.name}/{split} line {lineno}: label {sample.target!r} is not in the label set")
        samples.append(sample)
    return tuple(samples)


def test_items(task: Task, limit: int | None = None, seed: int = 0) -> tuple[Sample, ...]:
    return subset(load_split(task, task.test_split), limit, seed)


def subset(samples: Sequence[Sample], limit: int | None, seed: int = 0) -> tuple[Sample, ...]:
    """A seeded random subset, kept in file order (files are often sorted by label)."""
    if limit is None or limit >= len(samples):
        return tuple(samples)
    if limit <= 0:
        raise UserError(f"limit must be positive, got {limit}")
    keep = sorted(random.Random(seed).sample(range(len(samples)), limit))
    return tuple(samples[i] for i in keep)


def stratified(samples: Sequence[Sample], size: int, seed: int = 0, by_label: bool = True) -> tuple[Sample, ...]:
    """`size` samples with every label represented as evenly as the data allows (seeded).

    Without labels (numbers, summaries) it is a plain seeded subset."""
    if size > len(samples):
        raise UserError(f"train size {size} is larger than the training split ({len(samples)} rows)")
    if size <= 0:
        raise UserError(f"train size must be positive, got {size}")
    rng = random.Random(seed)
    if not by_label:
        return subset(samples, size, seed)
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[s.target].append(s)
    for group in groups.values():
        rng.shuffle(group)
    picked: list[Sample] = []
    labels = sorted(groups)
    i = 0
    while len(picked) < size:
        for label in labels:
            if i < len(groups[label]) and len(picked) < size:
                picked.append(groups[label][i])
        i += 1
    rng.shuffle(picked)
    return tuple(picked)


def normalise_text(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", "", text.lower())).strip()


@dataclass(frozen=True)
class Overlap:
    left: str
    right: str
    duplicates: tuple[tuple[str, str], ...]  # (left id, right id)


def overlap(task: Task, left: Sequence[Sample], right: Sequence[Sample], names: tuple[str, str]) -> Overlap:
    """Items whose input is identical after normalisation (case, punctuation, whitespace)."""
    index: dict[str, str] = {}
    for s in left:
        index.setdefault(normalise_text(str(s.fields.get(task.input_field, ""))), s.id)
    dups = []
    for s in right:
        key = normalise_text(str(s.fields.get(task.input_field, "")))
        if key and key in index:
            dups.append((index[key], s.id))
    return Overlap(names[0], names[1], tuple(dups))


def samples_hash(samples: Sequence[Sample]) -> str:
    """Content hash of exact rows (ids, fields, targets): manifests and cache keys."""
    h = hashlib.sha256()
    for s in samples:
        h.update(
            json.dumps(
                [s.id, dict(s.fields), s.target, list(s.references), list(s.choices), s.rationale],
                sort_keys=True,
                default=str,
            ).encode()
        )
    return h.hexdigest()[:16]
