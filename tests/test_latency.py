"""The latency probe: each request of an arm sent alone and timed (what a user waits), kept in the
run directory and not repeated on a rerun; the report gives p50/p95 next to the batch figure."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness import data
from harness.backends.fake import FakeBackend
from harness.latency import LATENCY, percentiles, probe
from harness.run import Variant
from harness.tasks import get_task


def test_probe_sends_one_request_at_a_time_and_resumes(fixture_data, tmp_path):
    task = get_task("twitter_fin_sentiment")
    items = data.load_split(task, "validation")
    variants = [Variant("zero_shot", "zero_shot"), Variant("constrained", "zero_shot", constrained=True)]
    backend = FakeBackend(seconds_per_request=0.01)
    probe(task, variants, items, (), backend, tmp_path, n=5)
    assert backend.calls == [1] * (2 * len(items[:5]))  # concurrency 1: never a batch
    rows = [json.loads(x) for x in (tmp_path / LATENCY).read_text().splitlines()]
    assert {(r["item"], r["variant"]) for r in rows} == {(s.id, v.name) for s in items[:5] for v in variants}
    assert all(r["latency_s"] >= 0.01 for r in rows)  # the wall time of the call, sleep included
    probe(task, variants, items, (), backend, tmp_path, n=5)
    assert len(backend.calls) == 2 * len(items[:5])  # a rerun probes nothing again
    probe(task, variants, items, (), FakeBackend(), tmp_path / "none", n=0)
    assert not (tmp_path / "none" / LATENCY).exists()


def test_a_new_run_reuses_the_times_this_machine_measured_for_the_same_requests(fixture_data, tmp_path):
    """A template edit makes a new run directory; its unchanged arms' requests were timed before on
    this machine, so their probe needs no engine. Another machine, another adapter or another
    request is timed afresh."""
    from harness.cache import CachedBackend, LatencyCache, ResponseCache

    task = get_task("twitter_fin_sentiment")
    items = data.load_split(task, "validation")
    n = len(items)
    arms = [Variant("zero_shot", "zero_shot"), Variant("lora", "zero_shot", adapter="a1")]

    def run(name: str, machine: str, adapter_hash: str = "h1") -> tuple[FakeBackend, list[dict]]:
        raw = FakeBackend(seconds_per_request=0.01)
        cached = CachedBackend(raw, ResponseCache(tmp_path / "cache.sqlite"), "m", {None: "base", "a1": adapter_hash})
        probe(task, arms, items, (), raw, tmp_path / name, n=n, known=LatencyCache(cached, machine))
        cached.cache.close()
        return raw, [json.loads(x) for x in (tmp_path / name / LATENCY).read_text().splitlines()]

    raw, first = run("r1", "cpu-A")
    assert n >= 2 and len(raw.calls) == 2 * n and not any(r.get("cached") for r in first)
    raw, again = run("r2", "cpu-A")
    assert raw.calls == []  # every time known: no request reached the engine
    assert [r["latency_s"] for r in again] == [r["latency_s"] for r in first] and all(r["cached"] for r in again)
    raw, _ = run("r3", "cpu-B")
    assert len(raw.calls) == 2 * n  # another machine's times say nothing about this one
    raw, _ = run("r4", "cpu-A", adapter_hash="h2")
    assert len(raw.calls) == n  # a retrained adapter is timed again; the base model's arm is known


def test_percentiles_per_arm():
    waits = [0.1, 0.2, 0.3, 0.4, 1.0]
    records = [{"variant": "a", "latency_s": w} for w in waits] + [{"variant": "b", "latency_s": 0.5}]
    got = percentiles(records)
    assert got["a"] == (pytest.approx(0.3), pytest.approx(float(np.percentile(waits, 95))), 5)
    assert got["b"] == (0.5, 0.5, 1)


def test_latency_probe_option_is_checked(capsys, monkeypatch, fixture_data):
    from tests.test_bad_input import run_cli

    code, _, err = run_cli(["compare", "twitter_fin_sentiment", "--latency-probe", "-1", "--dry-run"], capsys, monkeypatch)
    assert code == 2 and "--latency-probe must be from 0 to 1000, got -1" in err
