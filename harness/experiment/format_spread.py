"""The formats a run's format spread scores: perturbations of the selected prompt that change what
the model sees. Pure (renders templates, no model)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from harness.core.types import Sample
from harness.experiment.requests import build_requests
from harness.experiment.variant import Variant
from harness.taskkit import formats
from harness.taskkit.prompts import LABEL_ORDERS, PromptFormat, render, render_turn
from harness.taskkit.registry import Task

PROBE_ITEMS = 3  # items whose rendering decides whether a format changes the prompt


def lists_labels(task: Task, template: str, sample: Sample) -> bool:
    """Whether the template shows the label list (so its order is a format choice)."""
    if len(task.labels) < 2:
        return False
    return render(task, template, sample, (), PromptFormat(label_order="given")) != render(
        task, template, sample, (), PromptFormat(label_order="reversed")
    )


def spread_variants(
    task: Task,
    chosen: Variant,
    items: Sequence[Sample],
    pool: Sequence[Sample],
    n: int,
    seed: int,
    fits: Callable[[Variant], bool] | None = None,
) -> list[Variant]:
    """Up to `n` perturbed formats of `chosen`, drawn in a seeded order from the grammar of
    harness.taskkit.formats, keeping only those whose prompts differ on the first items from the prompt
    as written and from every format kept before (a template with no descriptor or line break
    has fewer, and then the spread is smaller than asked, never padded with copies), and, with
    `fits`, only those whose every prompt still fits the context (a many-shot prompt fills it as
    written; a longer separator on each of its shots may not fit)."""
    if n <= 0 or not items:
        return []
    probe = list(items[:PROBE_ITEMS])
    orders = [chosen.label_order]
    if lists_labels(task, chosen.template, probe[0]):
        orders += [o for o in LABEL_ORDERS if o != chosen.label_order]

    def messages(v: Variant) -> tuple[Any, ...]:
        return tuple(r.messages for r in build_requests(task, v, probe, pool, seed))

    seen = {messages(chosen)}
    out: list[Variant] = []
    for f in formats.candidates(seed, orders):
        v = replace(chosen, name=f"format{len(out) + 1}:{chosen.name}", layout=f.layout.encode(), label_order=f.label_order)
        key = messages(v)
        if key in seen:
            continue
        seen.add(key)
        if fits is not None and not fits(v):
            continue
        out.append(v)
        if len(out) == n:
            break
    return out


def describe(variant: Variant) -> str:
    return formats.Format(formats.Layout.decode(variant.layout), variant.label_order).describe()


def check_perturbable(task: Task, samples: Sequence[Sample], rows: int = PROBE_ITEMS) -> None:
    """Every template of the task takes a perturbation on the first rows: a template that changes a
    field's text as it prints it is refused before any model work (UserError)."""
    probe = PromptFormat(layout=formats.Layout(separator=" - ", casing="upper", spacing="double"))
    for template in task.templates:
        for s in samples[:rows]:
            render_turn(task, template, s, probe)
