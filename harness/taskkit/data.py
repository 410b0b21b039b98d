"""A task's splits: local JSONL under HARNESS_DATA_DIR, else the Hugging Face hub."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import UserError, file_kind, shown
from harness.core.types import Sample
from harness.core.words import counted
from harness.taskkit.registry import Task

MAX_ROW_BYTES = 1 << 20  # one JSONL row; a longer line is a broken file, not a prompt


def data_dir() -> Path | None:
    """HARNESS_DATA_DIR when set (it must be a folder: a set one never falls back to the hub)."""
    value = os.environ.get("HARNESS_DATA_DIR")
    if not value:
        return None
    root = Path(value)
    if not root.is_dir():
        raise UserError(
            f"HARNESS_DATA_DIR={shown(value)} is {file_kind(root)}; point it at a folder of <task>/<split>.jsonl or unset it"
        )
    return root


def local_path(task: Task, split: str) -> Path | None:
    root = data_dir()
    if root is None:
        return None
    path = root / task.name / f"{split}.jsonl"
    if path.is_file():
        return path
    if os.path.lexists(path):  # a named pipe or a folder is there: "missing" would send the user looking elsewhere
        raise UserError(f"no data for {task.name}/{split}: {shown(path)} is {file_kind(path)}")
    return None


def has_split(task: Task, split: str) -> bool:
    """Whether a split can be read without asking the network: a local file, or (with no
    HARNESS_DATA_DIR) a hub dataset the task names, which is assumed reachable."""
    try:
        if data_dir() is not None:
            return local_path(task, split) is not None
    except UserError:
        return False
    return task.hub is not None and split in task.hub.splits


def count_rows(task: Task, split: str) -> int | None:
    """Rows in a local split, None when unknown (the listing works with no data at hand)."""
    try:
        path = local_path(task, split)
    except UserError:
        return None
    if path is None:
        return None
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None


def read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """Rows of a local split; encoding faults are named by line and byte before JSON is parsed."""
    return parse_jsonl(read_bytes(path), path)


def parse_jsonl(raw: bytes, path: Path) -> list[tuple[int, dict[str, Any]]]:
    if raw.startswith(b"\xef\xbb\xbf"):
        raise UserError(f"{path} starts with a byte-order mark; save it as UTF-8 without BOM")
    rows = []
    for lineno, line in enumerate(raw.split(b"\n"), 1):
        if len(line) > MAX_ROW_BYTES:
            raise UserError(f"{path}: line {lineno} is {len(line):,} bytes, over the limit of {MAX_ROW_BYTES:,} per row")
        nul = line.find(b"\x00")
        if nul >= 0:
            raise UserError(f"{path}: line {lineno} contains a NUL byte (at byte {nul + 1})")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}: line {lineno} is not valid UTF-8 (byte {exc.start + 1})") from None
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: line {lineno} is not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise UserError(f"{path}: line {lineno} is nested too deeply to be a data row") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}: line {lineno} is not a JSON object")
        rows.append((lineno, row))
    return rows


def _read_hub(task: Task, split: str) -> list[tuple[int, dict[str, Any]]]:
    root = data_dir()
    if root is not None:  # the user chose local data: other data from the hub would be a silent swap
        raise UserError(
            f"no data for {task.name}/{split}: {shown(root / task.name / (split + '.jsonl'))} is missing "
            "(HARNESS_DATA_DIR is set, so the hub is not used; unset it to load from the hub)"
        )
    if task.hub is None or split not in task.hub.splits:
        where = "HARNESS_DATA_DIR (unset)"
        raise UserError(
            f"no data for {task.name}/{split}: {where}/{task.name}/{split}.jsonl is missing and "
            "the task names no hub dataset for it; set HARNESS_DATA_DIR"
        )
    try:
        import datasets

        datasets.utils.logging.set_verbosity_error()
        datasets.disable_progress_bars()  # the console is for the harness's own progress
        files = dict(task.hub.data_files) if task.hub.data_files else None
        ds = datasets.load_dataset(
            task.hub.path, task.hub.config, split=task.hub.splits[split], data_files=files, revision=task.hub.revision
        )
    except Exception as exc:  # offline, gated, renamed: all mean "could not load"
        raise UserError(
            f"could not load {task.hub.path} from the hub for {task.name}/{split} ({exc}); "
            "set HARNESS_DATA_DIR to a local mirror"
        ) from None
    return [(i + 1, task.hub.row_map(dict(row))) for i, row in enumerate(ds)]


# Splits already parsed in this process, by task, split and the file's content (a hub split: by name): compare reads a
# split for the data check, the context check, validation, shots and every arm (23 reads of 6 files
# in a demo run, 1.1 s of a 10 s fully cached rerun). Reading and hashing the bytes again is cheap;
# parsing and checking them is not. Kept with the task object itself, so a task of another
# definition under the same name never gets these rows.
_SPLITS: dict[tuple[str, str, str], tuple[Task, tuple[Sample, ...]]] = {}


def load_split(task: Task, split: str) -> tuple[Sample, ...]:
    """Every row of a split as Samples; row errors name task, split and line."""
    path = local_path(task, split)
    rows: Callable[[], list[tuple[int, dict[str, Any]]]]
    if path is None:
        # keyed by name: each load_dataset call asks the hub for the dataset's latest revision, and a run
        # reads a split many times; one run reads one version of the data
        key, rows = (task.name, split, "hub"), lambda: _read_hub(task, split)
    else:
        raw = read_bytes(path)
        key, rows = (task.name, split, hashlib.blake2b(raw, digest_size=16).hexdigest()), lambda: parse_jsonl(raw, path)
    hit = _SPLITS.get(key)
    if hit is not None and hit[0] is task:
        return hit[1]
    samples = to_samples(task, rows(), f"{task.name}/{split}", "line")
    _SPLITS[key] = (task, samples)
    return samples


def fixture_samples(task: Task, split: str) -> tuple[Sample, ...]:
    """A split of the task's hand-written fixture rows, checked as strictly as data files."""
    if task.fixtures is None or split not in task.fixtures.rows:
        raise UserError(f"task {task.name} has no fixture rows for its {split} split")
    rows = [(i, dict(r)) for i, r in enumerate(task.fixtures.rows[split], 1)]
    return to_samples(task, rows, f"{task.name} fixtures[{split!r}]", "row")


