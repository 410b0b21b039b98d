"""The default model, pulled from PyPI and converted, answers through transformers."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_pulled_model_has_chat_template_and_answers(model_dir):
    from harness.backends.hf import HFBackend
    from harness.types import Decoding, Message, Request

    config = json.loads((model_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "quantization_config" not in config
    assert (model_dir / "chat_template.jinja").is_file() or "chat_template" in (
        model_dir / "tokenizer_config.json"
    ).read_text()
    marker = json.loads((model_dir / "harness-model.json").read_text())
    assert marker["wheel_sha256"].startswith("bcc81830")
    backend = HFBackend(model_dir)
    [c] = backend.generate(
        [Request((Message("user", "What is the capital of France? Answer in one word."),), Decoding(max_tokens=8))]
    )
    assert "Paris" in c.text
    assert c.prompt_tokens > 10 and 1 <= c.completion_tokens <= 8
