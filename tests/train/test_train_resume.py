"""Training killed right after a checkpoint resumes from it and ends with the same loss curve
and the same adapter as an uninterrupted run (CPU, same seed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from harness.engines.adapters import adapter_hash
from tests.experiment.test_kill import _rows
from tests.tiny_model import make_model_dir


def _train(env, model, fault=None):
    env = {**env, **({"HARNESS_FAULT": fault} if fault else {})}
    args = [
        "train",
        "twitter_fin_sentiment",
        "--model",
        str(model),
        "--train-size",
        "12",
        "--batch-size",
        "2",
        "--epochs",
        "2",
        "--rank",
        "4",
        "--lr",
        "5e-3",
    ]
    cmd = [sys.executable, "-c", "from harness.cli import main; main()", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def test_interrupted_training_resumes_from_its_checkpoint(tmp_path):
    data = tmp_path / "data" / "twitter_fin_sentiment"
    data.mkdir(parents=True)
    (data / "train.jsonl").write_text(_rows("tr", 30))
    (data / "validation.jsonl").write_text(_rows("va", 6))
    model = make_model_dir(tmp_path / "tiny")
    base_env = {k: v for k, v in os.environ.items() if k != "HARNESS_FAULT"}
    env = {**base_env, "HARNESS_DATA_DIR": str(tmp_path / "data"), "HARNESS_CACHE": str(tmp_path / "a")}
    killed = _train(env, model, "train-saved")
    assert killed.returncode == -9, killed.stderr[-2000:]
    work = next((tmp_path / "a" / "adapters").glob(".work-*"))
    assert [p.name for p in work.glob("checkpoint-*")] == ["checkpoint-5"]
    assert not [p for p in (tmp_path / "a" / "adapters").iterdir() if not p.name.startswith(".")]  # nothing final yet
    resumed = _train(env, model)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Loading weights" not in resumed.stderr + resumed.stdout  # transformers' own bar: the harness's only
    final = next(p for p in (tmp_path / "a" / "adapters").iterdir() if not p.name.startswith("."))
    m = json.loads((final / "harness-adapter.json").read_text())
    assert m["resumed_from"] == "checkpoint-5"

    clean = _train({**env, "HARNESS_CACHE": str(tmp_path / "b")}, model)
    assert clean.returncode == 0
    other = next(p for p in (tmp_path / "b" / "adapters").iterdir() if not p.name.startswith("."))
    ref = json.loads((other / "harness-adapter.json").read_text())
    assert [x["step"] for x in m["loss_curve"]] == list(range(1, 13))
    assert all(abs(a["loss"] - b["loss"]) < 1e-6 for a, b in zip(m["loss_curve"], ref["loss_curve"], strict=True))
    assert adapter_hash(final) == adapter_hash(other)  # the same adapter, byte for byte
