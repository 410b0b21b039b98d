"""A 3-trial random sweep on real data picks the best validation trial; Ray gives the same trials."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

# Small on purpose: six trainings and six validation passes (three in order, three under Ray).
BASE = {"train_size": 16, "epochs": 1, "rank": 8, "alpha": 16, "batch_size": 8, "val_fraction": 0.0}


def _run(tmp, executor):
    from harness.experiment import sweep

    space = sweep.parse_space({"lr": [1e-5, 1e-3, 4e-3]})
    return sweep.run(
        "twitter_fin_sentiment",
        space,
        method="random",
        budget=3,
        seed=0,
        base=BASE,
        val_limit=24,
        executor=executor,
        backend="hf",
        out_root=tmp / executor,
    )


def test_sweep_picks_best_validation_trial_and_ray_agrees(real_data, model_dir, tmp_path, monkeypatch, capfd):
    pytest.importorskip("ray")
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache-seq"))
    import shutil

    shutil.copytree(model_dir.parent, tmp_path / "cache-seq" / "models")  # the converted model, not its training
    folder, seq = _run(tmp_path, "sequential")
    assert len(seq.trials) == 3
    # Against what was stored, not the summary's own arithmetic: the trial log on disk, and the
    # adapter each trial names was trained with that trial's learning rate.
    import json
    import statistics

    from harness.engines.adapters import MANIFEST

    stored = [json.loads(x) for x in (folder / "trials.jsonl").read_text().splitlines()]
    assert sorted(t["params"]["lr"] for t in stored) == [1e-5, 1e-3, 4e-3]
    for t in stored:
        config = json.loads((Path(t["adapter"]) / MANIFEST).read_text())["config"]
        assert config["lr"] == t["params"]["lr"] and config["train_size"] == 16
    top = max(stored, key=lambda t: t["metric"])
    assert seq.best.params == top["params"] and seq.best.metric == top["metric"]
    assert seq.median == pytest.approx(statistics.median(t["metric"] for t in stored))

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache-ray"))  # fresh adapter cache: Ray really trains
    shutil.copytree(model_dir.parent, tmp_path / "cache-ray" / "models")
    capfd.readouterr()
    _, par = _run(tmp_path, "ray")
    import ray

    ray.shutdown()
    said = capfd.readouterr()
    assert "Ray" not in said.out + said.err  # Ray's own start-up lines stay off the console
    by_params = {t.params["lr"]: t for t in par.trials}
    for t in seq.trials:
        other = by_params[t.params["lr"]]
        assert other.metric == pytest.approx(t.metric)
        assert other.train_loss == pytest.approx(t.train_loss, abs=1e-5)
