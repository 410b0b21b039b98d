"""A backend by name, and every check of a backend that needs no model (its options, a server
that answers): run before any model load or training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.core.errors import UserError, closest
from harness.engines.backends.base import ADAPTER_MODES, BACKENDS, OVERFLOW, Backend
from harness.engines.backends.fake import FakeBackend
from harness.engines.backends.hf import HFBackend
from harness.engines.backends.kv_space import user_gib
from harness.engines.backends.openai import OpenAIBackend, limits_from, probe
from harness.engines.backends.vllm import VLLMBackend


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
        user_gib()
    if kind == "openai":
        probe(options.get("url", "http://127.0.0.1:8000"), options)


def make_backend(kind: str, model_dir: Path, **options: Any) -> Backend:
    if kind == "vllm":
        return VLLMBackend(model_dir, **options)
    if kind == "hf":
        return HFBackend(model_dir, **{k: v for k, v in options.items() if k in ("overflow", "batch_size", "adapter_mode")})
    if kind == "openai":
        kept = {k: v for k, v in options.items() if k in ("url", "overflow", "served_model")}
        return OpenAIBackend(model_dir, **kept, limits=limits_from(options))
    if kind == "fake":
        return FakeBackend()
    raise UserError(f"unknown backend {kind!r}{closest(kind, BACKENDS)} (choose from {', '.join(BACKENDS)})")
