"""Latency a user waits: a small probe per arm, one request at a time (concurrency 1) through the
same engine the arm was evaluated on, past the response cache (a cached answer takes no time).
The batch figure in the table is device time per request under batching, not this.

The probe's records are kept in the run directory (`latency.jsonl`) and a rerun probes only what
is missing, like every other record.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.backends.base import Backend
from harness.cache import LatencyCache
from harness.results import SampleWriter, read_samples, unique_records
from harness.run import Variant, build_requests
from harness.schema import LatencyRecord
from harness.tasks import Task
from harness.types import Sample

LATENCY = "latency.jsonl"
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
    machine measured before for the same requests, reused (their records say `cached`)."""
    if n <= 0:
        return
    path = run_dir / LATENCY
    done = unique_records(r for r in read_samples(path, LatencyRecord) if r.get("task") == task.name)
    writer = SampleWriter(path)
    try:
        for v in variants:
            todo = [s for s in items[:n] if (s.id, v.name) not in done]
            for s, request in zip(todo, build_requests(task, v, todo, pool, seed), strict=True):
                before = known.get(request) if known else None
                if before is not None:
                    wall, tokens = before
                else:
                    start = time.perf_counter()
                    [completion] = backend.generate([request])
                    wall, tokens = time.perf_counter() - start, completion.completion_tokens
                    if known:
                        known.put(request, wall, tokens)
                record = {"task": task.name, "item": s.id, "variant": v.name, "latency_s": wall, "completion_tokens": tokens}
                writer.append([{**record, "cached": True} if before is not None else record])
    finally:
        writer.close()


def load(run: Path) -> list[dict[str, Any]]:
    return list(unique_records(read_samples(run / LATENCY, LatencyRecord)).values())


def percentiles(records: Sequence[Mapping[str, Any]]) -> dict[str, tuple[float, float, int]]:
    """Per arm: (p50, p95, requests) of the probe's wall times."""
    by: dict[str, list[float]] = {}
    for r in records:
        by.setdefault(str(r["variant"]), []).append(float(r["latency_s"]))
    return {v: (float(np.percentile(xs, 50)), float(np.percentile(xs, 95)), len(xs)) for v, xs in by.items()}