def to_samples(task: Task, rows: Sequence[tuple[int, dict[str, Any]]], where: str, unit: str) -> tuple[Sample, ...]:
    if not rows:
        raise UserError(f"{where} is empty")
    samples = []
    seen: dict[str, int] = {}
    for lineno, row in rows:
        at = f"{where} {unit} {lineno}"
        if not isinstance(row, dict):
            raise UserError(f"{at} is not an object")
        missing = [f for f in task.required_fields if f not in row]
        if missing:
            raise UserError(f"{at}: missing field {missing[0]!r}")
        nulls = [f for f in task.required_fields if row[f] is None]
        if nulls:  # rendered, it would read "None" and be scored as if it were the row's text
            raise UserError(f"{at}: field {nulls[0]!r} is null")
        try:
            sample = task.to_sample(row)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise UserError(f"{at}: cannot build a sample ({type(exc).__name__}: {exc})") from None
        except UserError as exc:  # the task's own reading of the row (an lm-eval template) refused it
            raise UserError(f"{at}: {exc}") from None
        if task.labels and task.kind in ("classification", "multiple_choice") and sample.target not in task.labels:
            raise UserError(f"{at}: label {sample.target!r} is not in the label set")
        if task.input_field not in sample.fields:  # else validation, similarity and overlap compare empty strings
            raise UserError(
                f"{at}: the task's input_field {task.input_field!r} is not a field of its samples "
                f"({', '.join(sorted(sample.fields)) or 'none'}); set input_field= in its Task"
            )
        value = sample.fields[task.input_field]
        if value is None or not str(value).strip():  # a prompt about nothing, scored as if it were an item
            raise UserError(f"{at}: the input field {task.input_field!r} is {'null' if value is None else 'empty'}")
        if task.cluster_field is not None and not isinstance(sample.fields.get(task.cluster_field), str | int):
            raise UserError(
                f"{at}: the task's cluster_field {task.cluster_field!r} is not a text or number field of its samples "
                f"({', '.join(sorted(sample.fields)) or 'none'}); set cluster_field= in its Task"
            )
        if sample.id in seen:  # records are paired by id: two rows with one id would be scored as one
            raise UserError(f"{at}: id {sample.id!r} repeats {unit} {seen[sample.id]}")
        seen[sample.id] = lineno
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
    """`size` samples keeping each label's share of the split (seeded), so an adapter learns the
    real label prior. With fewer slots than labels, one example per label as far as it goes.
    Without labels (numbers, summaries) it is a plain seeded subset."""
    if size > len(samples):
        raise UserError(f"train size {size} is larger than the training split ({len(samples)} rows)")
    if size <= 0:
        raise UserError(f"train size must be positive, got {size}")
    if not by_label or size == len(samples):
        return subset(samples, size, seed)
    from sklearn.model_selection import train_test_split

    targets = [s.target for s in samples]
    try:
        keep, _ = train_test_split(list(range(len(samples))), train_size=size, stratify=targets, random_state=seed)
    except ValueError:  # fewer slots than labels, or a label with a single row
        return tuple(sorted(round_robin(samples, size, random.Random(seed)), key=lambda s: s.id))
    return tuple(samples[i] for i in sorted(keep))


