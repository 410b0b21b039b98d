"""Training examples: the task's rendered prompt + gold completion, loss on completion only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.core.types import Message, Sample
from harness.engines.chat import encode_chat
from harness.taskkit.prompts import training_pair
from harness.taskkit.registry import Task

IGNORE = -100


@dataclass(frozen=True)
class Example:
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]  # IGNORE on prompt tokens

    @property
    def n_completion(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


def tokenize_pair(tokenizer: Any, messages: Sequence[Message], completion: str, max_len: int) -> Example:
    """Prompt ids exactly as served (chat template + generation prompt), then the assistant turn
    as the chat template closes it; labels mask every prompt token."""
    prompt = encode_chat(tokenizer, messages)
    chat = [{"role": m.role, "content": m.content} for m in messages] + [{"role": "assistant", "content": completion}]
    full: list[int] | None = None
    if getattr(tokenizer, "chat_template", None):
        out = tokenizer.apply_chat_template(chat, tokenize=True, add_generation_prompt=False)
        if isinstance(out, dict) or hasattr(out, "input_ids"):
            out = out["input_ids"]
        full = list(out)
    if full is None or full[: len(prompt)] != prompt:
        # The template re-renders earlier turns differently once an answer follows: fall back to
        # prompt + completion + EOS, which is exactly what generation continues from.
        full = prompt + list(tokenizer(completion, add_special_tokens=False)["input_ids"]) + [tokenizer.eos_token_id]
    full = full[:max_len]
    labels = [IGNORE] * min(len(prompt), len(full)) + full[len(prompt) :]
    return Example(tuple(full), tuple(labels))


def build_examples(task: Task, template: str, samples: Sequence[Sample], tokenizer: Any, max_len: int) -> list[Example]:
    out = []
    for s in samples:
        messages, completion = training_pair(task, template, s)
        ex = tokenize_pair(tokenizer, messages, completion, max_len)
        if ex.n_completion:
            out.append(ex)
    return out


def _examples(batch: Sequence[Example | dict[str, Any]]) -> list[Example]:
    return [e if isinstance(e, Example) else Example(tuple(e["input_ids"]), tuple(e["labels"])) for e in batch]


def collate(batch: Sequence[Example | dict[str, Any]], pad_id: int) -> dict[str, Any]:
    import torch

    examples = _examples(batch)

    width = max(len(e.input_ids) for e in examples)
    ids = [list(e.input_ids) + [pad_id] * (width - len(e.input_ids)) for e in examples]
    labels = [list(e.labels) + [IGNORE] * (width - len(e.labels)) for e in examples]
    mask = [[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in examples]
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}


def collate_packed(batch: Sequence[Example | dict[str, Any]]) -> dict[str, Any]:
    """The batch as one row without padding: position ids restart at each example, and with no
    attention mask transformers reads those restarts as a block-causal mask (masking_utils'
    packed-sequence detection), so no token attends across an example. Each example's first label is
    ignored so that no token is trained to predict the next example's start."""
    import torch

    examples = _examples(batch)
    ids = [t for e in examples for t in e.input_ids]
    labels = [t for e in examples for t in (IGNORE, *e.labels[1:])]
    positions = [i for e in examples for i in range(len(e.input_ids))]
    return {
        "input_ids": torch.tensor([ids]),
        "labels": torch.tensor([labels]),
        "position_ids": torch.tensor([positions]),
    }
