"""A run's identity covers everything that decides its records: an edited template or changed data
gives fresh answers (a new run directory, gate-comparable with the old one), an explicit --run-id
made under other conditions is refused with what changed, a rerun keeps the first session's facts,
and Ctrl-C exits 130 with a resumable run. Real `harness compare` processes, fake backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny_model import make_model_dir

TASK = """from harness.tasks import Task
from harness.types import Sample

TASK = Task(name="toy", version=1, domain="toy", kind="classification", description="up or down",
            to_sample=lambda r: Sample(id=r["id"], fields={"text": r["text"]}, target=r["label"]),
            test_split="test", train_split="train", metrics=("accuracy",), labels=("up", "down"))
"""
WORDS = {"rises": "up", "soars": "up", "falls": "down", "slips": "down"}


def _rows(prefix: str, n: int, suffix: str = "") -> str:
    words = list(WORDS)
    return "".join(
        json.dumps({"id": f"{prefix}{i}", "text": f"stock {i} {words[i % 4]}{suffix}", "label": WORDS[words[i % 4]]}) + "\n"
        for i in range(n)
    )


@pytest.fixture
def setup(tmp_path):
    (tmp_path / "extra" / "tasks").mkdir(parents=True)
    (tmp_path / "extra" / "tasks" / "toy.py").write_text(TASK)
    prompts = tmp_path / "extra" / "prompts" / "toy"
    prompts.mkdir(parents=True)
    (prompts / "zero_shot.j2").write_text("Is this up or down? {{ text }}")
    (prompts / "plain.j2").write_text("{{ text }}")
    data = tmp_path / "data" / "toy"
    data.mkdir(parents=True)
    (data / "train.jsonl").write_text(_rows("tr", 24))
    (data / "test.jsonl").write_text(_rows("te", 12))
    plan = tmp_path / "plan.toml"
    plan.write_text(f"""name = "toy"
model = "{make_model_dir(tmp_path / "tiny")}"
val_limit = 4
[[task]]
name = "toy"
variants = [{{name = "zero_shot", template = "zero_shot"}}, {{name = "plain", template = "plain"}}]
""")
    env = {**os.environ, "HARNESS_DATA_DIR": str(tmp_path / "data"), "HARNESS_CACHE": str(tmp_path / "cache")}
    env.pop("HARNESS_FAULT", None)
    return tmp_path, plan, env


def harness(setup, *args, fault: str | None = None):
    root, _, env = setup
    cmd = [sys.executable, "-c", "from harness.cli import main; main()", "--tasks-dir", str(root / "extra" / "tasks"), *args]
    return subprocess.run(cmd, env={**env, **({"HARNESS_FAULT": fault} if fault else {})}, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def compare(setup, *extra: str, fault: str | None = None):
    root, plan, _ = setup
    return harness(setup, "compare", "--plan", str(plan), "--backend", "fake", "--batch-size", "4",
                   "--results", str(root / "results"), *extra, fault=fault)  # fmt: skip


def runs(root: Path) -> list[Path]:
    return sorted(p for p in (root / "results").iterdir() if (p / "manifest.json").is_file())


def messages(run: Path, variant: str) -> set[str]:
    return {
        json.loads(x)["messages"][-1]["content"]
        for x in (run / "samples.jsonl").read_text().splitlines()
        if json.loads(x)["variant"] == variant
    }


def test_an_edited_template_gives_fresh_answers_and_a_comparable_run(setup):
    root = setup[0]
    first = compare(setup)
    assert first.returncode == 0, first.stderr[-1500:]
    [old] = runs(root)
    (root / "extra" / "prompts" / "toy" / "plain.j2").write_text("Stock news: {{ text }}")
    second = compare(setup)
    assert second.returncode == 0, second.stderr[-1500:]
    [new] = [r for r in runs(root) if r != old]
    assert all(m.startswith("Stock news: ") for m in messages(new, "plain"))  # the edited wording, not the old one
    assert not any(m.startswith("Stock news: ") for m in messages(old, "plain"))
    assert messages(new, "zero_shot") == messages(old, "zero_shot")
    stored = json.loads((new / "manifest.json").read_text())["identity"]["tasks"]["toy"]["templates"]
    assert (
        stored["plain"] != json.loads((old / "manifest.json").read_text())["identity"]["tasks"]["toy"]["templates"]["plain"]
    )
    gate = harness(setup, "gate", str(new), "--baseline", str(old))
    assert gate.returncode in (0, 1) and "toy/plain" in gate.stdout, gate.stderr  # the two runs are comparable

    # naming the old run explicitly is refused, with what changed
    reused = compare(setup, "--run-id", old.name)
    assert reused.returncode == 2 and "changed: tasks.toy.templates.plain" in reused.stderr, reused.stderr
    assert len(reused.stderr.strip().splitlines()) == 1


def test_changed_data_starts_a_fresh_run(setup):
    root = setup[0]
    assert compare(setup).returncode == 0
    (root / "data" / "toy" / "test.jsonl").write_text(_rows("te", 12, suffix=" sharply"))
    again = compare(setup, "--run-id", runs(root)[0].name)
    assert again.returncode == 2 and "tasks.toy.test_data" in again.stderr, again.stderr
    assert compare(setup).returncode == 0
    assert len(runs(root)) == 2


def test_a_rerun_keeps_the_first_sessions_facts(setup):
    root = setup[0]
    assert compare(setup).returncode == 0
    [run] = runs(root)
    before = json.loads((run / "manifest.json").read_text())
    assert compare(setup).returncode == 0
    after = json.loads((run / "manifest.json").read_text())
    assert after["created"] == before["created"] and after["timings"] == before["timings"]
    assert "timings_resumed" in after and len(after["resumed"]) == 1


@pytest.mark.parametrize("run_id", ["../outside", "/tmp/abs", "a/b", "..", ".hidden", "x" * 129])
def test_a_run_id_is_a_plain_name(setup, run_id):
    done = compare(setup, "--run-id", run_id)
    assert done.returncode == 2 and "is not a plain name" in done.stderr, done.stderr
    assert not (setup[0] / "outside").exists() and not (setup[0] / "results").exists()


def test_ctrl_c_exits_130_with_one_line_and_the_run_resumes(setup):
    root = setup[0]
    stopped = compare(setup, "--run-id", "r", fault="after-batch:4:INT")
    assert stopped.returncode == 130, stopped.stderr[-1500:]
    assert "Traceback" not in stopped.stderr
    assert stopped.stderr.strip().splitlines()[-1].startswith("interrupted: finished work is saved")
    kept = (root / "results" / "r" / "samples.jsonl").read_text().splitlines()
    assert 0 < len(kept) < 24 and len(kept) % 4 == 0  # whole batches of four were saved, nothing torn
    resumed = compare(setup, "--run-id", "r")
    assert resumed.returncode == 0, resumed.stderr[-1500:]
    lines = (root / "results" / "r" / "samples.jsonl").read_text().splitlines()
    assert lines[: len(kept)] == kept and len(lines) == 24  # 12 items x 2 variants, none twice
