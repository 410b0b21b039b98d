"""The counting tokenizer gives transformers' token ids without importing torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.core.types import Message
from harness.engines.chat import encode_chat
from harness.engines.tokenizer import counting_tokenizer
from harness.train.examples import tokenize_pair
from tests.tiny_model import make_model_dir

CHATS = [
    (Message("user", "What is the sentiment of this finance tweet? $ACME up"),),
    (Message("system", "Label market sentiment"), Message("user", "Tweet: $WIDG down")),
    (Message("user", "unknown words here, Bullish!"), Message("assistant", "Neutral"), Message("user", "$GADG flat")),
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("tok") / "tiny")


def test_same_ids_as_transformers_with_and_without_an_answer(tiny):
    from transformers import AutoTokenizer

    ref, light = AutoTokenizer.from_pretrained(tiny), counting_tokenizer(tiny)
    assert type(light).__name__ == "CountingTokenizer"
    for chat in CHATS:
        assert encode_chat(light, chat) == encode_chat(ref, chat)
        assert tokenize_pair(light, chat, "Bearish", 64) == tokenize_pair(ref, chat, "Bearish", 64)
    assert light.eos_token_id == ref.eos_token_id
    assert light("$ACME up")["input_ids"] == ref("$ACME up")["input_ids"]


def test_a_folder_without_a_fast_tokenizer_gets_transformers_tokenizer(tiny, tmp_path, monkeypatch):
    import shutil

    import transformers

    slow = shutil.copytree(tiny, tmp_path / "slow")
    (slow / "tokenizer.json").unlink()
    loaded = []
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda path: loaded.append(path) or "hf")
    assert counting_tokenizer(slow) == "hf" and loaded == [slow]
    assert type(counting_tokenizer(tiny)).__name__ == "CountingTokenizer"


def test_counting_tokens_and_asking_for_cuda_import_no_torch(tiny):
    # the installed torch is the CPU build (Makefile): its version says so without importing it
    code = (
        "import sys; from pathlib import Path; from harness.engines.chat import encode_chat;"
        "from harness.core.types import Message;"
        f"from harness.engines.tokenizer import counting_tokenizer; t = counting_tokenizer(Path({str(tiny)!r}));"
        "n = len(encode_chat(t, [Message('user', '$ACME up')]));"
        "from harness.engines.chat import cuda_available, device_count; assert not cuda_available() and device_count() == 1;"
        "print(n, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) > 3 and out[1] == "False"


def test_a_template_marking_generation_spans_renders_as_transformers_does(tiny, tmp_path):
    import shutil

    from transformers import AutoTokenizer

    marked = shutil.copytree(tiny, tmp_path / "marked")
    template = (
        "{% for m in messages %}<|im_start|> {{ m.role }} {% if m.role == 'assistant' %}{% generation %}"
        "{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %} <|im_end|> {% endfor %}"
        "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
    )
    (marked / "chat_template.jinja").write_text(template)
    ref, light = AutoTokenizer.from_pretrained(marked), counting_tokenizer(marked)
    for chat in CHATS:
        assert encode_chat(light, chat) == encode_chat(ref, chat)
        assert tokenize_pair(light, chat, "Bearish", 64) == tokenize_pair(ref, chat, "Bearish", 64)
