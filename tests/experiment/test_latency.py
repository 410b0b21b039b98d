"""The latency probe: each request of an arm sent alone and timed (what a user waits), kept in the
run directory and not repeated on a rerun; the report gives p50/p95 next to the batch figure."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from harness.analysis.stats import wait_percentiles as percentiles
from harness.engines.backends.fake import FakeBackend
from harness.experiment.latency import probe
from harness.experiment.variant import Variant
from harness.runlog.folder import LATENCY
from harness.taskkit import data
from harness.taskkit.registry import get_task


class FirstCallSlow(FakeBackend):
    """An engine that starts on its first request (seconds), then answers in 0.01 s; it notes the
    last message of every request it gets."""

    def __init__(self, path: str = "") -> None:
        super().__init__(seconds_per_request=0.01)
        self.path, self.seen = path, []

    def generate(self, requests):
        if not self.calls:
            time.sleep(0.5)
        self.seen += [r.messages[-1].content for r in requests]
        return super().generate(requests)

    def timing_path(self, request):
        return self.path


def test_probe_sends_one_request_at_a_time_and_resumes(fixture_data, tmp_path):
    task = get_task("twitter_fin_sentiment")
    items = data.load_split(task, "train")
    variants = [Variant("zero_shot", "zero_shot"), Variant("constrained", "zero_shot", constrained=True)]
    backend = FakeBackend(seconds_per_request=0.01)
    probe(task, variants, items, (), backend, tmp_path, n=4)
    # concurrency 1: never a batch; each arm's four timed requests follow one untimed request
    assert len(items) > 4 and backend.calls == [1] * (2 * (1 + 4))
    rows = [json.loads(x) for x in (tmp_path / LATENCY).read_text().splitlines()]
    assert {(r["item"], r["variant"]) for r in rows} == {(s.id, v.name) for s in items[:4] for v in variants}
    assert all(r["latency_s"] >= 0.01 for r in rows)  # the wall time of the call, sleep included
    probe(task, variants, items, (), backend, tmp_path, n=4)
    assert len(backend.calls) == 2 * (1 + 4)  # a rerun probes nothing again
    probe(task, variants, items, (), FakeBackend(), tmp_path / "none", n=0)
    assert not (tmp_path / "none" / LATENCY).exists()


def test_the_first_timed_request_is_not_the_engines_first(fixture_data, tmp_path):
    """An engine's first request carries its start-up: the probe sends one of an item it does not
    time first (not a timed one: its prompt would then be in the prefix cache), so no timed request
    pays for it; a test set with nothing left over borrows a training item."""
    task = get_task("twitter_fin_sentiment")
    train, validation = data.load_split(task, "train"), data.load_split(task, "validation")
    for items, pool, n, spare in ((train, (), 3, train[3]), (validation, train[:2], len(validation), None)):
        backend = FirstCallSlow()
        out = tmp_path / f"{len(items)}-{n}"
        probe(task, [Variant("zero_shot", "zero_shot")], items, pool, backend, out, n=n)
        rows = [json.loads(x) for x in (out / LATENCY).read_text().splitlines()]
        assert len(rows) == n and max(r["latency_s"] for r in rows) < 0.4
        first = (spare or pool[0]).fields["text"]
        assert first in backend.seen[0] and all(first not in seen for seen in backend.seen[1:])
        assert all(s.fields["text"] not in backend.seen[0] for s in items[:n])


def test_a_new_run_reuses_the_times_this_machine_measured_for_the_same_requests(fixture_data, tmp_path):
    """A template edit makes a new run directory; its unchanged arms' requests were timed before on
    this machine, so their probe needs no engine. Another machine, another adapter or another
    request is timed afresh."""
    from harness.engines.response_cache import CachedBackend, LatencyCache, ResponseCache

    task = get_task("twitter_fin_sentiment")
    items = data.load_split(task, "train")
    n = 3
    arms = [Variant("zero_shot", "zero_shot"), Variant("lora", "zero_shot", adapter="a1")]

    def run(name: str, machine: str, adapter_hash: str = "h1") -> tuple[FakeBackend, list[dict]]:
        raw = FakeBackend(seconds_per_request=0.01)
        cached = CachedBackend(raw, ResponseCache(tmp_path / "cache.sqlite"), "m", {None: "base", "a1": adapter_hash})
        probe(task, arms, items, (), raw, tmp_path / name, n=n, known=LatencyCache(cached, machine))
        cached.cache.close()
        return raw, [json.loads(x) for x in (tmp_path / name / LATENCY).read_text().splitlines()]

    raw, first = run("r1", "cpu-A")
    assert len(raw.calls) == 2 * (1 + n) and not any(r.get("cached") for r in first)
    raw, again = run("r2", "cpu-A")
    assert raw.calls == []  # every time known: no request reached the engine
    assert [r["latency_s"] for r in again] == [r["latency_s"] for r in first] and all(r["cached"] for r in again)
    raw, _ = run("r3", "cpu-B")
    assert len(raw.calls) == 2 * (1 + n)  # another machine's times say nothing about this one
    raw, _ = run("r4", "cpu-A", adapter_hash="h2")
    assert len(raw.calls) == 1 + n  # a retrained adapter is timed again (after its untimed first request)


def test_a_time_measured_another_way_is_not_reused(fixture_data, tmp_path):
    """Through `harness serve` (an HTTP round trip) or by an engine in this process, eager or
    compiled: the same request on the same machine waits differently, so a time is reused only
    where the backend would measure it the same way."""
    from harness.engines.response_cache import CachedBackend, LatencyCache, ResponseCache

    task = get_task("twitter_fin_sentiment")
    items = data.load_split(task, "train")
    cache = ResponseCache(tmp_path / "cache.sqlite")

    def timed(name: str, path: str) -> int:
        raw = FirstCallSlow(path)
        known = LatencyCache(CachedBackend(raw, cache, "m", {None: "base"}), "cpu-A")
        probe(task, [Variant("zero_shot", "zero_shot")], items, (), raw, tmp_path / name, n=3, known=known)
        return len(raw.calls)

    assert timed("r1", "harness serve") == 1 + 3
    assert timed("r2", "in-process/eager") == 1 + 3
    assert timed("r3", "harness serve") == 0 and timed("r4", "in-process/eager") == 0
    assert timed("r5", "in-process/compiled") == 1 + 3


def test_percentiles_per_arm():
    waits = [0.1, 0.2, 0.3, 0.4, 1.0]
    records = [{"variant": "a", "latency_s": w} for w in waits] + [{"variant": "b", "latency_s": 0.5}]
    got = percentiles(records)
    assert got["a"] == (pytest.approx(0.3), pytest.approx(float(np.percentile(waits, 95))), 5)
    assert got["b"] == (0.5, 0.5, 1)


def test_latency_probe_option_is_checked(capsys, monkeypatch, fixture_data):
    from tests.helpers import run_cli

    code, _, err = run_cli(["compare", "twitter_fin_sentiment", "--latency-probe", "-1", "--dry-run"], capsys, monkeypatch)
    assert code == 2 and "--latency-probe must be from 0 to 1000, got -1" in err
