"""Scripted answers for unit tests. Never the default, and reports say when it was used."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence

from harness.core.types import Completion, Request
from harness.engines.backends.base import BackendBase
from harness.engines.backends.loglik import scored


def _default_script(request: Request) -> str:
    """Deterministic: a choice picked by hashing the prompt, else the prompt's last word."""
    prompt = request.messages[-1].content
    digest = int(hashlib.sha256(prompt.encode()).hexdigest(), 16)
    if request.decoding.choices:
        return request.decoding.choices[digest % len(request.decoding.choices)]
    words = prompt.split()
    return words[-1] if words else ""


def _default_logprobs(request: Request) -> list[float]:
    """Deterministic log-probabilities in [-10, 0) per label, from hashing the prompt and the label."""
    prompt = request.messages[-1].content
    out = []
    for c in request.decoding.choices or ():
        digest = int(hashlib.sha256(f"{prompt}\0{c}".encode()).hexdigest(), 16)
        out.append(-10.0 * (digest % 10_000) / 10_000 - 1e-3)
    return out


class FakeBackend(BackendBase):
    name = "fake"
    cache_tag = "fake"

    def __init__(
        self,
        script: Callable[[Request], str] | None = None,
        seconds_per_request: float = 0.0,
        logprobs: Callable[[Request], Sequence[float]] | None = None,
    ):
        self.script = script or _default_script
        self.logprobs = logprobs or _default_logprobs  # a "loglik" request's scores per label
        self.calls: list[int] = []  # batch sizes, so tests can assert what reached the "model"
        self.seconds_per_request = seconds_per_request

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        self.calls.append(len(requests))
        out = []
        for r in requests:
            if self.seconds_per_request:
                time.sleep(self.seconds_per_request)
            words = sum(len(m.content.split()) for m in r.messages)
            if r.decoding.scoring == "loglik":
                out.append(scored(r.decoding.choices or (), list(self.logprobs(r)), words, self.seconds_per_request))
                continue
            text = self.script(r)
            out.append(
                Completion(
                    text,
                    prompt_tokens=words,
                    completion_tokens=len(text.split()),
                    finish_reason="stop",
                    latency_s=self.seconds_per_request,
                )
            )
        return out

    def close(self) -> None:
        pass
