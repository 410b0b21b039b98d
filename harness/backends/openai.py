"""Any OpenAI-compatible server (`vllm serve --enable-lora` on a cluster is the scale-out path).

Prompts go to /v1/completions as token ids built with the local tokenizer's chat template,
so the server cannot format them differently from the in-process backends. A request's
adapter is a served LoRA name, or a local directory that is loaded at runtime (the server
needs VLLM_ALLOW_RUNTIME_LORA_UPDATING=True for that).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from harness.adapters import adapter_hash
from harness.backends.base import encode_chat, fit_context
from harness.errors import UserError
from harness.types import Completion, Request

RETRIES = (0.5, 1.0, 2.0, 4.0)


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        model_dir: Path,
        url: str = "http://127.0.0.1:8000",
        overflow: str = "error",
        served_model: str | None = None,
        workers: int = 8,
        max_len: int = 4096,
    ):
        from transformers import AutoTokenizer

        self.url, self.overflow, self.workers, self.max_len = url.rstrip("/"), overflow, workers, max_len
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.served_model = served_model
        self._loaded: dict[str, str] = {}
        self._lock = threading.Lock()  # request threads must not load the same adapter twice

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        last = ""
        for delay in (*RETRIES, None):
            req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=600) as resp:
                    raw = resp.read()
                    try:
                        return dict(json.loads(raw))
                    except json.JSONDecodeError:  # some endpoints (load_lora_adapter) answer in plain text
                        return {"text": raw.decode(errors="replace")}
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode(errors="replace")[:300]
                if exc.code < 500:
                    raise UserError(f"server {self.url} refused {path}: HTTP {exc.code} {detail}") from None
                last = f"HTTP {exc.code}"
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                last = str(getattr(exc, "reason", exc))
            if delay is None:
                break
            time.sleep(delay)
        raise UserError(f"cannot reach {self.url}{path} after {len(RETRIES) + 1} tries ({last}); is the server up?")

    def _model_name(self) -> str:
        if self.served_model is None:
            req = urllib.request.Request(self.url + "/v1/models")
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    self.served_model = str(json.loads(resp.read())["data"][0]["id"])
            except (urllib.error.URLError, ConnectionError, KeyError, IndexError) as exc:
                raise UserError(f"cannot list models at {self.url}/v1/models ({exc})") from None
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

    def _one(self, index: int, request: Request) -> Completion:
        d = request.decoding
        ids = fit_context(encode_chat(self.tokenizer, request.messages), d.max_tokens, self.max_len, self.overflow, index)
        body: dict[str, Any] = {
            "model": self._adapter_name(request.adapter) if request.adapter else self._model_name(),
            "prompt": ids, "max_tokens": d.max_tokens, "temperature": d.temperature, "seed": d.seed,
        }  # fmt: skip
        if d.stop:
            body["stop"] = list(d.stop)
        if d.choices:
            body["structured_outputs"] = {"choice": list(d.choices)}
        t0 = time.perf_counter()
        out = self._post("/v1/completions", body)
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return Completion(
            choice["text"],
            int(usage.get("prompt_tokens", len(ids))),
            int(usage.get("completion_tokens", 0)),
            str(choice.get("finish_reason")),
            time.perf_counter() - t0,
        )

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        self._model_name()
        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(self._one, range(len(requests)), requests))

    def close(self) -> None:
        pass
