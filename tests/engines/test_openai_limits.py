"""The openai backend's remote calls are bounded: tiny servers on 127.0.0.1 that hang, answer
garbage or fail before answering. No model needed (the tokenizer is the tiny test one)."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from harness.core.errors import UserError
from harness.core.types import Decoding, Message, Request
from harness.engines.backends import openai as oa
from tests.tiny_model import make_model_dir


@contextmanager
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers (a wedged server)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                held.append(conn)
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        t.join()
        for c in held:
            c.close()
        sock.close()


@contextmanager
def scripted_server(answers: list[tuple[int, bytes]], delay_s: float = 0.0) -> Iterator[tuple[str, list[str]]]:
    """Answers each request with the next (status, body), after delay_s; the last one repeats."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            seen.append(self.path)
            time.sleep(delay_s)
            status, body = answers[min(len(seen) - 1, len(answers) - 1)]
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield url, seen


@contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threaded HTTP server on a free local port with this handler; its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


COMPLETION = json.dumps(
    {"choices": [{"text": "Bullish", "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": 1}}
).encode()
MODELS = json.dumps({"data": [{"id": "served"}]}).encode()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("tiny") / "m")


def _request() -> Request:
    return Request((Message("user", "What is the sentiment of up"),), Decoding(max_tokens=2))


def test_a_hanging_server_fails_within_the_configured_timeout(model_dir):
    limits = oa.Limits(connect_timeout_s=1.0, read_timeout_s=1.0, retries=3, backoff_s=0.05)
    with silent_server() as url:
        backend = oa.OpenAIBackend(model_dir, url=url, served_model="served", limits=limits)
        start = time.perf_counter()
        with pytest.raises(UserError, match=r"failed after 2 tries \(no answer within 1 s\)"):
            backend.generate([_request()])
        elapsed = time.perf_counter() - start
        backend.close()
    assert 2.0 <= elapsed < 5.0, elapsed  # two silent reads of 1 s end it, not all four tries


def test_the_probe_refuses_an_unreachable_or_silent_server_before_any_work():
    from harness.engines.backends.factory import check_backend

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UserError, match="failed after 1 tries"):
        check_backend("openai", {"url": f"http://127.0.0.1:{port}"})
    with silent_server() as url:
        start = time.perf_counter()
        with pytest.raises(UserError, match="no answer within 1 s"):
            check_backend("openai", {"url": url, "read_timeout_s": 1.0})
        assert time.perf_counter() - start < 3.0


def test_retries_on_503_then_succeeds_and_invalid_answers_are_one_line(model_dir):
    limits = oa.Limits(retries=2, backoff_s=0.01)
    with scripted_server([(503, b"busy"), (200, COMPLETION)]) as (url, seen):
        backend = oa.OpenAIBackend(model_dir, url=url, served_model="served", limits=limits)
        [out] = backend.generate([_request()])
        backend.close()
    assert out.text == "Bullish" and out.prompt_tokens == 5 and seen == ["/v1/completions"] * 2
    for body, message in [
        (b"<html>oops</html>", "something that is not JSON"),
        (b"[1, 2]", "JSON that is not an object"),
        (b'{"choices": []}', "answered without a completion"),
    ]:
        with scripted_server([(200, body)]) as (url, _):
            backend = oa.OpenAIBackend(model_dir, url=url, served_model="served", limits=limits)
            with pytest.raises(UserError, match=message):
                backend.generate([_request()])
            backend.close()
    with scripted_server([(503, b"busy")]) as (url, seen):
        backend = oa.OpenAIBackend(model_dir, url=url, served_model="served", limits=limits)
        with pytest.raises(UserError, match=r"failed after 3 tries \(HTTP 503\)"):
            backend.generate([_request()])
        backend.close()
    assert len(seen) == 3
    with scripted_server([(404, b"no such model")]) as (url, seen):
        backend = oa.OpenAIBackend(model_dir, url=url, served_model="served", limits=limits)
        with pytest.raises(UserError, match="HTTP 404 no such model"):
            backend.generate([_request()])
        backend.close()
    assert len(seen) == 1  # a client error is not retried


@pytest.mark.parametrize(
    "options, message",
    [
        ({"read_timeout_s": 0}, "read timeout must be between 0 and 86400"),
        ({"connect_timeout_s": float("inf")}, "connect timeout must be between"),
        ({"retries": -1}, "retries must be from 0 to 20"),
    ],
)
def test_limits_are_checked(options, message):
    with pytest.raises(UserError, match=message):
        oa.limits_from(options)


