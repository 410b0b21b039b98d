"""Choosing an answer by log-likelihood, and calibrating that choice. Pure functions.

A "loglik" variant does not decode: each candidate answer (the task's labels) is scored by its
summed log-probability as the continuation of the prompt, as lm-evaluation-harness and HELM score
multiple-choice tasks. "loglik_norm" divides each by the answer's length in characters
(lm-evaluation-harness's `acc_norm`), so a long answer is not penalised for its length alone.

Calibration removes the model's prior over the answers, which a small model's choice is mostly
made of (it answers one label to everything):
- "contextual" (Zhao et al. 2021, "Calibrate Before Use"): the label probabilities the prompt gives
  to content-free inputs ("N/A", "", "[MASK]") estimate that prior;
- "batch" (Zhou et al. 2023, "Batch Calibration"): the mean label probability over a batch of real
  inputs estimates it. The harness estimates it on validation items only, never on test.
Either way the answer is the label whose probability, divided by the prior's, is largest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

SCORINGS = ("generate", "loglik", "loglik_norm")
CALIBRATIONS = ("none", "contextual", "batch")
CONTENT_FREE = ("N/A", "", "[MASK]")  # Zhao et al.'s content-free inputs


def scores(logprobs: Sequence[float], choices: Sequence[str], scoring: str) -> list[float]:
    """Each choice's score: its summed log-probability, or per character ("loglik_norm")."""
    if scoring == "loglik_norm":
        return [lp / max(1, len(c)) for lp, c in zip(logprobs, choices, strict=True)]
    return list(logprobs)


def probabilities(values: Sequence[float]) -> list[float]:
    """Softmax over the choices: the probability of each label given that one of them is the answer."""
    top = max(values)
    exp = [math.exp(v - top) for v in values]
    total = sum(exp)
    return [e / total for e in exp]


def prior(rows: Sequence[Sequence[float]]) -> tuple[float, ...]:
    """The log of each label's mean probability over `rows` (per-input label probabilities): the
    bias a calibration divides out."""
    if not rows:
        raise ValueError("a calibration prior needs at least one input")
    width = len(rows[0])
    means = [sum(r[j] for r in rows) / len(rows) for j in range(width)]
    return tuple(math.log(max(m, 1e-300)) for m in means)


def pick(values: Sequence[float], bias: Sequence[float] | None = None) -> int:
    """The chosen choice's index: the largest score, or with a prior the largest calibrated
    log-probability (log p - log prior). Ties go to the first choice, as argmax does."""
    if bias is None:
        adjusted = list(values)
    else:
        adjusted = [math.log(max(p, 1e-300)) - b for p, b in zip(probabilities(values), bias, strict=True)]
    return max(range(len(adjusted)), key=lambda i: (adjusted[i], -i))
