from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.core.errors import UserError
from harness.experiment import search, sweep
from tests.experiment.test_kill import _rows
from tests.tiny_model import make_model_dir


def test_parse_space_casts_dedups_and_validates():
    space = sweep.parse_space({"lr": "1e-4,1e-3,1e-3", "epochs": [1, 2]})
    assert space.params == (("lr", (1e-4, 1e-3)), ("epochs", (1.0, 2.0))) and space.size == 4
    with pytest.raises(UserError, match="search space is empty"):
        sweep.parse_space({})
    with pytest.raises(UserError, match=r"cannot search over 'epoch'.*did you mean epochs"):
        sweep.parse_space({"epoch": [1]})
    with pytest.raises(UserError, match="non-empty list"):
        sweep.parse_space({"lr": []})
    with pytest.raises(UserError, match="must be numbers"):
        sweep.parse_space({"rank": ["big"]})


def test_grid_and_random_are_seeded_and_distinct(tmp_path):
    space = sweep.parse_space({"lr": [1, 2, 3], "rank": [4, 8]})
    assert len(sweep.grid(space)) == 6

    def proposed(budget: int, seed: int, name: str) -> list[str]:
        log = search.TrialLog(tmp_path / f"{name}.jsonl")
        run = lambda todo: (search.Trial(i, p, 0.0, None, None, 0.0, 0.0, "") for i, p in todo)  # noqa: E731
        search.propose(space, sweep.grid(space), method="random", budget=budget, seed=seed, log=log, run_trials=run)
        log.close()
        return [json.dumps(t.params, sort_keys=True) for t in log.trials]

    a = proposed(4, 1, "a")
    assert a == proposed(4, 1, "b") and len(set(a)) == 4  # seeded, distinct
    assert len(proposed(99, 0, "c")) == 6  # the whole grid when the budget covers it


def _trial(n, metric, **params):
    return search.Trial(n, params, metric, 0.5, 0.6 - metric / 10, 10.0, 10.0, f"/a{n}")


def test_summary_best_median_spread_and_sensitivity():
    trials = [
        _trial(0, 0.2, lr=1e-4, epochs=1),
        _trial(1, 0.5, lr=1e-3, epochs=1),
        _trial(2, 0.4, lr=1e-4, epochs=2),
        _trial(3, 0.7, lr=1e-3, epochs=2),
    ]
    s = search.summarise(trials, "accuracy")
    assert s.best.number == 3 and s.median == pytest.approx(0.45) and s.spread == pytest.approx(0.25)
    assert s.sensitivity["lr"] == [(1e-4, pytest.approx(0.3), 2), (1e-3, pytest.approx(0.6), 2)]
    assert search.heatmap(trials, "lr", "epochs")[(1e-3, 2)] == pytest.approx(0.7)
    assert trials[0].cost(3.6) == pytest.approx(0.01)


def test_summary_of_nothing_is_an_error():
    with pytest.raises(UserError, match="no trial"):
        search.summarise([], "accuracy")


@pytest.fixture
def synthetic_task(tmp_path, monkeypatch, cache_dir):
    data = tmp_path / "data" / "twitter_fin_sentiment"
    data.mkdir(parents=True)
    (data / "train.jsonl").write_text(_rows("tr", 60))
    (data / "validation.jsonl").write_text(_rows("va", 10))
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "data"))
    return make_model_dir(tmp_path / "tiny")


