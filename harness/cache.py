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

from harness.backends.base import Backend
from harness.errors import UserError
from harness.types import Completion, Request


def request_key(backend: str, model_hash: str, adapter_hash: str | None, request: Request) -> str:
    payload = {
        "backend": backend, "model": model_hash, "adapter": adapter_hash,
        "messages": [asdict(m) for m in request.messages], "decoding": asdict(request.decoding),
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
                    found[key] = replace(Completion(**json.loads(value)), cached=True)
                except (json.JSONDecodeError, TypeError):
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


class CachedBackend:
    """Wraps a backend: hits come from the cache, misses go to the model in one batch."""

    def __init__(self, inner: Backend, cache: ResponseCache, model_hash: str, adapter_hash: dict[str | None, str]):
        self.inner, self.cache, self.model_hash, self.adapter_hash = inner, cache, model_hash, adapter_hash
        self.name = inner.name
        # the served dtype and adapter mode where the backend states them: a cache shared by a CPU
        # machine (float32) and a GPU (bf16) must not hand one's answers to the other
        self.tag = str(getattr(inner, "cache_tag", inner.name))
        self.misses = 0

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        keys = [request_key(self.tag, self.model_hash, self.adapter_hash.get(r.adapter), r) for r in requests]
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
