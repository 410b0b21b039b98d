"""Any OpenAI-compatible server (`vllm serve --enable-lora` on a cluster is the scale-out path).

Prompts go to /v1/completions as token ids built with the local tokenizer's chat template,
so the server cannot format them differently from the in-process backends. A request's
adapter is a served LoRA name, or a local directory that is loaded at runtime (the server
needs VLLM_ALLOW_RUNTIME_LORA_UPDATING=True for that).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from harness.core.console import warn
from harness.core.errors import UserError
from harness.core.options import RETRIES, TIMEOUT_S
from harness.core.types import Completion, Decoding, Request
from harness.engines.adapters import adapter_hash
from harness.engines.backends.base import BackendBase, fit_context, kept_tokens
from harness.engines.chat import encode_chat
from harness.engines.tokenizer import counting_tokenizer


@dataclass(frozen=True)
class Limits:
    """How long to wait and how often to retry: every remote call is bounded."""

    connect_timeout_s: float = 10.0  # to open a connection
    # between bytes of an answer (a long generation streams nothing until done); None: scaled to the
    # tokens a call asks for (`read_for`), so a server that never answers a short request is given up on
    # in about half a minute, not after a fixed guess sized for the longest one
    read_timeout_s: float | None = None
    retries: int = 3  # further tries after a 429, a 5xx or a dropped connection; a silent server gets one
    backoff_s: float = 1.0  # first wait; doubles each retry, with jitter

    def __post_init__(self) -> None:
        for name in ("connect_timeout_s", "read_timeout_s"):
            value = getattr(self, name)
            if value is not None and not TIMEOUT_S.holds(value):
                raise UserError(f"{name.split('_')[0]} timeout must be {TIMEOUT_S.describe()} seconds, got {value}")
        if not RETRIES.holds(self.retries):
            raise UserError(f"retries must be {RETRIES.describe()}, got {self.retries}")
        if not 0 <= self.backoff_s <= 600:
            raise UserError(f"backoff must be between 0 and 600 seconds, got {self.backoff_s}")

    def read_for(self, tokens: int = 0) -> float:
        """Seconds to wait for an answer that generates up to `tokens` tokens: the user's fixed
        timeout, or READ_BASE_S plus READ_PER_TOKEN_S a token."""
        if self.read_timeout_s is not None:
            return self.read_timeout_s
        return READ_BASE_S + READ_PER_TOKEN_S * tokens

    def timeout(self, read_s: float | None = None) -> httpx.Timeout:
        read = self.read_for() if read_s is None else read_s
        return httpx.Timeout(connect=self.connect_timeout_s, read=read, write=read, pool=self.connect_timeout_s)


# The default read timeout: a generous start-up (a queued request, a prompt to prefill) and then a
# slow server's pace. `harness serve` on 2 CPU cores generates about 50 tokens/s for the 135M model
# across a batch; 4 tokens/s (0.25 s a token) leaves room for a bigger model on a loaded machine.
READ_BASE_S = 30.0
READ_PER_TOKEN_S = 0.25
WAIT_NOTICE_S = 15.0  # a call silent this long is said on the console, once a minute at most


LIMIT_OPTIONS = ("connect_timeout_s", "read_timeout_s", "retries", "backoff_s")


def limits_from(options: dict[str, Any]) -> Limits:
    return Limits(**{k: options[k] for k in LIMIT_OPTIONS if k in options})


RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


_said: dict[str, float] = {}
_said_lock = threading.Lock()


def _say_waiting(url: str, read_s: float, tries: int) -> None:
    """A call that has been silent for WAIT_NOTICE_S: one console line, so a stalled server is not
    mistaken for a hung harness (request threads share it: once a minute per address)."""

    with _said_lock:
        now = time.monotonic()
        if now - _said.get(url, -1e9) < 60:
            return
        _said[url] = now
    more = f", then tries {tries} more time{'s' if tries != 1 else ''}" if tries else ""
    warn(f"waiting on {url}: no answer after {WAIT_NOTICE_S:g} s (gives up after {read_s:g} s{more})")


def call(
    client: httpx.Client,
    method: str,
    url: str,
    limits: Limits,
    body: dict[str, Any] | None = None,
    tokens: int = 0,
) -> dict[str, Any]:
    """One request with bounded waits and retries; every failure is one UserError line. `tokens`:
    what the call asks the server to generate, which sizes the default read timeout."""
    last = ""
    silent = 0
    tries = 0
    read_s = limits.read_for(tokens)
    for attempt in range(limits.retries + 1):
        if attempt:
            time.sleep(limits.backoff_s * 2 ** (attempt - 1) * (0.5 + random.random() / 2))
        tries += 1
        notice = threading.Timer(WAIT_NOTICE_S, _say_waiting, (url, read_s, limits.retries - attempt))
        notice.daemon = True
        notice.start()
        try:
            resp = client.request(method, url, json=body, timeout=limits.timeout(read_s))
        except httpx.TimeoutException as exc:
            last = f"no answer within {read_s:g} s" if isinstance(exc, httpx.ReadTimeout) else (
                f"no connection within {limits.connect_timeout_s:g} s")  # fmt: skip
            silent += isinstance(exc, httpx.ReadTimeout)
            if silent >= 2:  # a wedged server seldom recovers: waiting out every retry would take hours
                break
            continue
        except httpx.TransportError as exc:
            last = str(exc) or type(exc).__name__
            continue
        except httpx.InvalidURL as exc:  # the user's --url: no retry makes it valid
            raise UserError(f"{url} is not a valid URL ({exc})") from None
        finally:
            notice.cancel()
        if resp.status_code in RETRY_STATUS:
            last = f"HTTP {resp.status_code}"
            continue
        if resp.status_code >= 400:
            raise UserError(f"server refused {url}: HTTP {resp.status_code} {resp.text[:300]}")
        try:
            data = resp.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            if "/load_lora_adapter" in url:  # answers in plain text
                return {"text": resp.text}
            raise UserError(f"server answered {url} with something that is not JSON: {resp.text[:120]!r}") from None
        if not isinstance(data, dict):
            raise UserError(f"server answered {url} with JSON that is not an object: {str(data)[:120]}")
        return data
    raise UserError(f"{url} failed after {tries} tries ({last}); is the server up?")


def base_url(url: str) -> str:
    """The server's root: OpenAI clients are given ".../v1", this backend adds /v1/... itself."""
    root = url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


