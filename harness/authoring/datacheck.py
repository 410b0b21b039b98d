"""Data checks before training: balance, duplicates, conflicting labels, lengths, overlap."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.core.types import Sample
from harness.core.words import counted
from harness.core.words import verb as _verb
from harness.taskkit.data import normalise_text
from harness.taskkit.prompts import training_pair
from harness.taskkit.registry import Task
from harness.train.examples import IGNORE, tokenize_pair

NEAR = 0.9  # TF-IDF cosine at or above which two inputs count as near duplicates


@dataclass(frozen=True)
class DataReport:
    task: str
    n_train: int
    n_test: int
    label_counts: dict[str, int]
    exact_duplicates: int  # training rows whose normalised input already appeared earlier
    near_duplicates: int  # pairs of distinct training inputs with cosine >= NEAR
    conflicts: tuple[tuple[str, tuple[str, ...]], ...]  # (input, labels) with more than one label
    train_test_overlap: int  # distinct training inputs that are also test inputs
    token_lengths: dict[str, float] = field(default_factory=dict)  # min, median, p95, max
    over_max_len: int = 0
    max_seq_len: int = 0
    warnings: tuple[str, ...] = ()
    # of the examples measured: how many, and how many whose prompt alone fills max_seq_len (their
    # answer is cut off entirely: they teach nothing)
    n_measured: int = 0
    no_room: int = 0
    prompt_lengths: dict[str, float] = field(default_factory=dict)  # min, median, max
    # training rows whose input is a test input: dropped from validation, training and the shot pool
    leaked_rows: int = 0


def _key(task: Task, s: Sample) -> str:
    return normalise_text(str(s.fields.get(task.input_field, "")))


def near_duplicate_pairs(texts: Sequence[str], threshold: float = NEAR, chunk: int = 1024) -> int:
    """Distinct inputs whose nearest other input has TF-IDF cosine >= threshold, counted as pairs.

    By hand rather than sklearn's NearestNeighbors: its brute-force cosine search took 5.7 s of 9 s
    on 10,000 rows (distances clipped and partitioned in float64), and where two inputs share one
    vector (the same words in another order) it could return a row as its own nearest other
    neighbour, counting a pair of one (28 of banking77's 1,077). Rows are L2-normalised, so a
    chunk's cosines against all rows are one sparse product."""
    if len(texts) < 2:
        return 0
    from sklearn.feature_extraction.text import TfidfVectorizer

    unique = sorted(set(texts))
    if len(unique) < 2:
        return 0
    # Character n-grams: robust to a changed word or typo, where word TF-IDF over-weights the rare word.
    matrix = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), dtype=np.float32).fit_transform(unique)
    columns = matrix.T.tocsr()
    pairs: set[tuple[int, int]] = set()
    for start in range(0, len(unique), chunk):
        sims = (matrix[start : start + chunk] @ columns).toarray()
        rows = np.arange(sims.shape[0])
        sims[rows, rows + start] = -1.0  # never its own neighbour
        nearest = sims.argmax(axis=1)
        for i in np.flatnonzero(sims[rows, nearest] >= threshold):
            a, b = start + int(i), int(nearest[i])
            pairs.add((min(a, b), max(a, b)))
    return len(pairs)


