"""SQLite response cache: an unchanged evaluation reruns with zero model calls.

Keyed by backend kind (with its served dtype and adapter mode), model content hash, adapter
content hash, prompt messages and decoding settings. WAL mode and a busy timeout make it safe for several processes at once.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from harness.core.errors import UserError
from harness.core.files import cache_root
from harness.core.types import Completion, Decoding, Request
from harness.engines.backends.base import Backend


def decoding_key(decoding: Decoding) -> dict[str, Any]:
    """The decoding settings that key an answer; "generate" scoring is left out, so answers cached
    before log-likelihood scoring existed are found under the keys they were stored with."""
    out = asdict(decoding)
    if out["scoring"] == "generate":
        del out["scoring"]
    return out


def request_key(backend: str, model_hash: str, adapter_hash: str | None, request: Request) -> str:
    payload = {
        "backend": backend, "model": model_hash, "adapter": adapter_hash,
        "messages": [asdict(m) for m in request.messages], "decoding": decoding_key(request.decoding),
    }  # fmt: skip
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _wal(db: sqlite3.Connection, tries: int = 200) -> None:
    """Switch to WAL. SQLite answers this pragma "database is locked" at once, without waiting out
    the busy timeout, while another process is switching the same new file: wait and retry."""
    for attempt in range(tries):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == tries - 1:
                raise
            time.sleep(0.05)


RESPONSES = "responses.sqlite"  # in the harness cache


class ResponseCache:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        try:
            self.db = sqlite3.connect(path, timeout=60, isolation_level=None)
            _wal(self.db)
            self.db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        except sqlite3.DatabaseError as exc:
            raise UserError(f"response cache {path} is unreadable ({exc}); delete it or pass --no-cache") from None

    def get_many(self, keys: Sequence[str]) -> dict[str, Completion]:
        found: dict[str, Completion] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for key, value in self.db.execute(f"SELECT key, value FROM responses WHERE key IN ({marks})", chunk):
                try:
                    stored = json.loads(value)
                    stored["choice_logprobs"] = tuple(stored.get("choice_logprobs", ()))
                    found[key] = replace(Completion(**stored), cached=True)
                except (ValueError, TypeError, RecursionError):
                    continue  # a corrupt entry is a miss; the fresh answer overwrites it
        return found

    def put_many(self, items: Sequence[tuple[str, Completion]]) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(
                "INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)",
                [(k, json.dumps({**asdict(c), "cached": False})) for k, c in items],
            )

    def close(self) -> None:
        self.db.close()


def default_cache() -> ResponseCache:
    """The machine's response cache (HARNESS_CACHE/responses.sqlite), shared by every command."""
    return ResponseCache(cache_root() / RESPONSES)


class CachedBackend:
    """Wraps a backend: hits come from the cache, misses go to the model in one batch.

    `per_batch` (a machine's fingerprint): answers are keyed by the whole batch they were computed
    in and by the machine, for the noise floor, which asks what batch composition alone changes. The
    same batch on the same machine and engine is the same measurement, so a rerun reuses it; an
    answer computed in any other batch or on another machine is never handed out."""

    def __init__(
        self,
        inner: Backend,
        cache: ResponseCache,
        model_hash: str,
        adapter_hash: dict[str | None, str],
        per_batch: str | None = None,
    ):
        self.inner, self.cache, self.model_hash, self.adapter_hash = inner, cache, model_hash, adapter_hash
        self.name = inner.name
        # the served dtype and adapter mode where the backend states them: a cache shared by a CPU
        # machine (float32) and a GPU (bf16) must not hand one's answers to the other
        self.cache_tag = inner.cache_tag
        self.per_batch = per_batch
        self.misses = 0

    def tag_of(self, request: Request) -> str:
        """The backend's tag, and where the backend cuts this request's prompt to fit its context,
        how many tokens it keeps: the answer is to those, not to the whole prompt."""
        kept = self.inner.context_cut(request)
        return self.cache_tag if kept is None else f"{self.cache_tag}|kept:{kept}"

    def _keys(self, requests: Sequence[Request]) -> list[str]:
        keys = [request_key(self.tag_of(r), self.model_hash, self.adapter_hash.get(r.adapter), r) for r in requests]
        if self.per_batch is None:
            return keys
        batch = hashlib.sha256("".join(keys).encode()).hexdigest()
        tag = f"{self.cache_tag}|batch:{batch}|machine:{self.per_batch}"
        return [request_key(tag, self.model_hash, self.adapter_hash.get(r.adapter), r) for r in requests]

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        keys = self._keys(requests)
        hits = self.cache.get_many(keys)
        todo = [i for i, k in enumerate(keys) if k not in hits]
        if todo:
            fresh = self.inner.generate([requests[i] for i in todo])
            self.cache.put_many([(keys[i], c) for i, c in zip(todo, fresh, strict=True)])
            for i, c in zip(todo, fresh, strict=True):
                hits[keys[i]] = c
            self.misses += len(todo)
        return [hits[k] for k in keys]

    def close(self) -> None:
        self.inner.close()
        self.cache.close()

    # the wrapped backend's accounting, as its own
    @property
    def engine_starts(self) -> int:
        return self.inner.engine_starts

    @property
    def engine_start_s(self) -> float:
        return self.inner.engine_start_s

    @property
    def served_url(self) -> str | None:
        return self.inner.served_url

    def context_cut(self, request: Request) -> int | None:
        return self.inner.context_cut(request)

    def timing_path(self, request: Request) -> str:
        return self.inner.timing_path(request)

    def release_adapter(self) -> None:
        self.inner.release_adapter()


class LatencyCache:
    """The latency probe's single-request wall times, by request (as the response cache keys it)
    and machine. A template edit makes a new run directory whose unchanged arms' answers all come
    from the response cache; without this their probe started each adapter's engine again to time
    the same requests on the same machine (the demo's rerun into a new folder: 3 engine starts,
    2.5 minutes, for figures it already had). Kept in the response cache's database."""

    def __init__(self, cached: CachedBackend, machine: str):
        self.cached, self.machine = cached, machine
        self.db = cached.cache.db
        self.db.execute("CREATE TABLE IF NOT EXISTS latencies (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def _key(self, request: Request, path: str) -> str:
        c = self.cached
        tag = f"{c.tag_of(request)}|{self.machine}|{path}"
        return request_key(tag, c.model_hash, c.adapter_hash.get(request.adapter), request)

    def get(self, request: Request, path: str) -> tuple[float, int] | None:
        """(seconds, completion tokens) measured before for this request on this machine, the same
        way (`path`: the backend's `timing_path`, e.g. through `harness serve` or an eager engine)."""
        row = self.db.execute("SELECT value FROM latencies WHERE key = ?", (self._key(request, path),)).fetchone()
        try:
            value = json.loads(row[0]) if row else None
            return (float(value["latency_s"]), int(value["completion_tokens"])) if value else None
        except (json.JSONDecodeError, TypeError, KeyError, ValueError):
            return None  # a corrupt entry is a miss; the fresh figure overwrites it

    def put(self, request: Request, latency_s: float, completion_tokens: int, path: str) -> None:
        value = json.dumps({"latency_s": latency_s, "completion_tokens": completion_tokens})
        key = self._key(request, path)
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("INSERT OR REPLACE INTO latencies (key, value) VALUES (?, ?)", (key, value))
