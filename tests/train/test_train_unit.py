"""The recipe on a tiny random model (seconds): masking, manifest, cache, determinism, bad input."""

from __future__ import annotations

import json

import pytest

from harness.core.errors import UserError
from harness.core.types import Message
from harness.train.config import TrainConfig, from_mapping
from harness.train.examples import IGNORE, collate, tokenize_pair
from harness.train.recipe import train
from tests.tiny_model import make_model_dir, make_tokenizer


def test_completion_only_masking_is_exact():
    tok = make_tokenizer()
    ex = tokenize_pair(tok, [Message("user", "Tweet: $ACME up")], "Bullish", max_len=64)
    ids = tok.convert_ids_to_tokens(list(ex.input_ids))
    assert ids == [
        "<|im_start|>",
        "user",
        "Tweet:",
        "$ACME",
        "up",
        "<|im_end|>",
        "<|im_start|>",
        "assistant",
        "Bullish",
        "<|im_end|>",
    ]
    masked = [t for t, lab in zip(ids, ex.labels, strict=True) if lab == IGNORE]
    trained = [t for t, lab in zip(ids, ex.labels, strict=True) if lab != IGNORE]
    assert masked == ids[:8]  # every prompt token, generation prompt included
    assert trained == ["Bullish", "<|im_end|>"]  # the answer and the end of turn the model must learn to emit
    assert [lab for lab in ex.labels if lab != IGNORE] == list(ex.input_ids[8:])


def test_collate_pads_with_ignore():
    tok = make_tokenizer()
    a = tokenize_pair(tok, [Message("user", "up")], "Bullish", 64)
    b = tokenize_pair(tok, [Message("user", "Tweet: $ACME down flat")], "Bearish", 64)
    batch = collate([a, b], tok.pad_token_id)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert batch["labels"][0, len(a.input_ids) :].tolist() == [IGNORE] * (len(b.input_ids) - len(a.input_ids))
    assert batch["attention_mask"][0].sum().item() == len(a.input_ids)


@pytest.fixture
def tiny(tmp_path, fixture_data, cache_dir):
    return make_model_dir(tmp_path / "tiny")


def _cfg(model, **kw):
    return TrainConfig(
        **{
            "task": "twitter_fin_sentiment",
            "model": str(model),
            "train_size": 4,
            "val_fraction": 0.0,
            "epochs": 2,
            "batch_size": 2,
            "lr": 5e-3,
            "rank": 4,
            "alpha": 8,
            **kw,
        }
    )


def test_train_writes_complete_manifest_and_hits_cache(tiny):
    first = train(_cfg(tiny), progress=False)
    assert not first.cached
    assert (first.path / "adapter_model.safetensors").is_file() and (first.path / "adapter_config.json").is_file()
    m = json.loads((first.path / "harness-adapter.json").read_text())
    for key in (
        "task",
        "task_version",
        "data_hash",
        "template_hash",
        "base_model_hash",
        "config",
        "libraries",
        "device",
        "train_wall_s",
        "train_device_s",
        "tokens_seen",
        "final_train_loss",
        "loss_curve",
    ):
        assert m[key] is not None, key
    assert m["config"]["rank"] == 4 and m["train_rows"] == 4 and len(m["loss_curve"]) == 4
    assert m["loss_curve"][-1]["loss"] < m["loss_curve"][0]["loss"]
    second = train(_cfg(tiny), progress=False)
    assert second.cached and second.path == first.path
    assert not list(first.path.parent.glob(".work-*"))  # no half-written leftovers


