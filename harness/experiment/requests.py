"""A variant's requests for some items: its template, shots, format and decoding. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from harness.core.errors import UserError
from harness.core.types import Decoding, Request, Sample
from harness.experiment.variant import Variant
from harness.taskkit import prompts
from harness.taskkit.choice import CALIBRATIONS, SCORINGS
from harness.taskkit.formats import Layout
from harness.taskkit.registry import Task


def build_requests(
    task: Task, variant: Variant, items: Sequence[Sample], pool: Sequence[Sample], seed: int = 0
) -> list[Request]:
    check_choice(task, variant)
    draw = seed if variant.shot_seed is None else variant.shot_seed
    selector = prompts.ShotSelector(task, pool, variant.shots, variant.selection, draw) if variant.shots else None
    fmt = prompts.PromptFormat(variant.cue, variant.label_order, seed, Layout.decode(variant.layout))
    out = []
    shot_users: dict[str, str] = {}  # one template and format here: a shot's turn renders once
    for s in items:
        shots = selector.select(s) if selector else ()
        messages, turn = prompts.render_with_turn(task, variant.template, s, shots, fmt, shot_users)
        if variant.scoring != "generate" and not (task.labels or s.choices):
            raise UserError(f"variant {variant.name}: item {s.id} of {task.name} has no choices to score")
        out.append(Request(messages, decoding(task, variant, turn, seed, s.choices), variant.adapter))
    return out


def check_choice(task: Task, variant: Variant) -> None:
    """A choice among labels (constrained, by log-likelihood, calibrated) needs labels to choose
    among, and one way of choosing."""
    name = variant.name
    if variant.scoring not in SCORINGS:
        raise UserError(f"variant {name}: unknown scoring {variant.scoring!r} (choose from {', '.join(SCORINGS)})")
    if variant.calibration not in CALIBRATIONS:
        raise UserError(
            f"variant {name}: unknown calibration {variant.calibration!r} (choose from {', '.join(CALIBRATIONS)})"
        )
    loglik = variant.scoring != "generate"
    per_item = task.kind == "multiple_choice" and not task.labels  # lm-eval's per-document choices
    if per_item and variant.calibration != "none":
        raise UserError(
            f"variant {name}: calibration divides out a prior over one label set, and {task.name}'s choices "
            "differ from item to item"
        )
    if (variant.constrained or (loglik and not per_item) or variant.calibration != "none") and not task.labels:
        what = "constrained choice" if variant.constrained else f"{variant.scoring} scoring" if loglik else "calibration"
        raise UserError(
            f"variant {name}: {what} chooses among a label set, and {task.name} has none (its answers are generated text)"
        )
    if variant.calibration != "none" and not loglik:
        raise UserError(
            f"variant {name}: calibration {variant.calibration!r} adjusts a log-likelihood choice; "
            'add scoring = "loglik" (or "loglik_norm")'
        )
    if variant.constrained and loglik:
        raise UserError(f"variant {name}: give constrained = true or scoring = {variant.scoring!r}, not both")


def decoding(task: Task, variant: Variant, turn: prompts.Turn, seed: int, options: tuple[str, ...] = ()) -> Decoding:
    """The variant's settings over the template's over the task's. A log-likelihood choice decodes
    nothing: its requests carry only the labels, so every variant scoring the same prompt (summed or
    normalised, calibrated or not) shares one cached answer."""
    if variant.scoring != "generate":
        labels = tuple(task.labels) or options  # a label set, or the item's own choices
        return Decoding(max_tokens=1, temperature=0.0, stop=(), seed=0, choices=labels, scoring="loglik")
    return Decoding(
        max_tokens=variant.max_tokens or prompts.budget(task, turn),
        temperature=turn.temperature if variant.temperature is None else variant.temperature,
        stop=turn.stop if variant.stop is None else variant.stop,
        seed=seed,
        choices=tuple(task.labels) if variant.constrained else None,
    )
