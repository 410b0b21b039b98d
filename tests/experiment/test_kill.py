"""Kill a real `harness compare` (fake backend) at several points, rerun, and get exactly the
numbers of an uninterrupted run, with no duplicate (item, variant) record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.tiny_model import make_model_dir

WORDS = ["rises", "falls", "holds", "soars", "slips", "steady"]
LABEL = {
    "rises": "Bullish",
    "soars": "Bullish",
    "falls": "Bearish",
    "slips": "Bearish",
    "holds": "Neutral",
    "steady": "Neutral",
}


def _rows(prefix: str, n: int) -> str:
    # Synthetic rows made here, by rule: never rows of the real dataset.
    return "".join(
        json.dumps(
            {"id": f"{prefix}{i}", "text": f"${prefix.upper()}{i} stock {WORDS[i % 6]} today", "label": LABEL[WORDS[i % 6]]}
        )
        + "\n"
        for i in range(n)
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    data = root / "data" / "twitter_fin_sentiment"
    data.mkdir(parents=True)
    (data / "train.jsonl").write_text(_rows("tr", 30))
    (data / "validation.jsonl").write_text(_rows("va", 40))
    model = make_model_dir(root / "tiny")
    plan = root / "plan.toml"
    plan.write_text(f"""name = "kill"
model = "{model}"
limit = 40
latency_probe = 0  # wall times of single requests differ run to run; tests/test_latency.py covers the probe
[[task]]
name = "twitter_fin_sentiment"
variants = [{{name = "zero_shot", template = "zero_shot"}},
            {{name = "few_shot_2", template = "few_shot", shots = 2, selection = "balanced"}},
            {{name = "constrained", template = "zero_shot", constrained = true}}]
""")
    env = {**os.environ, "HARNESS_DATA_DIR": str(root / "data"), "HARNESS_CACHE": str(root / "cache")}
    env.pop("HARNESS_FAULT", None)
    return root, plan, env


def compare(setup, run_id, fault=None, extra=()):
    root, plan, env = setup
    if fault:
        env = {**env, "HARNESS_FAULT": fault}
    cmd = [
        sys.executable,
        "-c",
        "from harness.cli import main; main()",
        "compare",
        "--plan",
        str(plan),
        "--backend",
        "fake",
        "--batch-size",
        "8",
        "--results",
        str(root / "results"),
        "--run-id",
        run_id,
        "--no-cache",
        *extra,
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def load(run: Path):
    lines = (run / "samples.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]
    keys = Counter((r["item"], r["variant"]) for r in records)
    assert max(keys.values()) == 1, "duplicate (item, variant) records"
    stable = {
        k: {f: r[f] for f in ("output", "prediction", "gold", "scores", "prompt_tokens", "messages")}
        for k, r in zip(keys, records, strict=True)
    }
    return stable, json.loads((run / "metrics.json").read_text())


@pytest.fixture(scope="module")
def reference(setup):
    done = compare(setup, "ref")
    assert done.returncode == 0, done.stderr[-2000:]
    return load(setup[0] / "results" / "ref")


@pytest.mark.parametrize("fault", ["after-batch:2", "before-append:6", "after-batch:5", "before-report", "mid-report"])
def test_killed_run_resumes_to_identical_results(setup, reference, fault):
    run_id = "k-" + fault.replace(":", "-")
    killed = compare(setup, run_id, fault)
    assert killed.returncode == -9, killed.stderr[-2000:]
    run = setup[0] / "results" / run_id
    if fault == "mid-report":
        assert (run / "metrics.json").is_file() and not (run / "report.html").exists()
    else:
        assert not (run / "metrics.json").exists()  # nothing pretends to be final
    assert not list(run.glob(".*-*"))  # no temporary file left half-written under a final name
    resumed = compare(setup, run_id)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    samples, metrics = load(run)
    ref_samples, ref_metrics = reference
    assert samples == ref_samples
    assert metrics == ref_metrics
    assert (run / "report.html").is_file() and (run / "report.md").is_file()


def test_same_plan_same_seeds_identical_metrics(setup, reference):
    """A second run from scratch, asked for JSON: stdout is one JSON document, the run's metrics."""
    again = compare(setup, "again", extra=("--format", "json"))
    assert again.returncode == 0, again.stderr[-2000:]
    assert load(setup[0] / "results" / "again") == reference
    printed = json.loads(again.stdout)
    assert printed["run"] == str(setup[0] / "results" / "again")
    assert printed["tasks"] == reference[1]  # json.loads took all of stdout: no table beside it