def check(
    task: Task,
    train: Sequence[Sample],
    test: Sequence[Sample],
    lengths: Sequence[int] = (),
    max_seq_len: int = 512,
    prompt_lengths: Sequence[int] = (),
) -> DataReport:
    labelled = task.kind in ("classification", "multiple_choice")
    counts = dict(Counter(s.target for s in train).most_common()) if labelled else {}
    keys = [_key(task, s) for s in train]
    exact = len(keys) - len(set(keys))
    by_input: dict[str, set[str]] = defaultdict(set)
    for k, s in zip(keys, train, strict=True):
        by_input[k].add(s.target)
    conflicts = tuple((k, tuple(sorted(v))) for k, v in by_input.items() if labelled and len(v) > 1)
    test_keys = {_key(task, s) for s in test}
    overlap = sum(1 for k in set(keys) if k in test_keys)
    leaked_rows = sum(1 for k in keys if k in test_keys)
    near = near_duplicate_pairs(keys)
    stats: dict[str, float] = {}
    over = 0
    if lengths:
        ordered = sorted(lengths)
        stats = {
            "min": ordered[0],
            "median": statistics.median(ordered),
            "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
            "max": ordered[-1],
        }
        over = sum(1 for n in lengths if n > max_seq_len)
    no_room = sum(1 for n in prompt_lengths if n >= max_seq_len)
    prompts = sorted(prompt_lengths)
    prompt_stats = {"min": prompts[0], "median": statistics.median(prompts), "max": prompts[-1]} if prompts else {}
    warnings = []
    if counts and max(counts.values()) > 5 * min(counts.values()):
        warnings.append(
            f"labels are imbalanced ({max(counts.values())} vs {min(counts.values())} rows): "
            "prefer macro-F1 and stratified subsets"
        )
    if exact:
        warnings.append(f"{counted(exact, 'exact duplicate input')} in the training split")
    if conflicts:
        warnings.append(f"{counted(len(conflicts), 'input')} {_verb(len(conflicts), 'appear')} with conflicting labels")
    if overlap:
        warnings.append(
            f"{counted(overlap, 'training input')} also {_verb(overlap, 'appear')} in the test split (leakage): "
            f"{counted(leaked_rows, 'training row')} dropped from validation, adapter training and the shot pool"
        )
    if over:
        warnings.append(
            f"{counted(over, 'training example')} {_verb(over, 'exceed')} max_seq_len {max_seq_len} and will be truncated"
        )
    if no_room and no_room < len(prompt_lengths):
        warnings.append(
            f"{no_room} of {counted(len(prompt_lengths), 'training example')} measured have prompts of "
            f"{max_seq_len} tokens or more: their answers are cut off, so they teach nothing"
        )
    return DataReport(
        task.name, len(train), len(test), counts, exact, near, conflicts, overlap, stats, over, max_seq_len,
        tuple(warnings), len(prompt_lengths), no_room, prompt_stats, leaked_rows,
    )  # fmt: skip


def untrainable(task: Task, report: Mapping[str, Any], template: str) -> str | None:
    """Why no training example of `template` fits max_seq_len, when none does (`report`: a DataReport
    as the manifest keeps it); the recipe would stop with "no training example with a completion"
    after the sweeps, without saying why."""
    measured, no_room = report.get("n_measured", 0), report.get("no_room", 0)
    if not measured or no_room < measured:
        return None
    p = report["prompt_lengths"]
    need = int(report.get("token_lengths", {}).get("max", p["max"]))
    return (
        f"{task.name}: no training example fits max_seq_len {report['max_seq_len']}: the prompts of template "
        f"{template} are {p['min']:,.0f} to {p['max']:,.0f} tokens (median {p['median']:,.0f}), leaving no room "
        f"for the answer; set [task.train] max_seq_len = {need} or more, or train with a shorter template "
        "([task.train] template, or the task's adapter_template: an adapter needs no label list in its prompt)"
    )


def example_lengths(task: Task, samples: Sequence[Sample], template: str, tokenizer: object) -> list[int]:
    """Token length of each training example (prompt + completion) exactly as the recipe builds it."""
    return [full for _, full in example_token_counts(task, samples, template, tokenizer)]


def example_token_counts(task: Task, samples: Sequence[Sample], template: str, tokenizer: object) -> list[tuple[int, int]]:
    """(prompt tokens, whole example tokens) of each training example, as the recipe builds it."""

    out = []
    for s in samples:
        messages, completion = training_pair(task, template, s)
        example = tokenize_pair(tokenizer, messages, completion, max_len=1 << 30)
        out.append((sum(1 for x in example.labels if x == IGNORE), len(example.input_ids)))
    return out