def test_sweep_runs_resumes_and_never_scores_on_test(synthetic_task, tmp_path):
    base = {"model": str(synthetic_task), "train_size": 8, "batch_size": 4, "rank": 4, "alpha": 8, "val_fraction": 0.0}
    space = sweep.parse_space({"lr": [1e-3, 5e-3], "epochs": [1, 2]})
    logged = []

    def check_logged(trial):  # each trial is on disk before the next one finishes
        logged.append(len(next((tmp_path / "sweeps").glob("*/trials.jsonl")).read_text().splitlines()))

    def run(**extra):
        kw = {"method": "random", "budget": 3, "seed": 0, "base": base, "backend": "hf", **extra}
        return sweep.run("twitter_fin_sentiment", space, out_root=tmp_path / "sweeps", **kw)

    folder, s = run(on_trial=check_logged)
    assert logged == [1, 2, 3]
    assert len(s.trials) == 3 and len((folder / "trials.jsonl").read_text().splitlines()) == 3
    adapters = sorted((tmp_path / "cache" / "adapters").iterdir())
    # scored on the carve-out of the training split (6 of 60 rows), never on validation.jsonl (the test split)
    from harness.taskkit import data
    from harness.taskkit.registry import get_task

    task = get_task("twitter_fin_sentiment")
    _, val = data.carve_validation(task, data.load_split(task, "train"), data.load_split(task, "validation"))
    assert len(val) == 6 and all(v.id.startswith("tr") for v in val)
    seen = []
    folder2, s2 = run(on_trial=seen.append)
    assert folder2 == folder and [t.metric for t in s2.trials] == [t.metric for t in s.trials]
    assert sorted((tmp_path / "cache" / "adapters").iterdir()) == adapters  # nothing retrained
    assert len((folder / "trials.jsonl").read_text().splitlines()) == 3  # nothing duplicated
    from harness.report.sweep_report import write

    write(folder, s2, "twitter_fin_sentiment", 2.0)
    assert "spread best − median" in (folder / "sweep.md").read_text()
    assert (folder / "sweep.html").read_text().count("data:image/png") == 2

    # changed training data: the same sweep settings must not resume the old trials' scores
    train_file = tmp_path / "data" / "twitter_fin_sentiment" / "train.jsonl"
    train_file.write_text(train_file.read_text().replace("stock", "share"))
    fresh = []

    def fake_trial(self, number, params):
        fresh.append(number)
        return search.Trial(number, params, 0.25, None, None, 0.0, 0.0, "none")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sweep._TrialRunner, "__call__", fake_trial)
        folder3, s3 = run()
    assert folder3 != folder and sorted(fresh) == [0, 1, 2] and {t.metric for t in s3.trials} == {0.25}

    # the same sweep where trials would be scored another way (hf in bf16 with peft's layers on
    # CUDA, merged float32 weights here) is another sweep, not a resume of these scores
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sweep._TrialRunner, "__call__", fake_trial)
        mp.setattr(sweep, "cuda_available", lambda: True)
        folder4, _ = run()
    assert folder4 != folder3 and sorted(fresh) == [0, 0, 1, 1, 2, 2]


def test_trials_are_scored_by_the_fast_path_of_the_machine():
    assert sweep.trial_backend("auto", cuda=True) == ("vllm", {"adapter_mode": "lora"})
    assert sweep.trial_backend("auto", cuda=False) == ("hf", {"adapter_mode": "merged"})
    assert sweep.trial_backend("hf", cuda=True) == ("hf", {"adapter_mode": "lora"})  # no merge into bf16
    assert sweep.trial_backend("vllm", cuda=False) == ("vllm", {"adapter_mode": "lora"})


def test_sweep_bad_input(synthetic_task, tmp_path):
    space = sweep.parse_space({"lr": [1e-3]})
    with pytest.raises(UserError, match="at least 1"):
        sweep.run("twitter_fin_sentiment", space, budget=0, out_root=tmp_path)
    with pytest.raises(UserError, match="unknown search method"):
        sweep.run("twitter_fin_sentiment", space, method="bayes", out_root=tmp_path)
    with pytest.raises(UserError, match="rank must be positive"):
        sweep.run("twitter_fin_sentiment", sweep.parse_space({"rank": [0]}), out_root=tmp_path)


