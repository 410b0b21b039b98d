"""vLLM (lora and merged), transformers+peft and a real `vllm serve` agree, and adapters take effect."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from harness.core.types import Decoding, Message, Request
from harness.experiment.requests import build_requests
from harness.experiment.variant import Variant
from harness.taskkit import data
from harness.taskkit.registry import get_task

pytestmark = pytest.mark.slow

QUESTIONS = [
    "What is the capital of France? Answer in one word.",
    "What is 2 + 2? Answer with a number.",
    "Name the largest planet of the solar system.",
    "Which colour is the sky on a clear day?",
    "Translate 'bonjour' into English.",
    "Is ice cold or hot? One word.",
]


@pytest.fixture(scope="module")
def items(real_data):
    task = get_task("twitter_fin_sentiment")
    return task, data.test_items(task, 24, seed=1)


@pytest.fixture(scope="module")
def hf(model_dir):
    from harness.engines.backends.hf import HFBackend

    b = HFBackend(model_dir)
    yield b
    b.close()


def _texts(completions):
    return [c.text.strip() for c in completions]


def _agree(a, b):
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def test_vllm_and_hf_same_greedy_answers_and_adapter_changes_outputs(model_dir, trained_adapter, items, hf):
    from harness.engines.backends.vllm import VLLMBackend

    task, samples = items
    base_reqs = [Request((Message("user", q),), Decoding(max_tokens=12)) for q in QUESTIONS]
    template = trained_adapter.manifest["template"]
    plain = build_requests(task, Variant("base", template), samples, ())
    tuned = build_requests(task, Variant("lora", template, adapter=str(trained_adapter.path)), samples, ())
    hf_base, hf_plain, hf_tuned = _texts(hf.generate(base_reqs)), _texts(hf.generate(plain)), _texts(hf.generate(tuned))

    # a label chosen by log-likelihood: the same token ids scored by both backends, base and adapter
    scored = [
        r
        for v in (
            Variant("base", template, scoring="loglik"),
            Variant("lora", template, scoring="loglik", adapter=str(trained_adapter.path)),
        )
        for r in build_requests(task, v, samples, ())
    ]
    hf_scored = hf.generate(scored)
    merged = VLLMBackend(model_dir, adapter_mode="merged")
    v_base, v_plain, v_merged = (
        _texts(merged.generate(base_reqs)),
        _texts(merged.generate(plain)),
        _texts(merged.generate(tuned)),
    )
    v_scored = merged.generate(scored)
    merged.close()
    gaps = [
        abs(x - y)
        for a, b in zip(v_scored, hf_scored, strict=True)
        for x, y in zip(a.choice_logprobs, b.choice_logprobs, strict=True)
    ]
    assert len(gaps) == len(scored) * len(task.labels) and max(gaps) < 0.02, max(gaps)  # float32 both
    assert _agree(_texts(v_scored), _texts(hf_scored)) >= 0.97  # >= 47 of 48: a near-tie may flip
    n = len(samples)
    assert _agree(_texts(hf_scored[:n]), _texts(hf_scored[n:])) <= 0.8  # the adapter moves the label scores
    lora = VLLMBackend(model_dir, adapter_mode="lora", max_lora_rank=16)
    v_lora = _texts(lora.generate(tuned))
    lora.close()

    print("hf:", hf_base, "\nvllm:", v_base)
    assert _agree(v_base, hf_base) >= 5 / 6  # bf16 engine vs fp32 reference: one near-tie may flip
    assert _agree(v_plain, hf_plain) >= 0.9
    # The adapter really acts, on every path: its answers are labels, the base model's are chatty.
    labels = set(task.labels)
    assert sum(t in labels for t in hf_tuned) >= 0.9 * len(samples)
    assert _agree(hf_tuned, hf_plain) <= 0.5
    assert _agree(v_merged, hf_tuned) >= 0.9 and _agree(v_lora, hf_tuned) >= 0.9


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_openai_backend_against_real_vllm_serve(model_dir, trained_adapter, items, hf):
    from harness.engines.backends.openai import OpenAIBackend

    port = _free_port()
    env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "VLLM_CPU_KVCACHE_SPACE": "1"}
    env.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)  # set by this session's in-process engines
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--enforce-eager",
        "--enable-lora",
        "--max-lora-rank",
        "16",
        "--max-model-len",
        "2048",
    ]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            assert server.poll() is None, server.stderr.read()[-2000:] if server.stderr else "server died"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2)
                break
            except OSError:
                time.sleep(2)
        else:
            pytest.fail("vllm serve did not come up in 300 s")
        task, samples = items
        template = trained_adapter.manifest["template"]
        tuned = build_requests(task, Variant("lora", template, adapter=str(trained_adapter.path)), samples[:8], ())
        backend = OpenAIBackend(model_dir, url=f"http://127.0.0.1:{port}")
        [paris] = backend.generate([Request((Message("user", QUESTIONS[0]),), Decoding(max_tokens=12))])
        assert "Paris" in paris.text and paris.prompt_tokens > 10
        served = backend.generate(tuned)
        assert _agree(_texts(served), _texts(hf.generate(tuned))) >= 0.85
        # as compare sends `harness serve` its prompts: several per call, answers back on their own requests
        batched = OpenAIBackend(model_dir, url=f"http://127.0.0.1:{port}", batch=3).generate(tuned)
        assert [c.prompt_tokens for c in batched] == [c.prompt_tokens for c in served]
        assert _agree(_texts(batched), _texts(served)) >= 0.85
        same = [(b.completion_tokens, a.completion_tokens) for a, b in zip(served, batched, strict=True) if a.text == b.text]
        assert all(x == y > 0 for x, y in same)
        [choice] = backend.generate(
            [
                Request(
                    (Message("user", "Bullish or Bearish? Stocks soar."),),
                    Decoding(max_tokens=5, choices=("Bearish", "Bullish")),
                )
            ]
        )
        assert choice.text in ("Bearish", "Bullish")
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()


def test_openai_backend_refused_connection_is_one_clear_error(model_dir):
    from harness.core.errors import UserError
    from harness.engines.backends import openai as oa

    limits = oa.Limits(retries=1, backoff_s=0.01)
    backend = oa.OpenAIBackend(model_dir, url=f"http://127.0.0.1:{_free_port()}", limits=limits)
    with pytest.raises(UserError, match="failed after 2 tries"):
        backend.generate([Request((Message("user", "hi"),))])
