"""The hf backend on a tiny random model: adapters switch on and off across batches."""

from __future__ import annotations

import pytest

from harness.backends.hf import HFBackend
from harness.types import Decoding, Message, Request
from tests.tiny_model import make_model_dir


@pytest.fixture(scope="module")
def tiny_adapter(tmp_path_factory):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("hf")
    model_dir = make_model_dir(root / "tiny")
    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=64, target_modules="all-linear", init_lora_weights=False))
    lora.save_pretrained(root / "adapter")
    return model_dir, root / "adapter"


def test_base_and_adapter_requests_interleave_over_many_batches(tiny_adapter):
    model_dir, adapter = tiny_adapter
    backend = HFBackend(model_dir, batch_size=2)
    prompts = [Request((Message("user", f"Tweet: $ACME {w}"),), Decoding(max_tokens=4)) for w in ("up", "down", "flat")]
    with_adapter = [Request(r.messages, r.decoding, str(adapter)) for r in prompts]
    base_before = backend.generate(prompts)
    tuned = backend.generate(with_adapter + prompts)  # adapter group, then base group, 2 chunks each
    base_after = backend.generate(prompts)
    assert [c.text for c in base_after] == [c.text for c in base_before] == [c.text for c in tuned[3:]]
    assert [c.text for c in tuned[:3]] != [c.text for c in base_before]  # a random, strong adapter changes outputs
    assert all(c.completion_tokens <= 4 and c.prompt_tokens > 3 for c in tuned)


def test_constrained_choice_on_hf(tiny_adapter):
    model_dir, _ = tiny_adapter
    backend = HFBackend(model_dir)
    [c] = backend.generate(
        [Request((Message("user", "Tweet: up"),), Decoding(max_tokens=4, choices=("Bullish", "Bearish")))]
    )
    assert c.text in ("Bullish", "Bearish")