def test_compare_tunes_first_and_trains_the_best_setting(synthetic_task, tmp_path):
    from harness.analysis.runs import summarise
    from harness.experiment.compare import compare
    from harness.experiment.plan import load_plan
    from harness.report.write import write_reports

    plan_file = tmp_path / "plan.toml"
    plan_file.write_text(f"""name = "tuned"
model = "{synthetic_task}"
limit = 6
[[task]]
name = "twitter_fin_sentiment"
train_sizes = [8]
variants = [{{name = "zero_shot", template = "zero_shot"}}]
[task.train]
batch_size = 4
rank = 4
alpha = 8
val_fraction = 0.0
[task.sweep]
lr = [1e-3, 5e-3]
method = "grid"
trials = 2
""")
    run_dir, _ = compare(load_plan(plan_file), tmp_path / "results", backend_kind="fake")
    summaries, manifests = summarise([run_dir])
    write_reports(run_dir, summaries, manifests)  # as the CLI does: compare never renders
    assert not (tmp_path / "results" / "sweeps" / "engine.log").exists()  # the run's own engine.log keeps it
    manifest = json.loads((run_dir / "manifest.json").read_text())
    found = manifest["tasks"]["twitter_fin_sentiment"]["sweep"]
    adapter = manifest["tasks"]["twitter_fin_sentiment"]["adapters"]["lora_n8"]
    trials = [
        json.loads(x)
        for x in (tmp_path / "results" / "sweeps")
        .glob("twitter_fin_sentiment-*/trials.jsonl")
        .__next__()
        .read_text()
        .splitlines()
    ]
    # the stored trial log decides: compare trains the setting of the trial with the best validation
    # score (the first of equals, in trial order), not merely one of the two tried
    assert found["trials"] == 2 and sorted(t["params"]["lr"] for t in trials) == [1e-3, 5e-3]
    winner = max(trials, key=lambda t: t["metric"])
    assert found["best"]["lr"] == winner["params"]["lr"] and found["best_metric"] == winner["metric"]
    assert adapter["config"]["lr"] == winner["params"]["lr"] and adapter["config"]["train_size"] == 8
    from harness.engines.adapters import MANIFEST

    sizes = {json.loads((Path(t["adapter"]) / MANIFEST).read_text())["config"]["train_size"] for t in trials}
    assert sizes == {8}  # the sweep tuned at the size compare trains
    assert summaries[0].task == "twitter_fin_sentiment"
    # Equal effort: the adapter sweep brought a prompt search of the same method and trial count.
    search = manifest["tasks"]["twitter_fin_sentiment"]["search"]
    assert search["prompt"]["method"] == "grid" and len(search["prompt"]["trials"]) == 2
    assert len(search["adapter"]["trials"]) == 2
    assert "Tuning budgets: prompt search 2 trials" in summaries[0].verdict
    assert "adapter sweep 2 trials" in summaries[0].verdict
    # the format spread: five other formats of the selected prompt, each on every test item
    spread = manifest["tasks"]["twitter_fin_sentiment"]["formats"]
    assert spread["of"] == manifest["tasks"]["twitter_fin_sentiment"]["selected_prompt"] and len(spread["variants"]) == 5
    rows = [json.loads(x) for x in (run_dir / "formats.jsonl").read_text().splitlines()]
    assert len(rows) == 5 * 6 and {r["variant"] for r in rows} == {v["name"] for v in spread["variants"]}
    assert f"Format spread of {spread['of']} over 5 meaning-preserving formats" in summaries[0].verdict
    report = (run_dir / "report.md").read_text()
    assert f"Format spread of {spread['of']} (the same test items" in report
    assert all(v["describe"] in report for v in spread["variants"])  # one table row per format, said in words
    assert f"Format spread of {spread['of']} (the same test items" in (run_dir / "report.html").read_text()
    # the latency probe: 6 test items, each sent alone, for every arm the report can select (one
    # prompt, and per adapter the best of its decodings and its combined arm), p50/p95 in the table
    waits = [json.loads(x) for x in (run_dir / "latency.jsonl").read_text().splitlines()]
    picked = summaries[0].selection
    assert picked is not None
    chosen = {picked.prompt, picked.adapter, picked.combined} - {None}
    probed = {r["variant"] for r in waits}
    assert chosen <= probed and len(waits) == 6 * len(probed)
    assert sum(r.side == "prompt" and r.variant in probed for r in summaries[0].rows) == 1
    timed = {r.variant for r in summaries[0].rows if r.wait_p50 is not None and r.wait_p95 is not None}
    assert timed == probed and len(timed) < len(summaries[0].rows)  # the arms nobody would deploy are not timed


