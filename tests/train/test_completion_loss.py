"""The completion-only loss equals transformers' own causal-LM loss, value and gradients."""

from __future__ import annotations

import pytest

from harness.train.examples import IGNORE, Example, collate


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from transformers import AutoModelForCausalLM

    from harness.train.config import TrainConfig
    from harness.train.recipe import apply_lora
    from tests.tiny_model import make_model_dir

    path = make_model_dir(tmp_path_factory.mktemp("loss") / "tiny")
    cfg = TrainConfig(task="twitter_fin_sentiment", rank=4, alpha=8, dropout=0.0)
    return apply_lora(cfg, AutoModelForCausalLM.from_pretrained(path))


def _batch():
    # prompts of different lengths (padding), completions of 1-3 tokens, one example with two spans
    examples = [
        Example((2, 5, 6, 7, 8, 9, 3), (IGNORE,) * 5 + (9, 3)),
        Example((2, 10, 11, 12, 3), (IGNORE,) * 2 + (11, 12, 3)),
        Example((2, 13, 14, 15, 16, 17, 18, 19, 3), (IGNORE, 13, IGNORE, IGNORE, IGNORE, IGNORE, IGNORE, 19, 3)),
    ]
    return collate(examples, pad_id=0)


@pytest.mark.parametrize("num_items", [None, 11])
def test_same_loss_and_gradients_as_the_models_own(model, num_items):
    import torch

    from harness.train.loss import completion_loss

    batch = _batch()
    kwargs = {} if num_items is None else {"num_items_in_batch": torch.tensor(num_items)}
    model.zero_grad()
    reference = model(**batch, **kwargs).loss
    reference.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    ours = completion_loss(model, batch["input_ids"], batch["attention_mask"], batch["labels"], num_items)
    ours.backward()
    assert ours.item() == pytest.approx(reference.item(), rel=1e-5)
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert torch.allclose(p.grad, grads[n], rtol=1e-4, atol=1e-7), n
    assert any(g.abs().sum() > 0 for g in grads.values())
