"""The default model, pulled from PyPI and converted, answers through transformers."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_pulled_model_has_chat_template_and_answers(model_dir):
    from harness.core.types import Decoding, Message, Request
    from harness.engines.backends.hf import HFBackend

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


def test_counting_tokenizer_matches_transformers_on_every_task_prompt(real_data, model_dir):
    """The token counts behind the context checks: the light tokenizer against transformers' own,
    on real test items of every built-in task, every template, with few-shot turns and answers."""
    from transformers import AutoTokenizer

    from harness.engines.chat import encode_chat
    from harness.engines.tokenizer import counting_tokenizer
    from harness.taskkit import data, prompts
    from harness.taskkit.registry import all_tasks
    from harness.train.examples import tokenize_pair

    ref, light = AutoTokenizer.from_pretrained(model_dir), counting_tokenizer(model_dir)
    assert type(light).__name__ == "CountingTokenizer"
    checked = 0
    for task in all_tasks().values():
        items = data.test_items(task, 4)
        pool = data.shot_pool(task)
        selector = prompts.ShotSelector(task, pool, 2, "random", 0)
        for template in task.templates:
            prompts.load_template(task, template)
            for s in items:
                messages = prompts.render(task, template, s, selector.select(s), prompts.PromptFormat())
                assert encode_chat(light, messages) == encode_chat(ref, messages), (task.name, template, s.id)
                assert tokenize_pair(light, messages, s.target, 4096) == tokenize_pair(ref, messages, s.target, 4096)
                checked += 1
    assert checked >= 6 * 2 * 4