def probe(url: str, options: dict[str, Any]) -> None:
    """Before any model work: the server answers /v1/models (one try, the connect timeout)."""
    limits = limits_from(options)
    quick = Limits(limits.connect_timeout_s, min(limits.read_for(), 30.0), retries=0)
    with httpx.Client(timeout=quick.timeout()) as client:
        call(client, "GET", base_url(url) + "/v1/models", quick)


class OpenAIBackend(BackendBase):
    name = "openai"

    def __init__(
        self,
        model_dir: Path,
        url: str = "http://127.0.0.1:8000",
        overflow: str = "error",
        served_model: str | None = None,
        workers: int = 8,
        max_len: int = 4096,
        limits: Limits | None = None,
        batch: int = 1,
    ):

        # batch > 1: up to that many prompts per /v1/completions call, as vLLM's server accepts (a list
        # of prompts, each choice's `index` naming its prompt). One call per request costs the client a
        # thread and the server an HTTP round trip each, on the cores that generate: 400 few-shot
        # requests through `harness serve` took 32.3-33.9 s one per call, 30.2-30.9 s batched.
        self.batch = batch

        self.url, self.overflow, self.workers, self.max_len = base_url(url), overflow, workers, max_len
        self.limits = limits or Limits()
        self.client = httpx.Client(timeout=self.limits.timeout(), limits=httpx.Limits(max_connections=workers))
        self.tokenizer = counting_tokenizer(model_dir)  # the prompt ids sent, as transformers would make them
        self.served_model = served_model
        self._loaded: dict[str, str] = {}
        self._lock = threading.Lock()  # request threads must not load the same adapter twice

    @property
    def cache_tag(self) -> str:
        """Answers come from whatever this server runs (its dtype, its device, perhaps another copy of
        the model under the same name): the response cache keeps each server's apart, by its address
        and the model it serves. A server moved to another port is asked afresh."""
        return f"openai/{self.url}/{self._model_name()}"

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        prompts = body.get("prompt")
        many = len(prompts) if isinstance(prompts, list) and prompts and isinstance(prompts[0], list) else 1
        return call(self.client, "POST", self.url + path, self.limits, body, int(body.get("max_tokens", 0)) * many)

    def _model_name(self) -> str:
        if self.served_model is None:
            listing = call(self.client, "GET", self.url + "/v1/models", self.limits)
            try:
                self.served_model = str(listing["data"][0]["id"])
            except (KeyError, IndexError, TypeError):
                raise UserError(f"{self.url}/v1/models lists no model") from None
        return self.served_model

    def _adapter_name(self, adapter: str) -> str:
        path = Path(adapter)
        if not path.is_dir():
            return adapter  # already a name the server knows
        with self._lock:
            if adapter not in self._loaded:
                name = f"harness-{adapter_hash(path)}"
                try:
                    self._post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(path.resolve())})
                except UserError as exc:
                    if "already" not in str(exc):
                        raise
                self._loaded[adapter] = name
            return self._loaded[adapter]

    def _body(self, request: Request, prompt: list[int] | list[list[int]]) -> dict[str, Any]:
        d = request.decoding
        body: dict[str, Any] = {
            "model": self._adapter_name(request.adapter) if request.adapter else self._model_name(),
            "prompt": prompt, "max_tokens": d.max_tokens, "temperature": d.temperature, "seed": d.seed,
        }  # fmt: skip
        if d.stop:
            body["stop"] = list(d.stop)
        if d.choices:
            body["structured_outputs"] = {"choice": list(d.choices)}
        return body

    def context_cut(self, request: Request) -> int | None:
        return kept_tokens(self.tokenizer, request, self.max_len, self.overflow)

    def _ids(self, index: int, request: Request) -> list[int]:
        d = request.decoding
        return fit_context(encode_chat(self.tokenizer, request.messages), d.max_tokens, self.max_len, self.overflow, index)

    def _one(self, index: int, request: Request) -> Completion:
        ids = self._ids(index, request)
        t0 = time.perf_counter()
        out = self._post("/v1/completions", self._body(request, ids))
        try:
            choice = out["choices"][0]
            usage = out.get("usage") or {}
            return Completion(
                str(choice["text"]),
                int(usage.get("prompt_tokens", len(ids))),
                int(usage.get("completion_tokens", 0)),
                str(choice.get("finish_reason")),
                time.perf_counter() - t0,
            )
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            raise UserError(f"{self.url}/v1/completions answered without a completion: {str(out)[:120]}") from None

    def _many(self, indices: Sequence[int], requests: Sequence[Request]) -> list[Completion]:
        """Requests with one decoding and one model in a single call; their answers in their order."""
        ids = [self._ids(i, r) for i, r in zip(indices, requests, strict=True)]
        body = {**self._body(requests[0], ids), "return_token_ids": True}  # the usage block sums all prompts
        t0 = time.perf_counter()
        out = self._post("/v1/completions", body)
        wall = time.perf_counter() - t0
        try:
            choices = sorted(out["choices"], key=lambda c: int(c["index"]))
            if [int(c["index"]) for c in choices] != list(range(len(ids))):
                raise ValueError("choices do not answer the prompts one to one")
            return [
                Completion(str(c["text"]), len(p), len(c["token_ids"]), str(c.get("finish_reason")), wall)
                for c, p in zip(choices, ids, strict=True)
            ]
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            raise UserError(
                f"{self.url}/v1/completions answered {len(ids)} prompts without one completion each: {str(out)[:120]}"
            ) from None

    def _call(self, indices: list[int], requests: Sequence[Request]) -> list[Completion]:
        if len(indices) == 1:
            return [self._one(indices[0], requests[indices[0]])]
        return self._many(indices, [requests[i] for i in indices])

    def _calls(self, requests: Sequence[Request]) -> list[list[int]]:
        """Which requests share a call: one each, or up to `batch` with the same decoding and model."""
        if self.batch <= 1:
            return [[i] for i in range(len(requests))]
        groups: dict[tuple[str | None, Decoding], list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.adapter, r.decoding), []).append(i)
        return [idx[k : k + self.batch] for idx in groups.values() for k in range(0, len(idx), self.batch)]

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        """Each request's latency_s is the batch's wall time over its size, as the vLLM backend
        measures it: the server's time per request at this concurrency, what the cost columns
        price. A request's own round trip (queueing behind the other workers) is the latency
        probe's business (harness.experiment.latency), where requests go one at a time."""
        if any(r.decoding.scoring == "loglik" for r in requests):
            raise UserError(
                "log-likelihood scoring needs each label's log-probability after the prompt, which an "
                "OpenAI-compatible server does not return; use --backend vllm or hf for a loglik variant"
            )
        self._model_name()
        calls = self._calls(requests)
        start = time.perf_counter()
        with ThreadPoolExecutor(self.workers) as pool:
            answers = list(pool.map(lambda idx: self._call(idx, requests), calls))
        share = (time.perf_counter() - start) / max(1, len(requests))
        done: dict[int, Completion] = {
            i: c for idx, got in zip(calls, answers, strict=True) for i, c in zip(idx, got, strict=True)
        }
        return [replace(done[i], latency_s=share) for i in range(len(requests))]

    def close(self) -> None:
        self.client.close()
