"""A contender: prompt engineering and fine-tuning are both variants. Pure data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Variant:
    """One contender. Prompt engineering and fine-tuning are both just variants."""

    name: str
    template: str
    shots: int = 0
    selection: str = "random"
    constrained: bool = False
    adapter: str | None = None  # adapter directory
    max_tokens: int | None = None
    train_size: int | None = None  # for adapters: labelled examples it was trained on
    seed: int = 0
    cue: str = ""  # a line appended to every user turn, e.g. "Answer:"
    label_order: str = "given"  # order of the label list in templates that show it
    stop: tuple[str, ...] | None = None  # None: the template's
    temperature: float | None = None  # None: the template's (greedy unless it says otherwise)
    layout: str = ""  # a format perturbation (harness.taskkit.formats.Layout.encode); "" as written
    shot_seed: int | None = None  # the few-shot draw's seed; None: the run's
    many_shot: bool = False  # 'similar' shots, as many as the context allows (harness.experiment.many_shot sets `shots`)

    @property
    def is_adapter(self) -> bool:
        return self.adapter is not None


def seeded_prompts(variants: Sequence[Variant], seeds: Sequence[int]) -> list[Variant]:
    """With several seeds, each prompt arm that draws its few-shot examples at random gets one arm per
    seed (`few_shot_8_s1`: the draw of seed 1), as the adapter gets one training run per seed: both
    sides' luck of the draw is measured. 'similar' selection is deterministic: one arm."""
    if len(seeds) < 2:
        return list(variants)
    out: list[Variant] = []
    for v in variants:
        if v.is_adapter or not v.shots or v.selection == "similar" or v.shot_seed is not None:
            out.append(v)
        else:
            out += [replace(v, name=f"{v.name}_s{s}", shot_seed=s) for s in seeds]
    return out
