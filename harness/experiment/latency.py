"""Latency a user waits: a small probe per arm, one request at a time (concurrency 1) through the
same engine the arm was evaluated on, past the response cache (a cached answer takes no time).
The batch figure in the table is device time per request under batching, not this.

Each arm's timed requests follow one untimed request of another item: an engine the probe starts
spends seconds on its first request (3.5 s against 0.2 s after it, measured on 2 CPU cores), which
the first time would count, and a deployed engine holds the arm's shared prefix in its cache.

The probe's records are kept in the run directory (`latency.jsonl`) and a rerun probes only what
is missing, like every other record.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from harness.core.types import Request, Sample
from harness.engines.backends.base import Backend
from harness.engines.response_cache import LatencyCache
from harness.experiment.requests import build_requests
from harness.experiment.variant import Variant
from harness.runlog.folder import LATENCY, SampleWriter, read_samples, unique_records
from harness.runlog.schema import LatencyRecord
from harness.taskkit.registry import Task

DEFAULT_PROBE = 20


def probe(
    task: Task,
    variants: Sequence[Variant],
    items: Sequence[Sample],
    pool: Sequence[Sample],
    backend: Backend,
    run_dir: Path,
    n: int = DEFAULT_PROBE,
    seed: int = 0,
    known: LatencyCache | None = None,
) -> None:
    """Time `n` requests of each variant (its first n items), each sent alone. `known`: times this
    machine measured before for the same requests the same way (the backend's `timing_path`),
    reused (their records say `cached`)."""
    if n <= 0:
        return
    out = run_dir / LATENCY
    done = unique_records(r for r in read_samples(out, LatencyRecord) if r.get("task") == task.name)
    writer = SampleWriter(out)
    try:
        for v in variants:
            todo = [s for s in items[:n] if (s.id, v.name) not in done]
            if not todo:
                continue
            requests = build_requests(task, v, todo, pool, seed)
            # one variant: one adapter, one engine, one way of timing (asked only where earlier times are kept)
            path = timing_path(backend, requests[0]) if known else ""
            before = [known.get(r, path) if known else None for r in requests]
            if None in before and (spare := _spare(items, n, pool)) is not None:
                backend.generate(build_requests(task, v, [spare], pool, seed))  # untimed: engine start, first pass
            for s, request, was in zip(todo, requests, before, strict=True):
                if was is not None:
                    wall, tokens = was
                else:
                    start = time.perf_counter()
                    [completion] = backend.generate([request])
                    wall, tokens = time.perf_counter() - start, completion.completion_tokens
                    if known:
                        known.put(request, wall, tokens, path)
                record = {"task": task.name, "item": s.id, "variant": v.name, "latency_s": wall, "completion_tokens": tokens}
                writer.append([{**record, "cached": True} if was is not None else record])
    finally:
        writer.close()


def timing_path(backend: Backend, request: Request) -> str:
    """How the backend would time this request now, where that can differ (vLLM: through `harness
    serve` or in-process, eager or compiled); a remote server's address is in its cache tag."""
    return backend.timing_path(request)


def _spare(items: Sequence[Sample], n: int, pool: Sequence[Sample]) -> Sample | None:
    """An item the probe does not time, for its untimed first request: a timed item sent before
    would find its own prompt in the engine's prefix cache. None for a test set of at most n items
    without a training pool (its first timed request then includes any start-up)."""
    if len(items) > n:
        return items[n]
    return pool[0] if pool else None
