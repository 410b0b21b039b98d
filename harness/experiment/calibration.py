"""How a log-likelihood variant's scored labels become its answers: the score (summed or per
character) and the calibration prior, estimated with the model's own calls (content-free inputs
through the variant's template and shots, or the validation items). The maths is in
harness.taskkit.choice; this module asks the backend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from harness.core.errors import UserError
from harness.core.types import Completion, Sample
from harness.engines.backends.base import Backend
from harness.experiment.requests import build_requests
from harness.experiment.variant import Variant
from harness.taskkit.choice import CONTENT_FREE, pick, prior, probabilities, scores
from harness.taskkit.registry import Task


@dataclass(frozen=True)
class Chooser:
    """A loglik variant's rule: its scoring and the calibration prior (None: uncalibrated)."""

    scoring: str
    bias: tuple[float, ...] | None = None
    calibration_calls: int = 0  # model calls the prior took (content-free inputs, validation items)

    def choose(self, completion: Completion, choices: Sequence[str]) -> Completion:
        """The completion answering the chosen label (a completion without scores is kept)."""
        if not completion.choice_logprobs:
            return completion
        values = scores(completion.choice_logprobs, choices, self.scoring)
        return replace(completion, text=choices[pick(values, self.bias)])


def content_free(task: Task, like: Sample, text: str) -> Sample:
    """`like` with every text field replaced by a content-free input (Zhao et al.): what the prompt
    alone makes the model answer."""
    fields = {k: (text if isinstance(v, str) else v) for k, v in like.fields.items()}
    options = tuple(text for _ in like.choices)  # a multiple-choice item's options carry content too
    return replace(like, id=f"content-free:{text}", fields=fields, choices=options, rationale=None)


def label_rows(completions: Sequence[Completion], choices: Sequence[str], scoring: str) -> list[list[float]]:
    return [probabilities(scores(c.choice_logprobs, choices, scoring)) for c in completions]


def chooser(
    task: Task,
    variant: Variant,
    items: Sequence[Sample],
    pool: Sequence[Sample],
    backend: Backend,
    seed: int,
    calibration_items: Sequence[Sample] = (),
) -> Chooser | None:
    """The rule a loglik variant answers by; None for a variant that decodes. "batch" is estimated
    on `calibration_items` (the validation items), never on the items being scored unless those
    are the validation items themselves."""
    if variant.scoring == "generate":
        return None
    labels = tuple(task.labels)
    plain = replace(variant, calibration="none")
    if variant.calibration == "contextual":
        like = items[0] if items else (calibration_items[0] if calibration_items else None)
        if like is None:
            return Chooser(variant.scoring)
        probes = [content_free(task, like, text) for text in CONTENT_FREE]
        done = backend.generate(build_requests(task, plain, probes, pool, seed))
        return Chooser(variant.scoring, prior(label_rows(done, labels, variant.scoring)), len(probes))
    if variant.calibration == "batch":
        if not calibration_items:
            raise UserError(
                f"variant {variant.name}: batch calibration is estimated on validation items, and this run has none "
                '(give the task validation items, or use calibration = "contextual")'
            )
        done = backend.generate(build_requests(task, plain, calibration_items, pool, seed))
        return Chooser(variant.scoring, prior(label_rows(done, labels, variant.scoring)), len(calibration_items))
    return Chooser(variant.scoring)


def answers(
    task: Task,
    variant: Variant,
    items: Sequence[Sample],
    pool: Sequence[Sample],
    backend: Backend,
    seed: int,
    calibration_items: Sequence[Sample] = (),
) -> list[Completion]:
    """The variant's answers to `items`, chosen by its rule where it scores labels (a search trial's
    and a sweep trial's path; the runner batches the same steps itself)."""
    rule = chooser(task, variant, items, pool, backend, seed, calibration_items)
    requests = build_requests(task, variant, items, pool, seed)
    done = backend.generate(requests)
    return done if rule is None else [rule.choose(c, r.decoding.choices or ()) for c, r in zip(done, requests, strict=True)]
