"""The one narrow model interface and the context-length policy.

Every backend receives the *token ids* of the prompt that `harness.engines.chat.encode_chat` builds with
the base model's own chat template, so no engine can silently format a prompt differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from harness.core.errors import UserError
from harness.core.types import Completion, Request
from harness.engines.chat import encode_chat

BACKENDS = ("vllm", "hf", "openai")  # `fake` exists for tests and is deliberately not listed
ADAPTER_MODES = ("auto", "lora", "merged")
OVERFLOW = ("error", "truncate")


class Backend(Protocol):
    """What every engine offers: requests in, completions out, and the accounting a run keeps of
    how it answered (declared here, so no caller probes for it)."""

    name: str

    @property
    def cache_tag(self) -> str:
        """What decides the answers besides the request (served dtype, adapter mode, a server's
        address and model): the response cache keeps answers of different backends apart by it."""
        ...

    @property
    def engine_starts(self) -> int:
        """Engines this backend started (0 when every answer came from elsewhere)."""
        ...

    @property
    def engine_start_s(self) -> float:
        """Their start-up time."""
        ...

    @property
    def served_url(self) -> str | None:
        """Base-model requests went to a running `harness serve` at this address."""
        ...

    def generate(self, requests: Sequence[Request]) -> list[Completion]: ...
    def close(self) -> None: ...

    def context_cut(self, request: Request) -> int | None:
        """How many prompt tokens the backend keeps where it cuts this request's prompt to fit; None
        where it sends the prompt whole (the answer is to what was sent)."""
        ...

    def timing_path(self, request: Request) -> str:
        """How the backend would time this request now, where that can differ (through `harness
        serve` or in-process, eager or compiled): the latency probe keeps times apart by it."""
        ...

    def release_adapter(self) -> None:
        """Drop what holds an adapter's weights (a sweep trains the next trial without them)."""
        ...


class BackendBase:
    """The accounting defaults of a backend that has none of its own: no engine, no cut, one way of
    timing, nothing to release. Each backend sets its own `name` and `cache_tag`."""

    name: str
    engine_starts = 0
    engine_start_s = 0.0
    served_url: str | None = None

    def context_cut(self, request: Request) -> int | None:
        return None

    def timing_path(self, request: Request) -> str:
        return ""

    def release_adapter(self) -> None:
        return None


@dataclass(frozen=True)
class BatchStats:
    """Accounting for one generate() call, recorded with the run's records."""

    requests: int
    wall_s: float
    device_s: float
    prompt_tokens: int
    completion_tokens: int

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.wall_s if self.wall_s > 0 else float("inf")


def kept_tokens(tokenizer: Any, request: Request, max_len: int, overflow: str) -> int | None:
    """How many prompt tokens a backend keeps of this request where it cuts the prompt to fit
    (`--overflow truncate`: the last ones); None where it sends the prompt whole. The answer is to
    what was sent, so the response cache keys a cut prompt by it."""
    if overflow != "truncate":
        return None  # over the context, the request fails instead
    budget = max_len - request.decoding.max_tokens
    return budget if len(encode_chat(tokenizer, request.messages)) > budget else None


def fit_context(ids: list[int], max_tokens: int, max_len: int, overflow: str, index: int) -> list[int]:
    """Apply the explicit over-length policy: 'error' (default) or 'truncate' (keep the end)."""
    budget = max_len - max_tokens
    if len(ids) <= budget:
        return ids
    if overflow == "truncate" and budget > 0:
        return ids[-budget:]
    raise UserError(
        f"request {index} needs {len(ids)} prompt + {max_tokens} new tokens, over the model's "
        f"context of {max_len}; use fewer shots, a shorter template, or --overflow truncate"
    )
