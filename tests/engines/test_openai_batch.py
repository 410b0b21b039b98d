"""Prompts batched per /v1/completions call (the path to a running `harness serve`): each answer
lands on its own request, whatever order the server lists its choices in."""

from __future__ import annotations

import http.server
import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from harness.core.errors import UserError
from harness.core.types import Decoding, Message, Request
from harness.engines.backends import openai as oa
from tests.engines.test_openai_limits import MODELS, serving
from tests.tiny_model import make_model_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("tiny") / "m")


@contextmanager
def echo_server(drop_last: bool = False) -> Iterator[tuple[str, list[dict]]]:
    """Answers each prompt with its length and max_tokens, the choices listed in reverse order, as
    a server finishing its prompts in another order may; drop_last leaves one prompt unanswered."""
    bodies: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _send(self, payload: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._send(MODELS)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            bodies.append(body)
            prompts = body["prompt"] if isinstance(body["prompt"][0], list) else [body["prompt"]]
            choices = [
                {
                    "index": i,
                    "text": f"len {len(p)} max {body['max_tokens']}",
                    "token_ids": [7] * (i + 1),
                    "finish_reason": "stop",
                }
                for i, p in enumerate(prompts)
            ]
            if drop_last:
                choices = choices[:-1]
            usage = {"prompt_tokens": sum(map(len, prompts)), "completion_tokens": 1}
            self._send(json.dumps({"choices": choices[::-1], "usage": usage}).encode())

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield url, bodies


def _requests() -> list[Request]:
    # two decodings interleaved, prompts of different lengths: a mix-up shows in the answers
    return [Request((Message("user", "word " * (i + 1)),), Decoding(max_tokens=2 + i % 2)) for i in range(10)]


def test_batched_prompts_come_back_on_their_own_requests(model_dir):
    requests = _requests()
    with echo_server() as (url, bodies):
        one_each = oa.OpenAIBackend(model_dir, url=url, served_model="served", workers=4)
        alone = one_each.generate(requests)
        one_each.close()
        calls_alone = len(bodies)
        batched = oa.OpenAIBackend(model_dir, url=url, served_model="served", workers=4, batch=4)
        together = batched.generate(requests)
        batched.close()
    assert calls_alone == 10
    # max_tokens 2 (5 requests) -> 4 + 1; max_tokens 3 (5 requests) -> 4 + 1
    sizes = sorted(len(b["prompt"]) if isinstance(b["prompt"][0], list) else 1 for b in bodies[calls_alone:])
    assert sizes == [1, 1, 4, 4]
    assert all(b["return_token_ids"] for b in bodies[calls_alone:] if isinstance(b["prompt"][0], list))
    assert [c.text for c in together] == [c.text for c in alone]
    assert len({c.text for c in together}) == 10  # every request its own answer
    assert [c.prompt_tokens for c in together] == [int(c.text.split()[1]) for c in together]
    # the first prompt of each batched call came back with one token, the fourth with four
    assert [c.completion_tokens for c in together][:8:2] == [1, 2, 3, 4]
    assert len({c.latency_s for c in together}) == 1


def test_a_batch_answered_short_is_one_line_not_a_wrong_pairing(model_dir):
    with echo_server(drop_last=True) as (url, _):
        backend = oa.OpenAIBackend(model_dir, url=url, served_model="served", workers=2, batch=4)
        with pytest.raises(UserError, match=r"answered 4 prompts without one completion each"):
            backend.generate(_requests()[:8])
        backend.close()


def test_an_answer_to_a_cut_prompt_is_kept_apart_from_the_whole_prompts(model_dir, tmp_path):
    """With --overflow truncate a prompt over the context is cut to its last tokens: the answer is
    to what was sent, so a run with a longer context (sending it whole) or a shorter one (cutting
    more) must not get it from the cache; prompts that fit are the same request either way."""
    from harness.engines.response_cache import CachedBackend, ResponseCache

    cache = ResponseCache(tmp_path / "responses.sqlite")
    long = Request((Message("user", "up " * 200),), Decoding(max_tokens=2))
    short = Request((Message("user", "up"),), Decoding(max_tokens=2))
    with echo_server() as (url, _):

        def ask(max_len: int, overflow: str = "truncate") -> tuple[list[str], int]:
            inner = oa.OpenAIBackend(model_dir, url=url, served_model="served", max_len=max_len, overflow=overflow)
            cached = CachedBackend(inner, cache, "m", {None: "base"})
            texts = [c.text for c in cached.generate([long, short])]
            inner.close()
            return texts, cached.misses

        whole, _ = ask(4096)
        assert ask(102) == (["len 100 max 2", whole[1]], 1)  # cut to 100 tokens: asked; the short one cached
        assert ask(52) == (["len 50 max 2", whole[1]], 1)
        assert ask(4096, overflow="error") == (whole, 0) and ask(102) == (["len 100 max 2", whole[1]], 0)
    cache.close()
