"""Bootstrapped demonstrations (the idea of DSPy's BootstrapFewShot): the shots a variant shows are
drawn only from training examples the base model itself answers correctly with the variant's own
prompt, so every demonstration is one the model can follow. The candidates are a seeded, label-
balanced draw from the shot pool; the teacher is the variant at zero shots on the base model. Its
model calls are part of the prompt side's one-off cost (`Bootstrapped.device_s`)."""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace

from harness.core.errors import UserError
from harness.core.types import Sample
from harness.engines.backends.base import Backend
from harness.engines.chat import device_count
from harness.experiment.calibration import answers
from harness.experiment.variant import Variant
from harness.taskkit import scoring
from harness.taskkit.data import round_robin
from harness.taskkit.metrics import score_key
from harness.taskkit.registry import Task

BOOTSTRAP = "bootstrap"
CANDIDATES_PER_SHOT = 4  # DSPy's BootstrapFewShot tries up to max_rounds x its trainset; here 4 per shot
MIN_CANDIDATES = 16


@dataclass(frozen=True)
class Bootstrapped:
    """What bootstrapping a variant's shots did: the teacher's calls and their device-seconds, and
    how many candidates it answered correctly (the pool the shots are then drawn from)."""

    calls: int
    kept: int
    device_s: float

    def as_record(self) -> dict[str, float | int]:
        return {"calls": self.calls, "kept": self.kept, "device_s": round(self.device_s, 4)}


def candidates(task: Task, pool: Sequence[Sample], k: int, seed: int) -> list[Sample]:
    size = min(len(pool), max(MIN_CANDIDATES, CANDIDATES_PER_SHOT * k))
    rng = random.Random(f"{seed}:bootstrap")
    return round_robin(list(pool), size, rng) if task.labels else rng.sample(list(pool), size)


def correct(task: Task, items: Sequence[Sample], texts: Sequence[str]) -> list[bool]:
    """Which answers count as right: a full score on a right-or-wrong metric; on a graded one
    (ROUGE), at least the candidates' median."""
    key = score_key(task.primary_metric)  # "correct", or the ROUGE variant
    values = [scoring.score(task, scoring.extract(task, t, s), s).get(key, 0.0) for s, t in zip(items, texts, strict=True)]
    if key == "correct":
        return [v >= 1.0 for v in values]
    middle = statistics.median(values) if values else 0.0
    return [v >= middle for v in values]


def bootstrap(
    task: Task, variant: Variant, pool: Sequence[Sample], backend: Backend, seed: int
) -> tuple[Variant, tuple[Sample, ...], Bootstrapped | None]:
    """The variant and pool its requests are built from: a bootstrap variant's shots come from the
    examples its teacher answered correctly (label-balanced among them); any other variant as it is."""
    if variant.selection != BOOTSTRAP or not variant.shots:
        return variant, tuple(pool), None
    if not pool:
        raise UserError(
            f"variant {variant.name}: bootstrapped shots are drawn from the training pool, and {task.name} has none "
            "left (every row was carved out for validation or duplicated a test input)"
        )
    draw = seed if variant.shot_seed is None else variant.shot_seed
    tried = candidates(task, pool, variant.shots, draw)
    teacher = replace(variant, shots=0, selection="random", adapter=None, many_shot=False)
    done = answers(task, teacher, tried, (), backend, seed, tried)
    kept = tuple(s for s, ok in zip(tried, correct(task, tried, [c.text for c in done]), strict=True) if ok)
    spent = sum(c.latency_s for c in done) * device_count()
    facts = Bootstrapped(len(tried), len(kept), spent)
    shown = replace(variant, shots=min(variant.shots, len(kept)), selection="balanced" if task.labels else "random")
    return shown, kept, facts
