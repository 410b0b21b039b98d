"""Frozen dataclasses shared by all modules. No I/O, no model libraries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class Sample:
    """One normalised item of a task's split."""

    id: str
    fields: Mapping[str, Any]  # what templates see (besides `choices` and `labels`)
    target: str  # gold answer in the form the scorer compares against
    references: tuple[str, ...] = ()  # extra gold strings (summaries); empty: just `target`
    choices: tuple[str, ...] = ()  # multiple-choice options, when the task has them
    rationale: str | None = None  # worked solution, for chain-of-thought training targets

    @property
    def golds(self) -> tuple[str, ...]:
        return self.references or (self.target,)


@dataclass(frozen=True)
class Decoding:
    max_tokens: int = 32
    temperature: float = 0.0
    stop: tuple[str, ...] = ()
    seed: int = 0
    choices: tuple[str, ...] | None = None  # constrained choice over these strings, or the ones scored
    # "generate": decode (constrained to `choices` where given); "loglik": no decoding, each of
    # `choices` scored by its summed log-probability as the answer after the prompt
    scoring: str = "generate"


@dataclass(frozen=True)
class Request:
    """One generation request. `adapter` is a directory (or a served name for openai)."""

    messages: tuple[Message, ...]
    decoding: Decoding = field(default_factory=Decoding)
    adapter: str | None = None


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    latency_s: float  # this request's share of the batch's wall time
    cached: bool = False
    # "loglik" requests: each choice's summed log-probability, in `decoding.choices` order; `text`
    # is the likeliest choice
    choice_logprobs: tuple[float, ...] = ()
