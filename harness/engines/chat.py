"""The chat template, applied in one place (what every backend sends and what training teaches),
and how many devices a wall-clock second occupies.

Neutral ground: training and the runner use both without importing a serving backend.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from harness.core.types import Message


def encode_chat(tokenizer: Any, messages: Sequence[Message]) -> list[int]:
    """Prompt token ids through the tokenizer's chat template, generation prompt appended."""
    chat = [{"role": m.role, "content": m.content} for m in messages]
    if getattr(tokenizer, "chat_template", None):
        out = tokenizer.apply_chat_template(chat, tokenize=True, add_generation_prompt=True)
        if isinstance(out, dict) or hasattr(out, "input_ids"):  # BatchEncoding in newer transformers
            out = out["input_ids"]
        return list(out)
    # A base model without a chat template: plain concatenation, stated here so it is not hidden.
    text = "\n\n".join(m.content for m in messages) + "\n"
    return list(tokenizer(text)["input_ids"])


@functools.cache
def cuda_available() -> bool:
    """torch.cuda.is_available(), without importing torch (2 s on 2 cores) where the installed torch
    is a CPU-only build: a fully cached rerun needs no torch at all."""

    try:
        if metadata.version("torch").endswith("+cpu"):
            return False
    except metadata.PackageNotFoundError:
        return False
    import torch

    return bool(torch.cuda.is_available())


def device_count() -> int:
    if not cuda_available():
        return 1
    import torch

    return max(1, torch.cuda.device_count())
