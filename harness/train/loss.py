"""The training loss on completion tokens only, without logits for every prompt position.

A causal LM's forward computes logits over the whole vocabulary (49,152 for SmolLM2) at every
position, in float32 for the loss: 16 examples x 700 tokens is 2.2 GB of logits, kept again for
the backward pass, where only the few answer tokens carry a loss (a label is 1-5 tokens after a
prompt of hundreds). Here the decoder's hidden states at the positions that predict a labelled
token go through the output layer, and nothing else: the same loss as transformers'
ForCausalLMLoss (shift by one, ignore -100, sum over tokens divided by the tokens in the
accumulated batch, or their mean).
"""

from __future__ import annotations

from typing import Any

from harness.train.examples import IGNORE


def completion_loss(
    model: Any, input_ids: Any, attention_mask: Any, labels: Any, num_items: Any = None, position_ids: Any = None
) -> Any:
    """attention_mask None with position_ids: packed examples (harness.train.examples.collate_packed)."""
    import torch.nn.functional as F

    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # under peft's wrapper
    decoder = base.get_decoder()
    # use_cache=False: a KV cache has no use in training, and with one transformers skips its
    # packed-sequence detection, letting packed examples attend to each other.
    hidden = decoder(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
    ).last_hidden_state
    target = labels[:, 1:]
    keep = target != IGNORE
    logits = base.get_output_embeddings()(hidden[:, :-1][keep]).float()
    total = F.cross_entropy(logits, target[keep], reduction="sum")
    if num_items is None:
        return total / keep.sum().clamp(min=1)
    return total / num_items
