"""`harness serve`: which running server a backend may use, and that base-model requests go to it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from harness.core.types import Completion, Decoding, Message, Request
from harness.engines.backends import serve
from tests.engines.test_openai_batch import echo_server
from tests.engines.test_openai_limits import MODELS, scripted_server
from tests.tiny_model import make_model_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("tiny") / "m")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(serve.DISABLE_ENV, raising=False)
    (tmp_path / "cache").mkdir()


def _announce(url: str, model_dir, pid: int | None = None, **changes) -> None:
    state = {"url": url, "pid": os.getpid() if pid is None else pid, "model_dir": str(model_dir.resolve()),
             "dtype": "float32", "max_model_len": 4096, "seed": 0, **changes}  # fmt: skip
    serve.state_path().write_text(json.dumps(state))


def test_the_server_runs_with_the_backends_engine_settings(model_dir):
    cmd = serve.server_command(model_dir, "127.0.0.1", 8765, "float32", 4096, 0, eager=True, block_size=32,
                               budget={"max_num_batched_tokens": 2048, "max_num_seqs": 128},
                               kv_bytes=2 << 30)  # fmt: skip
    joined = " ".join(cmd)
    parts = (
        "--dtype float32",
        "--max-model-len 4096",
        "--seed 0",
        "--port 8765",
        "--enable-prefix-caching",
        "--block-size 32",
        "--max-num-batched-tokens 2048",
        "--max-num-seqs 128",
        f"--kv-cache-memory-bytes {2 << 30}",
    )
    for part in parts:
        assert part in joined
    assert cmd[-1] == "--enforce-eager"
    gpu = serve.server_command(model_dir, "127.0.0.1", 1, "bfloat16", 2048, 3, eager=False)
    assert "--enforce-eager" not in gpu and "--block-size" not in gpu  # vLLM's own block size on CUDA
    assert "--kv-cache-memory-bytes" not in gpu  # on CUDA vLLM sizes it from the GPU's free memory


def test_only_a_live_answering_server_with_the_same_settings_is_used(model_dir):
    assert serve.running(model_dir, "float32", 4096, 0) is None  # no state file
    serve.state_path().write_text("{not json")
    assert serve.running(model_dir, "float32", 4096, 0) is None
    with scripted_server([(200, MODELS)]) as (url, seen):
        _announce(url, model_dir)
        found = serve.running(model_dir, "float32", 4096, 0)
        assert found is not None and found.url == url and seen == ["/v1/models"]
        for dtype, length, seed in (("bfloat16", 4096, 0), ("float32", 2048, 0), ("float32", 4096, 1)):
            assert serve.running(model_dir, dtype, length, seed) is None
        assert serve.running(model_dir.parent, "float32", 4096, 0) is None  # another model
        os.environ[serve.DISABLE_ENV] = "1"
        try:
            assert serve.running(model_dir, "float32", 4096, 0) is None
        finally:
            del os.environ[serve.DISABLE_ENV]
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        _announce(url, model_dir, pid=gone.pid)  # the process that wrote it has exited
        assert serve.running(model_dir, "float32", 4096, 0) is None
    _announce(url, model_dir)  # alive, but the port no longer answers
    assert serve.running(model_dir, "float32", 4096, 0) is None


def test_base_model_requests_go_to_the_running_server_without_an_engine(model_dir):
    from harness.engines.backends.vllm import SERVED_BATCH, VLLMBackend

    n = SERVED_BATCH + 3
    with echo_server() as (url, bodies):
        backend = VLLMBackend(model_dir, dtype="float32")
        _announce(url, model_dir)
        requests = [Request((Message("user", "up " * (i + 1)),), Decoding(max_tokens=2)) for i in range(n)]
        outs = backend.generate(requests)
        backend.close()
    assert backend.engine_starts == 0 and backend.served_url == url
    # batched: two calls, not one per request, and every answer on its own request
    assert sorted(len(b["prompt"]) for b in bodies) == [3, SERVED_BATCH]
    lengths = [c.prompt_tokens for c in outs]
    assert lengths == sorted(lengths) and len(set(lengths)) == n
    assert all(c.text == f"len {c.prompt_tokens} max 2" for c in outs)


def test_no_server_means_the_backend_keeps_its_own_engine(model_dir):
    from harness.engines.backends.vllm import VLLMBackend

    backend = VLLMBackend(model_dir, dtype="float32")
    assert backend._server() is None and backend.served_url is None


def test_the_cpu_engine_and_the_server_share_prefixes_in_blocks_of_32_and_one_step_budget(model_dir, monkeypatch):
    """vLLM's CPU default of 128-token blocks recomputes up to 127 tokens of every shared prefix;
    compare's own engine and `harness serve` both ask for 32. vLLM's step budget on CPU differs by
    entry point (4096 tokens in-process, 2048 for its server): both ask for the faster 2048."""
    import types

    from harness.engines.backends import engine_settings
    from harness.engines.backends import vllm as backend_mod

    made: list[dict] = []

    class LLM:
        def __init__(self, **kwargs):
            made.append(kwargs)

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM))
    monkeypatch.setattr(backend_mod, "configure_cpu_env", lambda: None)
    monkeypatch.setattr(engine_settings, "configure_cpu_env", lambda: None)
    for name in ("VLLM_ENABLE_V1_MULTIPROCESSING", "VLLM_LOGGING_LEVEL"):  # set by the backend: put back after
        monkeypatch.setenv(name, os.environ.get(name, ""))
    backend = backend_mod.VLLMBackend(model_dir)
    backend._get_engine(model_dir, False, 10)
    backend._engine = None  # nothing real to shut down
    assert made[0]["block_size"] == engine_settings.CPU_KV_BLOCK == 32 and made[0]["enable_prefix_caching"]
    assert made[0]["dtype"] == "float32"
    assert made[0]["max_num_batched_tokens"] == 2048 and made[0]["max_num_seqs"] == 128
    assert made[0]["kv_cache_memory_bytes"] == 2 << 30  # sized from the model's config: the floor for a small one
    started: list[dict] = []

    def popen(cmd, **kw):
        started.append(kw["env"])
        raise RuntimeError(" ".join(cmd))

    monkeypatch.setattr(serve.subprocess, "Popen", popen)
    monkeypatch.setattr(serve, "tcmalloc", lambda: "libtcmalloc_minimal.so.4")
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    said = f"--block-size 32 --max-num-batched-tokens 2048 --max-num-seqs 128 --kv-cache-memory-bytes {2 << 30}"
    with pytest.raises(RuntimeError, match=said):
        serve.serve(model_dir, "127.0.0.1", 8765, "float32", 4096, 0, model_dir.parent / "serve.log")
    assert started[0]["LD_PRELOAD"] == "libtcmalloc_minimal.so.4" and "VLLM_ENABLE_V1_MULTIPROCESSING" not in started[0]
    monkeypatch.setenv("HARNESS_NO_TCMALLOC", "1")  # the user's opt-out holds for the server too
    with pytest.raises(RuntimeError, match=said):
        serve.serve(model_dir, "127.0.0.1", 8765, "float32", 4096, 0, model_dir.parent / "serve.log")
    assert "LD_PRELOAD" not in started[1]


def test_the_server_gets_tcmalloc_unless_an_allocator_is_preloaded_already():
    tcm = "libtcmalloc_minimal.so.4"
    assert serve.server_env({"PATH": "/bin", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}, tcm) == {
        "PATH": "/bin", "LD_PRELOAD": tcm, "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": str(1 << 50),
    }  # fmt: skip
    assert serve.server_env({"LD_PRELOAD": "libfoo.so"}, tcm)["LD_PRELOAD"] == f"{tcm} libfoo.so"
    assert serve.server_env({"LD_PRELOAD": "/opt/libjemalloc.so.2"}, tcm)["LD_PRELOAD"] == "/opt/libjemalloc.so.2"
    assert "LD_PRELOAD" not in serve.server_env({"PATH": "/bin"}, None)  # a machine without it


def test_the_probe_knows_how_a_request_would_be_timed(model_dir, monkeypatch):
    """The latency probe reuses a time only where the backend would measure it the same way: through
    `harness serve`, or by an engine in this process, eager or compiled. Which engine answers is the
    one up for the request (a compiled engine started for a long evaluation), else the eager one a
    single request starts on CPU; an adapter's request never goes to the server."""
    import types

    from harness.engines.backends import vllm as backend_mod

    class LLM:
        def __init__(self, **kwargs):
            self.eager = kwargs["enforce_eager"]

        def generate(self, prompts, params, **_):
            out = types.SimpleNamespace(text="Bullish", token_ids=[1], finish_reason="stop")
            return [types.SimpleNamespace(prompt_token_ids=p["prompt_token_ids"], outputs=[out]) for p in prompts]

    fake = types.SimpleNamespace(LLM=LLM, SamplingParams=lambda **kw: kw)
    monkeypatch.setitem(sys.modules, "vllm", fake)
    monkeypatch.setitem(sys.modules, "vllm.lora.request", types.SimpleNamespace(LoRARequest=None))
    monkeypatch.setattr(backend_mod, "configure_cpu_env", lambda: None)
    monkeypatch.setattr(backend_mod, "cuda_available", lambda: False)
    monkeypatch.setattr(backend_mod, "EAGER_BELOW", 3)  # an evaluation of 3 requests compiles
    for name in ("VLLM_ENABLE_V1_MULTIPROCESSING", "VLLM_LOGGING_LEVEL"):
        monkeypatch.setenv(name, os.environ.get(name, ""))
    base = Request((Message("user", "up"),), Decoding(max_tokens=2))
    tuned = Request((Message("user", "up"),), Decoding(max_tokens=2), adapter="some/adapter")
    backend = backend_mod.VLLMBackend(model_dir, dtype="float32")
    backend._served = False  # no `harness serve`
    assert backend.timing_path(base) == backend.timing_path(tuned) == "in-process/eager"
    backend.generate([base] * 3)
    assert backend._engine.eager is False and backend.timing_path(base) == "in-process/compiled"
    assert backend.timing_path(tuned) == "in-process/eager"  # its merged engine is not up
    backend.generate([base])
    assert backend.timing_path(base) == "in-process/compiled"  # the engine up answered, as timed
    backend.close()
    assert backend.timing_path(base) == "in-process/eager"
    assert backend_mod.VLLMBackend(model_dir, eager=False).timing_path(base) == "in-process/compiled"
    with echo_server() as (url, _):
        _announce(url, model_dir)
        served = backend_mod.VLLMBackend(model_dir, dtype="float32")
        assert served.timing_path(base) == "harness serve" and served.timing_path(tuned) == "in-process/eager"
        served.close()