def round_robin(samples: Sequence[Sample], size: int, rng: random.Random) -> list[Sample]:
    """`size` samples taking one of each label in turn (labels and rows in seeded order), as far as
    each label goes: balanced few-shot examples, and training subsets smaller than the label set."""
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[s.target].append(s)
    labels = sorted(groups)
    rng.shuffle(labels)
    for g in groups.values():
        rng.shuffle(g)
    picked: list[Sample] = []
    depth = 0
    while len(picked) < size:
        for label in labels:
            if depth < len(groups[label]) and len(picked) < size:
                picked.append(groups[label][depth])
        depth += 1
    return picked


def stratified_order(samples: Sequence[Sample], seed: int, by_label: bool = True) -> tuple[Sample, ...]:
    """A seeded shuffle in which every prefix keeps each label's share of the whole.

    Label files are often sorted by label: a prefix in file order covers a handful of labels
    (banking77's first 100 rows hold 29 of 77 intents). Each row gets the key (rank within its
    label + jitter) / label count, so taking the first n rows is a stratified sample of size n,
    and the rarest labels appear as early as their share allows. Without labels: a plain shuffle."""
    rng = random.Random(seed)
    if not by_label:
        order = list(samples)
        rng.shuffle(order)
        return tuple(order)
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[s.target].append(s)
    keyed: list[tuple[float, str, Sample]] = []
    for label in sorted(groups):
        group = groups[label]
        rng.shuffle(group)
        keyed += [((rank + rng.random()) / len(group), s.id, s) for rank, s in enumerate(group)]
    return tuple(s for _, _, s in sorted(keyed, key=lambda k: (k[0], k[1])))


VALIDATION_SEED = 7919
VALIDATION_MAX = 256


