"""The chat template, applied in one place (what every backend sends and what training teaches),
and how many devices a wall-clock second occupies.

Neutral ground: training and the runner use both without importing a serving backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.types import Message


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


def device_count() -> int:
    try:
        import torch

        return max(1, torch.cuda.device_count()) if torch.cuda.is_available() else 1
    except ImportError:
        return 1