def test_each_prompt_is_encoded_once_by_whichever_engine_answers_it(model_dir, monkeypatch):
    """Sent to `harness serve`, a prompt is encoded by the client that sends it (the server's context
    check), not also by the backend for an engine it never starts: 816 encodes for 408 prompts before."""
    import types

    from harness.engines.backends import vllm as backend_mod

    encoded: list[int] = []
    real = backend_mod.encode_chat
    monkeypatch.setattr(backend_mod, "encode_chat", lambda tok, messages: encoded.append(1) or real(tok, messages))

    class Remote:
        def generate(self, requests):
            return [Completion("Bullish", 3, 1, "stop", 0.1) for _ in requests]

    class LLM:
        def __init__(self, **kwargs):
            pass

        def generate(self, prompts, params, **_):
            out = types.SimpleNamespace(text="Bullish", token_ids=[1], finish_reason="stop")
            return [types.SimpleNamespace(prompt_token_ids=p["prompt_token_ids"], outputs=[out]) for p in prompts]

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=lambda **kw: kw))
    monkeypatch.setitem(sys.modules, "vllm.lora.request", types.SimpleNamespace(LoRARequest=None))
    monkeypatch.setattr(backend_mod, "configure_cpu_env", lambda: None)
    for name in ("VLLM_ENABLE_V1_MULTIPROCESSING", "VLLM_LOGGING_LEVEL"):
        monkeypatch.setenv(name, os.environ.get(name, ""))
    requests = [Request((Message("user", f"tweet {i}"),), Decoding(max_tokens=2)) for i in range(5)]
    backend = backend_mod.VLLMBackend(model_dir, dtype="float32")
    backend._served = Remote()
    assert [c.text for c in backend.generate(requests)] == ["Bullish"] * 5 and encoded == []
    backend._served = False  # no server: this process's engine, which needs the ids
    assert [c.prompt_tokens for c in backend.generate(requests)] == [
        len(real(backend.tokenizer, r.messages)) for r in requests
    ]
    assert len(encoded) == 5
    backend._engine = None
