"""A contender: prompt engineering and fine-tuning are both variants. Pure data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from harness.taskkit.registry import Task


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
    scoring: str = "generate"  # or "loglik"/"loglik_norm": the likeliest label, no decoding (harness.taskkit.choice)
    calibration: str = "none"  # of a loglik choice: "contextual" or "batch" (harness.taskkit.choice)

    @property
    def is_adapter(self) -> bool:
        return self.adapter is not None


# Log-likelihood choice costs a sequence per label (bench/choice_scoring.py): the default for a
# small label set, where it is as cheap as constrained decoding; constrained decoding above it.
LOGLIK_MAX_LABELS = 8


def loglik_decodings(task: Task) -> tuple[tuple[str, str], ...]:
    """The log-likelihood choices (scoring, calibration) a labelled task's arms get by default: the
    plain one and both calibrations (one scored answer serves all three: they differ only in how
    the label scores are read)."""
    if task.kind == "multiple_choice" and not task.labels:  # per-item choices: lm-eval's acc and acc_norm
        return (("loglik", "none"), ("loglik_norm", "none"))
    if not task.labels or len(task.labels) > LOGLIK_MAX_LABELS:
        return ()
    return (("loglik", "none"), ("loglik", "contextual"), ("loglik", "batch"))


def decoding_name(scoring: str, calibration: str) -> str:
    return scoring if calibration == "none" else f"{scoring}_{calibration}"


def decoding_of(v: Variant) -> str:
    """How an arm turns the model's output into an answer: "free", "constrained", or the
    log-likelihood choice ("loglik", "loglik_batch", ...)."""
    if v.scoring != "generate":
        return decoding_name(v.scoring, v.calibration)
    return "constrained" if v.constrained else "free"


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