def test_latency_is_the_batch_time_per_request_as_vllm_measures_it(model_dir):
    """8 requests answered in 1.5 s each by 8 concurrent workers: the server spent ~1.5 s on the
    batch, so each request's share is ~0.19 s, not the 1.5 s each one waited. (With 0.3 s, a loaded
    CI core's thread and connection start-up, ~1 s, made the share look like half the wait.)"""
    delay = 1.5
    with scripted_server([(200, COMPLETION)], delay_s=delay) as (url, seen):
        backend = oa.OpenAIBackend(model_dir, url=url, served_model="served", workers=8)
        start = time.perf_counter()
        outs = backend.generate([_request()] * 8)
        wall = time.perf_counter() - start
        backend.close()
    assert len(seen) == 8 and len({c.latency_s for c in outs}) == 1
    assert outs[0].latency_s == pytest.approx(wall / 8, rel=0.05) and outs[0].latency_s < delay / 2


def _says(text: str) -> bytes:
    return json.dumps({"choices": [{"text": text, "finish_reason": "stop"}], "usage": {"completion_tokens": 1}}).encode()


def test_the_response_cache_keeps_each_servers_answers_apart(model_dir, tmp_path):
    """Two servers under one model name (a GPU's bf16 copy and a CPU's float32 one, say) answer the
    same prompt differently: a run against the second asks it rather than handing out the first's
    answers, and the first one asked again is all cache hits."""
    from harness.engines.response_cache import CachedBackend, ResponseCache

    cache = ResponseCache(tmp_path / "responses.sqlite")

    def ask(url: str, model: str = "served") -> tuple[str, int]:
        cached = CachedBackend(oa.OpenAIBackend(model_dir, url=url, served_model=model), cache, "m", {None: "base"})
        [answer] = cached.generate([_request()])
        cached.inner.close()
        return answer.text, cached.misses

    with scripted_server([(200, _says("Bullish"))]) as (gpu, _), scripted_server([(200, _says("Bearish"))]) as (cpu, _):
        assert ask(gpu) == ("Bullish", 1)
        assert ask(cpu) == ("Bearish", 1)
        assert ask(gpu) == ("Bullish", 0)
        assert ask(gpu, model="other") == ("Bullish", 1)  # another model behind the same address
    cache.close()


def test_the_default_read_timeout_scales_with_the_tokens_asked_for():
    limits = oa.Limits()
    assert limits.read_for(16) == oa.READ_BASE_S + 16 * oa.READ_PER_TOKEN_S
    assert limits.read_for(256) > limits.read_for(16)  # a chain of thought may take longer than a label
    assert oa.Limits(read_timeout_s=7.0).read_for(256) == 7.0  # the user's own value is kept as given


def test_a_server_that_lists_models_but_never_completes_is_said_to_be_waited_on(model_dir, monkeypatch, capsys):
    """/v1/models answers, /v1/completions never does: the console says the run waits on the server
    (not a silent hang for minutes), and the call gives up after the scaled timeout, twice."""

    class Stalls(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(MODELS)))
            self.end_headers()
            self.wfile.write(MODELS)

        def do_POST(self) -> None:
            time.sleep(5)

        def log_message(self, *args: object) -> None:
            pass

    monkeypatch.setattr(oa, "READ_BASE_S", 0.8)
    monkeypatch.setattr(oa, "READ_PER_TOKEN_S", 0.1)  # max_tokens 2: 1.0 s a try
    monkeypatch.setattr(oa, "WAIT_NOTICE_S", 0.3)
    oa._said.clear()
    with serving(Stalls) as url:
        backend = oa.OpenAIBackend(model_dir, url=url, limits=oa.Limits(retries=3, backoff_s=0.01))
        start = time.perf_counter()
        with pytest.raises(UserError, match=r"failed after 2 tries \(no answer within 1 s\)"):
            backend.generate([_request()])
        elapsed = time.perf_counter() - start
        backend.close()
    assert elapsed < 4.0, elapsed
    err = capsys.readouterr().err
    assert f"waiting on {url}/v1/completions: no answer after 0.3 s (gives up after 1 s, then tries 3 more times)" in err
    assert err.count("waiting on") == 1  # once a minute, not once a try
