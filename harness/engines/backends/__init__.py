"""Backends behind one interface: vllm (default), hf (transformers + peft), openai, fake (tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.core.errors import UserError, closest
from harness.engines.backends.base import Backend, BatchStats

BACKENDS = ("vllm", "hf", "openai")  # `fake` exists for tests and is deliberately not listed
ADAPTER_MODES = ("auto", "lora", "merged")
OVERFLOW = ("error", "truncate")


def check_backend(kind: str, options: dict[str, Any] | None = None) -> None:
    """Everything about the backend that can be checked without a model: its name, its options
    and, for a server, that it answers. Runs before any model load or training."""
    if kind not in (*BACKENDS, "fake"):
        raise UserError(f"unknown backend {kind!r}{closest(kind, BACKENDS)} (choose from {', '.join(BACKENDS)})")
    options = options or {}
    mode = options.get("adapter_mode", "auto")
    if mode not in ADAPTER_MODES:
        choices = ", ".join(ADAPTER_MODES)
        raise UserError(f"unknown --adapter-mode {mode!r}{closest(mode, ADAPTER_MODES)} (choose from {choices})")
    if options.get("overflow", "error") not in OVERFLOW:
        raise UserError(f"--overflow must be error or truncate, got {options['overflow']!r}")
    if kind == "vllm":
        from harness.engines.backends.kv_space import user_gib

        user_gib()
    if kind == "openai":
        from harness.engines.backends.openai import probe

        probe(options.get("url", "http://127.0.0.1:8000"), options)


def make_backend(kind: str, model_dir: Path, **options: Any) -> Backend:
    if kind == "vllm":
        from harness.engines.backends.vllm import VLLMBackend

        return VLLMBackend(model_dir, **options)
    if kind == "hf":
        from harness.engines.backends.hf import HFBackend

        return HFBackend(model_dir, **{k: v for k, v in options.items() if k in ("overflow", "batch_size", "adapter_mode")})
    if kind == "openai":
        from harness.engines.backends.openai import OpenAIBackend, limits_from

        kept = {k: v for k, v in options.items() if k in ("url", "overflow", "served_model")}
        return OpenAIBackend(model_dir, **kept, limits=limits_from(options))
    if kind == "fake":
        from harness.engines.backends.fake import FakeBackend

        return FakeBackend()
    raise UserError(f"unknown backend {kind!r}{closest(kind, BACKENDS)} (choose from {', '.join(BACKENDS)})")


__all__ = ["BACKENDS", "Backend", "BatchStats", "make_backend"]
