"""What the vllm and hf backends share of log-likelihood scoring: the token ids each label adds
after the prompt, and the completion a set of label scores makes.

A label's ids are the tokenizer's for the label alone, appended to the prompt's chat-template ids
(which end with the assistant turn's header): the sequence a model that answered the label would
have produced, and the one constrained decoding restricts generation to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.core.types import Completion


def continuations(tokenizer: Any, choices: Sequence[str]) -> list[list[int]]:
    out = [list(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in choices]
    for c, ids in zip(choices, out, strict=True):
        if not ids:
            raise ValueError(f"label {c!r} has no tokens to score")
    return out


def scored(choices: Sequence[str], logprobs: Sequence[float], prompt_tokens: int, latency_s: float) -> Completion:
    """The completion of a scored request: the likeliest label (first on a tie) and every score."""
    best = max(range(len(logprobs)), key=lambda i: (logprobs[i], -i))
    return Completion(
        choices[best], prompt_tokens, 0, "scored", latency_s, choice_logprobs=tuple(float(x) for x in logprobs)
    )
