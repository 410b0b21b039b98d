"""How much memory the KV cache of a CPU engine gets.

vLLM sizes it on CPU from `VLLM_CPU_KVCACHE_SPACE` (GiB) or else from the memory it finds free. A
fixed 2 GiB, as this harness set, holds ~45,000 tokens of the 135M default in float32 (46 KB a
token), but not one 4,096-token request of a larger model with full multi-head attention (a 7B one:
1 MB a token in float32, 4 GiB a request), and the engine then fails at start. So the space is sized
from the model's own config: room for two full-length requests, at least the 2 GiB that serve the
default well. A value the user sets wins, and must be what vLLM parses: whole GiB.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from harness.core.errors import UserError

VARIABLE = "VLLM_CPU_KVCACHE_SPACE"
FLOOR_GIB = 2
FULL_REQUESTS = 2  # a long request in flight while the next one starts
GiB = 1 << 30
DTYPE_BYTES = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2}


def user_gib() -> int | None:
    """The user's setting, or None; one that vLLM would fail to parse (or size to nothing) is refused."""
    raw = os.environ.get(VARIABLE, "")
    if raw == "":
        return None
    try:
        gib = int(raw)
    except ValueError:
        gib = 0
    if gib < 1:
        raise UserError(f"{VARIABLE}={raw!r} must be a whole number of GiB, 1 or more (unset: sized from the model)")
    return gib


def token_bytes(config: dict, dtype: str) -> int | None:
    """Bytes of keys and values a token takes across all layers, from a transformers config; None
    where the config does not say (a GGUF file, an architecture without these fields)."""
    nested = config.get("text_config")
    text: dict = nested if isinstance(nested, dict) else config
    try:
        layers = int(text["num_hidden_layers"])
        heads = int(text["num_attention_heads"])
        kv_heads = int(text.get("num_key_value_heads") or heads)
        head_dim = int(text.get("head_dim") or int(text["hidden_size"]) // heads)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    return 2 * layers * kv_heads * head_dim * DTYPE_BYTES.get(dtype, 4)


def space_gib(config: dict, dtype: str, max_model_len: int) -> int:
    """GiB for two requests of `max_model_len` tokens, at least FLOOR_GIB."""
    per_token = token_bytes(config, dtype)
    if per_token is None:
        return FLOOR_GIB
    return max(FLOOR_GIB, math.ceil(FULL_REQUESTS * per_token * max_model_len / GiB))


def kv_cache_bytes(model_dir: Path, dtype: str, max_model_len: int) -> int:
    """The KV cache size a CPU engine for this model is given: the user's, else sized from its config."""
    gib = user_gib()
    if gib is None:
        try:
            config = json.loads((model_dir / "config.json").read_text())
        except (OSError, ValueError):
            config = {}
        gib = space_gib(config if isinstance(config, dict) else {}, dtype, max_model_len)
    return gib * GiB