def test_a_damaged_cached_adapter_is_trained_again_not_served(tiny, capsys):
    from harness.engines.adapters import adapter_hash, check_files

    first = train(_cfg(tiny), progress=False)
    weights = first.path / "adapter_model.safetensors"
    good = adapter_hash(first.path)
    with weights.open("r+b") as f:  # cut short, as a full disk or an interrupted copy leaves it
        f.truncate(weights.stat().st_size // 2)
    again = train(_cfg(tiny), progress=False)
    assert not again.cached and again.path == first.path and adapter_hash(again.path) == good
    assert "cached adapter damaged, training it again" in capsys.readouterr().err
    check_files(again.path)
    (first.path / "harness-adapter.json").write_text("{")  # a torn manifest
    assert not train(_cfg(tiny), progress=False).cached
    assert train(_cfg(tiny), progress=False).cached


def test_a_rank_over_the_hidden_size_is_refused_before_training(tiny):
    from harness.train.recipe import check_rank

    check_rank(32, tiny)  # the tiny model is 32 wide
    with pytest.raises(UserError, match=r"LoRA rank 33 is over the model's hidden size \(32\)"):
        train(_cfg(tiny, rank=33), progress=False)
    with pytest.raises(UserError, match="seed must be from 0 to 4294967295, got -1"):
        _cfg(tiny, seed=-1)


def test_same_seed_same_loss_curve(tiny, cache_dir):
    from harness.engines.adapters import adapter_hash

    first = train(_cfg(tiny), progress=False)
    a, hash_a = first.manifest["loss_curve"], adapter_hash(first.path)
    import shutil

    shutil.rmtree(cache_dir / "adapters")
    second = train(_cfg(tiny), progress=False)
    b = second.manifest["loss_curve"]
    assert [x["loss"] for x in a] == pytest.approx([x["loss"] for x in b], abs=1e-6)
    assert adapter_hash(second.path) == hash_a  # the same adapter


def test_training_leaves_the_process_as_it_found_it(tiny, monkeypatch):
    """Kernels are deterministic while training and nothing fills new tensors with NaN; afterwards the
    process is as before, since compare serves vLLM in it next (transformers' full_determinism left
    both switched on for good)."""
    import torch
    import torch.utils.deterministic
    import transformers

    seen = []

    real_train = transformers.Trainer.train

    def spying_train(self, *a, **kw):
        seen.append((torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory))
        return real_train(self, *a, **kw)

    monkeypatch.setattr(transformers.Trainer, "train", spying_train)
    assert not torch.are_deterministic_algorithms_enabled() and torch.utils.deterministic.fill_uninitialized_memory
    train(_cfg(tiny), progress=False)
    assert seen == [(True, False)]
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.utils.deterministic.fill_uninitialized_memory


def test_bad_training_input(tiny):
    with pytest.raises(UserError, match=r"larger than the training split .*6 rows available"):
        train(_cfg(tiny, train_size=50), progress=False)
    with pytest.raises(UserError, match="target module 'qkv_proj' is not in"):
        train(_cfg(tiny, target_modules=("qkv_proj",)), progress=False)
    with pytest.raises(UserError, match="LoRA rank must be positive"):
        _cfg(tiny, rank=0)
    with pytest.raises(UserError, match=r"unknown setting .learning_rate.; did you mean lr"):
        from_mapping({"task": "x", "learning_rate": 1})


def test_non_finite_settings_and_weights_are_refused_and_never_cached(tiny, cache_dir):
    for name, value in [("lr", float("inf")), ("epochs", float("inf")), ("lr", float("nan")), ("dropout", 1.5)]:
        with pytest.raises(UserError, match=name):
            _cfg(tiny, **{name: value})
    with pytest.raises(UserError, match=r"training diverged: .* adapter tensors hold inf or nan"):
        train(_cfg(tiny, lr=1e38, epochs=3), progress=False)
    adapters = cache_dir / "adapters"
    assert not adapters.exists() or not [p for p in adapters.iterdir()]  # nothing cached, no work folder left


def test_adapter_hash_covers_weights_and_settings_not_the_cache_path(tiny, tmp_path):
    import shutil

    from harness.engines.adapters import adapter_hash

    trained = train(_cfg(tiny, epochs=1), progress=False)
    moved = tmp_path / "elsewhere" / "adapter"
    shutil.copytree(trained.path, moved)
    cfg = json.loads((moved / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "/some/other/cache/models/tiny"
    (moved / "adapter_config.json").write_text(json.dumps(cfg))
    assert adapter_hash(moved) == adapter_hash(trained.path)
    cfg["lora_alpha"] = cfg["lora_alpha"] * 2  # a setting that changes the output
    (moved / "adapter_config.json").write_text(json.dumps(cfg))
    assert adapter_hash(moved) != adapter_hash(trained.path)


def test_the_train_schema_and_the_config_name_the_same_settings():
    from harness.core.schema import TrainTable
    from harness.train.config import FIELDS

    assert set(TrainTable.model_fields) == FIELDS - {"task"}  # a new recipe setting needs its schema entry


def test_a_batch_goes_through_in_micro_batches_on_cpu_as_one_update(tiny, cache_dir):
    """On CPU a batch of 8 rows is four passes of 2 accumulated into one update (the activations of 2
    rows in memory); an odd batch goes through a row at a time. Rows per update stay
    batch_size x grad_accum."""
    import torch

    from harness.train import recipe

    assert not torch.cuda.is_available()
    model, tokenizer = recipe.load_lora_model(_cfg(tiny), tiny)
    expected = {(8, 1): (2, 4), (8, 2): (2, 8), (6, 1): (2, 3), (5, 1): (1, 5), (1, 3): (1, 3)}
    for (batch, accum), (micro, steps) in expected.items():
        trainer = recipe.build_trainer(
            _cfg(tiny, batch_size=batch, grad_accum=accum), model, tokenizer, [], [], cache_dir / f"b{batch}-{accum}", []
        )
        assert trainer.args.per_device_train_batch_size == micro == trainer.args.per_device_eval_batch_size
        assert trainer.args.gradient_accumulation_steps == steps and micro * steps == batch * accum


def test_packed_rows_give_the_padded_loss_and_gradients(tiny):
    """A micro-batch packed into one unpadded row (position ids restarting per example) gives the
    padded batch's loss and LoRA gradients: no token attends across examples, none learns to predict
    the next example's first token. A row whose mask leaked across examples would differ."""
    import torch

    from harness.train import recipe
    from harness.train.examples import collate_packed
    from harness.train.loss import completion_loss

    tok = make_tokenizer()
    examples = [
        tokenize_pair(tok, [Message("user", text)], answer, 64)
        for text, answer in [("Tweet: $ACME up", "Bullish"), ("down flat again today", "Bearish"), ("x", "Neutral")]
    ]
    packed = collate_packed(examples)
    assert packed["input_ids"].shape == (1, sum(len(e.input_ids) for e in examples))
    assert "attention_mask" not in packed
    starts = [0, len(examples[0].input_ids), len(examples[0].input_ids) + len(examples[1].input_ids)]
    assert [packed["position_ids"][0, s].item() for s in starts] == [0, 0, 0]
    assert all(packed["labels"][0, s].item() == IGNORE for s in starts)
    n_labelled = sum(e.n_completion for e in examples)

    torch.manual_seed(0)
    model, _ = recipe.load_lora_model(_cfg(tiny, rank=4), tiny)
    for p in model.parameters():  # LoRA's B starts at zero: give the adapter a non-trivial value
        if p.requires_grad:
            p.data.normal_(0, 0.05)

    def loss_and_grads(batch):
        model.zero_grad()
        loss = completion_loss(
            model, batch["input_ids"], batch.get("attention_mask"), batch["labels"], None, batch.get("position_ids")
        )
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    padded_loss, padded_grads = loss_and_grads(collate(examples, tok.pad_token_id))
    packed_loss, packed_grads = loss_and_grads(packed)
    assert packed_loss == pytest.approx(padded_loss, rel=1e-5)
    for a, b in zip(padded_grads, packed_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # one packed row whose examples could see each other gives another loss: the test can fail
    leaky = dict(packed, position_ids=torch.arange(packed["input_ids"].shape[1])[None])
    assert loss_and_grads(leaky)[0] != pytest.approx(padded_loss, rel=1e-4)
    assert n_labelled == int((packed["labels"][0, 1:] != IGNORE).sum())


def test_pack_is_a_setting_that_keys_the_adapter_only_when_on():
    a, b = TrainConfig(task="t"), TrainConfig(task="t", pack=True)
    assert a.key("d", "t", "m") != b.key("d", "t", "m")
    # adapters trained before the setting existed keep their key (this value is the key before it)
    assert a.key("d", "t", "m") == "0fcb1aaccb1983b4"
    assert from_mapping({"task": "t", "pack": True}).pack is True
    with pytest.raises(UserError, match="pack"):
        from_mapping({"task": "t", "pack": "yes"})
