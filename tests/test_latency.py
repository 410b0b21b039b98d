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