def test_ray_executor_matches_sequential_on_the_tiny_model(synthetic_task, tmp_path):
    ray = pytest.importorskip("ray")
    base = {"model": str(synthetic_task), "train_size": 8, "batch_size": 4, "rank": 4, "alpha": 8, "val_fraction": 0.0}
    space = sweep.parse_space({"lr": [1e-3, 5e-3]})
    _, seq = sweep.run(
        "twitter_fin_sentiment", space, method="grid", budget=2, base=base, backend="hf", out_root=tmp_path / "seq"
    )
    import shutil

    shutil.rmtree(tmp_path / "cache" / "adapters")  # Ray workers must really train
    try:
        _, par = sweep.run(
            "twitter_fin_sentiment",
            space,
            method="grid",
            budget=2,
            base=base,
            backend="hf",
            executor="ray",
            out_root=tmp_path / "ray",
        )
        import torch

        def threads(number, params):  # what a trial trains with, where Ray runs it
            return search.Trial(number, params, float(torch.get_num_threads()), None, None, 0.0, 0.0, "")

        # by default a Ray task gets one thread: a trial then sums in another order than in sequence
        [seen] = sweep._execute(threads, [(0, {})], "ray")
        assert seen.metric == min(torch.get_num_threads(), int(ray.cluster_resources()["CPU"]))
    finally:
        ray.shutdown()
    assert sorted((t.params["lr"], t.metric, round(t.train_loss, 5)) for t in par.trials) == sorted(
        (t.params["lr"], t.metric, round(t.train_loss, 5)) for t in seq.trials
    )


def test_a_search_shows_its_trials_against_the_budget_and_resumes_the_count(tmp_path, capsys):
    from harness.experiment.search import Trial, TrialLog

    def trial(n: int) -> Trial:
        return Trial(n, {"lr": n}, 0.5, None, None, 1.0, 1.0, "")

    log = TrialLog(tmp_path / "trials.jsonl", None, "prompt search twitter (random)", 4)
    log.record(trial(0))
    log.record(trial(0))  # already recorded: not counted twice
    log.close()
    first = capsys.readouterr().err
    assert "prompt search twitter (random)" in first and "1/4" in first
    resumed = TrialLog(tmp_path / "trials.jsonl", None, "prompt search twitter (random)", 4)
    resumed.record(trial(1))
    resumed.close()
    assert "2/4" in capsys.readouterr().err


def test_the_sweep_command_keeps_the_engines_lines_in_a_log(tmp_path, capsys, monkeypatch):
    import logging

    from tests.helpers import run_cli

    def engines_talk(self, number, params):
        logging.getLogger("vllm.platforms.cpu").warning("Triton is not installed.")
        return search.Trial(number, params, 0.5, None, None, 0.0, 0.0, "none")

    monkeypatch.setattr(sweep._TrialRunner, "__call__", engines_talk)
    results = tmp_path / "sweeps"
    code, out, err = run_cli(
        ["sweep", "twitter_fin_sentiment", "--lr", "1e-3", "--results", str(results)], capsys, monkeypatch
    )
    assert code == 0, err
    assert "Triton" not in out + err and f"engine log: {results / 'engine.log'}" in out
    assert "WARNING vllm.platforms.cpu: Triton is not installed." in (results / "engine.log").read_text()
