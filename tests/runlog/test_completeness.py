"""A run that lacks some of its test answers (killed mid-way, or still going) says so in its
report, on the console and in JSON, instead of passing for a finished run on fewer items."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness.engines.backends.fake import FakeBackend
from harness.experiment.runner import evaluate
from harness.experiment.variant import Variant
from harness.runlog.completeness import missing_answers, sentence
from harness.runlog.folder import MANIFEST
from harness.taskkit import data
from harness.taskkit.registry import get_task

TWITTER = "twitter_fin_sentiment"


def _manifest(items: list[str], variants: list[str], adapters: list[str] = ()) -> dict:
    info = {"test_items": items, "variants": [{"name": v} for v in variants], "adapters": {a: {} for a in adapters}}
    return {"tasks": {"t": info}}


def _records(variant: str, items: list[str]) -> list[dict]:
    return [{"task": "t", "variant": variant, "item": i} for i in items]


def test_a_complete_run_lacks_nothing():
    items = ["a", "b", "c"]
    records = _records("zero_shot", items) + _records("lora", items)
    assert missing_answers(_manifest(items, ["zero_shot"], ["lora"]), records) == ()
    assert sentence(()) == ""


def test_each_short_arm_is_named_with_what_it_has():
    items = ["a", "b", "c"]
    records = _records("zero_shot", items) + _records("lora", ["b"]) + _records("lora", ["b"])  # a duplicate counts once
    records += [{"task": "other", "variant": "lora", "item": "a"}]  # another task's answer is not this one's
    records += _records("stray", ["a"])  # an arm the manifest does not list is not expected
    assert missing_answers(_manifest(items, ["zero_shot"], ["lora"]), records) == ("t: lora 1 of 3",)


def test_a_task_without_answers_names_its_arms_and_counts_the_rest():
    many = _manifest(["a"], ["p1", "p2", "p3"], ["l1", "l2", "l3"])
    assert missing_answers(many, []) == ("t: p1 0 of 1, p2 0 of 1, p3 0 of 1, l1 0 of 1 and 2 more arms",)
    five = _manifest(["a"], ["p1", "p2", "p3"], ["l1", "l2"])
    assert missing_answers(five, []) == ("t: p1 0 of 1, p2 0 of 1, p3 0 of 1, l1 0 of 1 and 1 more arm",)
    assert missing_answers({"tasks": {"t": {"variants": [{"name": "p"}]}}}, []) == ()  # no item list: nothing known


def _run(root: Path, answered: int, planned: int | None = None, name: str = "", both: bool = False) -> Path:
    """A fake-backend run of two prompts over the first `planned` test items (all by default), whose
    second prompt (`both`: each prompt) answered only `answered` of them."""
    task = get_task(TWITTER)
    test = data.test_items(task)[:planned]
    run = root / (name or f"run-{answered}")
    run.mkdir(parents=True)
    info = {
        "metrics": list(task.metrics), "labels": list(task.labels), "kind": task.kind, "adapters": {},
        "test_items": [s.id for s in test], "variants": [{"name": "zero_shot"}, {"name": "few_shot"}],
        "test_data_hash": data.samples_hash(test),
    }  # fmt: skip
    manifest = {"run_id": run.name, "backend": "fake", "seed": 0, "prices": {}, "tasks": {TWITTER: info}}
    run.joinpath(MANIFEST).write_text(json.dumps(manifest))
    backend = FakeBackend(lambda request: "Neutral")
    pool = data.shot_pool(task)
    evaluate(task, [Variant("zero_shot", "zero_shot")], test[:answered] if both else test, pool, backend, run)
    evaluate(task, [Variant("few_shot", "few_shot")], test[:answered], pool, backend, run)
    return run


def _report(run: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from harness.cli import main; main()", "report", str(run), *extra]
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


def test_the_report_of_a_cut_run_says_it_is_incomplete(fixture_data, tmp_path):
    n = len(data.test_items(get_task(TWITTER)))
    assert n >= 2
    run = _run(tmp_path, answered=1)
    done = _report(run)
    assert done.returncode == 0, done.stderr[-2000:]
    said = f"Incomplete run: some arms lack test answers ({TWITTER}: few_shot 1 of {n})."
    assert f"warning: run {run.name}: {said}" in done.stderr
    assert f"**{said}" in (run / "report.md").read_text() and said in (run / "report.html").read_text()
    shown = json.loads(_report(run, "--format", "json").stdout)
    assert shown["missing"] == {run.name: [f"{TWITTER}: few_shot 1 of {n}"]}

    whole = _run(tmp_path, answered=n)
    done = _report(whole)
    assert done.returncode == 0 and "Incomplete" not in done.stderr + (whole / "report.md").read_text()
    assert json.loads(_report(whole, "--format", "json").stdout)["missing"] == {}


def test_an_incomplete_run_merges_with_a_finished_one_of_the_same_items(fixture_data, tmp_path):
    """Runs are merged when they evaluate the same items, as their manifests list them: a run still
    going is flagged as incomplete, not refused as "other data"; runs planned on other items are."""
    n = len(data.test_items(get_task(TWITTER)))
    whole, cut = _run(tmp_path, answered=n, name="whole"), _run(tmp_path, answered=1, name="cut", both=True)
    cmd = [sys.executable, "-c", "from harness.cli import main; main()", "report", str(whole), str(cut)]
    done = subprocess.run([*cmd, "--out", str(tmp_path / "merged")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    said = (
        f"warning: run cut: Incomplete run: some arms lack test answers ({TWITTER}: zero_shot 1 of {n}, few_shot 1 of {n})"
    )
    assert said in done.stderr
    assert "run whole" not in done.stderr
    other = _run(tmp_path, answered=1, planned=1, name="other")  # planned on the first item only
    cmd = [sys.executable, "-c", "from harness.cli import main; main()", "report", str(whole), str(other)]
    done = subprocess.run([*cmd, "--out", str(tmp_path / "m2")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and f"evaluated different {TWITTER} test items" in done.stderr
    revised = _run(tmp_path, answered=n, name="revised")  # the same ids, from a revised data file
    manifest = json.loads((revised / MANIFEST).read_text())
    manifest["tasks"][TWITTER]["test_data_hash"] = "0" * 16
    (revised / MANIFEST).write_text(json.dumps(manifest))
    cmd = [sys.executable, "-c", "from harness.cli import main; main()", "report", str(whole), str(revised)]
    done = subprocess.run([*cmd, "--out", str(tmp_path / "m3")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and f"the same {TWITTER} item ids with other contents" in done.stderr
