"""The hf backend on a tiny random model: adapters switch on and off across batches."""

from __future__ import annotations

import os

import pytest

from harness.core.types import Decoding, Message, Request
from harness.engines.backends.hf import HFBackend
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


def test_constrained_choice_batches_prompts_of_several_lengths(tiny_adapter):
    model_dir, adapter = tiny_adapter
    choices = ("Bullish", "Bearish", "Neutral news")  # the last is two tokens of the tiny vocabulary
    reqs = [
        Request((Message("user", f"Tweet: {w}"),), Decoding(max_tokens=6, choices=choices), a)
        for w in ("up", "down " * 7, "flat " * 3)
        for a in (None, str(adapter))
    ]
    batched = HFBackend(model_dir, batch_size=4).generate(reqs)  # rows padded to the longest in each batch
    one_by_one = HFBackend(model_dir, batch_size=1)
    for r, c in zip(reqs, batched, strict=True):
        [alone] = one_by_one.generate([r])
        assert c.text in choices and c.text == alone.text


def test_merged_adapter_answers_as_peft_and_leaves_the_base_untouched(tiny_adapter):
    model_dir, adapter = tiny_adapter
    peft_layers = HFBackend(model_dir, adapter_mode="lora")
    merged = HFBackend(model_dir, adapter_mode="merged")
    assert peft_layers.cache_tag == "hf/float32" and merged.cache_tag == "hf/float32/merged"
    prompts = [Request((Message("user", f"Tweet: $ACME {w}"),), Decoding(max_tokens=4)) for w in ("up", "down", "flat")]
    tuned = [Request(r.messages, r.decoding, str(adapter)) for r in prompts]
    base_before = merged.generate(prompts)
    assert [c.text for c in merged.generate(tuned)] == [c.text for c in peft_layers.generate(tuned)]
    assert [c.text for c in merged.generate(tuned)] != [c.text for c in base_before]
    assert [c.text for c in merged.generate(prompts)] == [c.text for c in base_before]
    merged.release_adapter()  # what a sweep does between trials: the copy goes, and comes back on demand
    assert merged._merged is None
    assert [c.text for c in merged.generate(tuned)] == [c.text for c in peft_layers.generate(tuned)]


def test_batches_sorted_by_length_answer_each_request_in_its_own_place(tiny_adapter):
    model_dir, _ = tiny_adapter
    words = ["up", "down " * 9, "flat", "x " * 30, "y " * 5, "z"]
    reqs = [Request((Message("user", f"Tweet: {w}"),), Decoding(max_tokens=3)) for w in words]
    batched = HFBackend(model_dir, batch_size=2).generate(reqs)
    one_by_one = HFBackend(model_dir, batch_size=1)
    for r, c in zip(reqs, batched, strict=True):
        [alone] = one_by_one.generate([r])
        assert (c.prompt_tokens, c.text) == (alone.prompt_tokens, alone.text)


def test_a_damaged_merged_copy_is_merged_again(tiny_adapter, cache_dir, capsys):
    from harness.engines.adapters import merged_model
    from harness.engines.models import damaged_weights

    model_dir, adapter = tiny_adapter
    first = merged_model(adapter, model_dir)
    weights = next(first.glob("*.safetensors"))
    whole = weights.read_bytes()
    weights.write_bytes(whole[: len(whole) // 2])
    assert damaged_weights(first) is not None
    again = merged_model(adapter, model_dir)
    assert again == first and damaged_weights(again) is None and weights.read_bytes() == whole
    assert "cached merged model damaged, merging it again" in capsys.readouterr().err


def test_serving_an_adapter_trims_other_merged_copies_to_the_budget(tiny_adapter, cache_dir, monkeypatch):
    from harness.engines.adapters import merged_model

    model_dir, adapter = tiny_adapter
    stale = cache_dir / "merged" / "stale-copy"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"x" * 1000)
    os.utime(stale, (1, 1))
    monkeypatch.setenv("HARNESS_MERGED_MAX_GB", "0")
    copy = merged_model(adapter, model_dir)
    assert not stale.exists()  # unused and over budget
    assert merged_model(adapter, model_dir) == copy and any(copy.glob("*.safetensors"))  # in use: kept at 0
