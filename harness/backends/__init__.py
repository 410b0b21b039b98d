"""Backends behind one interface: vllm (default), hf (transformers + peft), openai, fake (tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.backends.base import Backend, BatchStats
from harness.errors import UserError, closest

BACKENDS = ("vllm", "hf", "openai")  # `fake` exists for tests and is deliberately not listed


def check_backend(kind: str) -> None:
    if kind not in (*BACKENDS, "fake"):
        raise UserError(f"unknown backend {kind!r}{closest(kind, BACKENDS)} (choose from {', '.join(BACKENDS)})")


def make_backend(kind: str, model_dir: Path, **options: Any) -> Backend:
    if kind == "vllm":
        from harness.backends.vllm import VLLMBackend

        return VLLMBackend(model_dir, **options)
    if kind == "hf":
        from harness.backends.hf import HFBackend

        return HFBackend(model_dir, **{k: v for k, v in options.items() if k in ("overflow", "batch_size")})
    if kind == "openai":
        from harness.backends.openai import OpenAIBackend

        return OpenAIBackend(model_dir, **{k: v for k, v in options.items() if k in ("url", "overflow", "served_model")})
    if kind == "fake":
        from harness.backends.fake import FakeBackend

        return FakeBackend()
    raise UserError(f"unknown backend {kind!r}{closest(kind, BACKENDS)} (choose from {', '.join(BACKENDS)})")


__all__ = ["BACKENDS", "Backend", "BatchStats", "make_backend"]