def carve_validation(
    task: Task, pool: Sequence[Sample], test: Sequence[Sample] = (), size: int | None = None
) -> tuple[tuple[Sample, ...], tuple[Sample, ...]]:
    """(rest, validation): a fixed validation set carved from the training split.

    Every selection is made on it (prompt variant and search trials, adapter sweeps, adapter
    arms), and training reports validation loss on it; adapters train on and few-shot examples
    come from `rest` only. Rows whose input duplicates a test item are never chosen, so
    validation never overlaps test, and `rest` drops them too: a test item an adapter trained on,
    or a prompt showed as an example, would score its memory, not its skill. It is a stratified, seeded sample returned in
    `stratified_order`, so any prefix (val[:100]) still covers the labels in proportion.
    Deterministic: the same for every run seed."""
    labelled = bool(task.labels) and task.kind in ("classification", "multiple_choice")
    test_keys = {normalise_text(str(s.fields.get(task.input_field, ""))) for s in test}
    eligible = [s for s in pool if normalise_text(str(s.fields.get(task.input_field, ""))) not in test_keys]
    if task.val_split:  # the task's own dev split: nothing is carved from training rows
        dev = [
            s
            for s in load_split(task, task.val_split)
            if normalise_text(str(s.fields.get(task.input_field, ""))) not in test_keys
        ]
        n = VALIDATION_MAX if size is None else size
        return tuple(eligible), stratified_order(dev, VALIDATION_SEED, by_label=labelled)[:n]
    n = min(VALIDATION_MAX, len(pool) // 10) if size is None else size
    if n <= 0 or not eligible:
        return tuple(eligible), ()
    val = stratified_order(eligible, VALIDATION_SEED, by_label=labelled)[: min(n, len(eligible))]
    ids = {s.id for s in val}
    return tuple(s for s in eligible if s.id not in ids), val


def leaked(task: Task, pool: Sequence[Sample], test: Sequence[Sample]) -> int:
    """Training rows whose input duplicates a test item's (normalised): `carve_validation` drops them
    from validation, adapter training and the shot pool alike, and the verdict says how many."""
    test_keys = {normalise_text(str(s.fields.get(task.input_field, ""))) for s in test}
    return sum(1 for s in pool if normalise_text(str(s.fields.get(task.input_field, ""))) in test_keys)


def validation_items(task: Task, limit: int | None = None) -> tuple[Sample, ...]:
    """The validation items selections are scored on: the carve-out's first `limit` rows."""
    pool, test = load_split(task, task.train_split), load_split(task, task.test_split)
    _, val = carve_validation(task, pool, test)
    if not val:
        raise UserError(f"{task.name} has no validation rows to select on: {_why_no_validation(task, pool, test)}")
    return val[:limit] if limit else val


def _why_no_validation(task: Task, pool: Sequence[Sample], test: Sequence[Sample]) -> str:
    """Why a carve-out came out empty, in the words that say what to fix."""
    rows = load_split(task, task.val_split) if task.val_split else pool
    where = f"its {task.val_split} split" if task.val_split else f"its training split ({task.train_split})"
    if not task.val_split and len(pool) < 10:
        return f"{where} is too small for a carve-out ({counted(len(pool), 'row')}; needs at least 10)"
    test_keys = {normalise_text(str(s.fields.get(task.input_field, ""))) for s in test}
    dups = sum(1 for s in rows if normalise_text(str(s.fields.get(task.input_field, ""))) in test_keys)
    if dups == len(rows):
        return (
            f"every one of the {counted(len(rows), 'row')} of {where} duplicates a test item (the same "
            f"{task.input_field} after normalising case, punctuation and spaces), and validation never overlaps test"
        )
    return f"{where} is empty"


def label_coverage(task: Task, items: Sequence[Sample]) -> tuple[int, int] | None:
    """(labels present in `items`, labels of the task), for labelled tasks."""
    if not task.labels or task.kind not in ("classification", "multiple_choice"):
        return None
    return len({s.target for s in items} & set(task.labels)), len(task.labels)


def shot_pool(task: Task) -> tuple[Sample, ...]:
    """Where few-shot examples come from: the training split minus the validation carve-out and
    minus every row that duplicates a test input."""
    rest, _ = carve_validation(task, load_split(task, task.train_split), load_split(task, task.test_split))
    return rest


@functools.lru_cache(maxsize=1 << 16)
def normalise_text(text: str) -> str:
    """Lower case, no punctuation, single spaces: how duplicates and overlaps are matched. Cached:
    compare matches the same pool against the test split for every carve-out it makes (8 in a demo)."""
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
