"""The KV cache of a CPU engine is sized from the model's config (room for two full-length requests,
at least 2 GiB); a user's VLLM_CPU_KVCACHE_SPACE wins and is checked before any work."""

from __future__ import annotations

import json

import pytest

from harness.engines.backends import kv_space
from tests.fixtures import write_data_dir
from tests.helpers import run_cli

SMOLLM2_135M = {"num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64,
                "hidden_size": 576}  # fmt: skip
LLAMA2_7B = {"num_hidden_layers": 32, "num_attention_heads": 32, "hidden_size": 4096}  # no GQA, no head_dim
LLAMA3_8B = {"num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "hidden_size": 4096}


@pytest.mark.parametrize(
    ("config", "dtype", "per_token", "gib"),
    [
        (SMOLLM2_135M, "float32", 46_080, 2),  # 189 MB for 4096 tokens: the 2 GiB floor
        (LLAMA2_7B, "float32", 1 << 20, 8),  # 4 GiB a 4096-token request, two of them
        (LLAMA2_7B, "bfloat16", 1 << 19, 4),
        (LLAMA3_8B, "float32", 1 << 18, 2),
        ({"text_config": LLAMA2_7B, "vision_config": {}}, "float32", 1 << 20, 8),  # a multimodal config
        ({"model_type": "gguf-ish"}, "float32", None, 2),  # the config does not say: the floor
    ],
)
def test_the_space_holds_two_full_length_requests_of_the_model(config, dtype, per_token, gib):
    assert kv_space.token_bytes(config, dtype) == per_token
    assert kv_space.space_gib(config, dtype, 4096) == gib


def test_the_model_folder_is_read_and_a_users_setting_wins(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text(json.dumps(LLAMA2_7B))
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    assert kv_space.kv_cache_bytes(tmp_path, "float32", 4096) == 8 << 30
    assert kv_space.kv_cache_bytes(tmp_path, "float32", 16384) == 32 << 30
    assert kv_space.kv_cache_bytes(tmp_path / "missing", "float32", 4096) == 2 << 30
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "3")
    assert kv_space.kv_cache_bytes(tmp_path, "float32", 4096) == 3 << 30


@pytest.mark.parametrize("value", ["1.5", "0", "-2", "lots"])
def test_a_setting_vllm_cannot_use_is_refused_before_any_work(value, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", value)
    monkeypatch.setenv("HARNESS_DATA_DIR", str(write_data_dir(tmp_path / "data", ["twitter_fin_sentiment"])))
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["compare", "twitter_fin_sentiment", "--no-train"], capsys, monkeypatch)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"VLLM_CPU_KVCACHE_SPACE={value!r} must be a whole number of GiB" in err
    assert not (tmp_path / "cache" / "models").exists()  # no model pulled
    assert not [p for p in (tmp_path / "results").rglob("*") if p.is_file()]  # nothing written
