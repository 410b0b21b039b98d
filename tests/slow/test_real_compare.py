"""`harness compare` end to end on the real model and data, then killed and resumed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.core import allocator

pytestmark = pytest.mark.slow


def _cli(args, env=None, timeout=900):
    """The `harness` command as a user runs it: its entry point relaunches with tcmalloc where it can."""
    cmd = [sys.executable, "-m", "harness.cli.launch", *args]
    base = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", allocator.DISABLE_ENV)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**base, **(env or {})})


def _plan(
    tmp: Path,
    sizes: str,
    variants: str,
    limit: int,
    val_limit: int,
    extra: str = "",
    formats: int = 0,
    seeds: str = "0",
    probe: int = 0,
) -> Path:
    p = tmp / "plan.toml"
    p.write_text(f"""name = "slow"
limit = {limit}
val_limit = {val_limit}
latency_probe = {probe}
[[task]]
name = "twitter_fin_sentiment"
train_sizes = [{sizes}]
variants = [{variants}]
formats = {formats}
seeds = [{seeds}]
[task.train]
epochs = 1
lr = 2e-3
rank = 8
alpha = 16
{extra}""")
    return p


def _metric(records, variant):
    rs = [r for r in records if r["variant"] == variant]
    return sum(r["scores"]["correct"] for r in rs) / len(rs)


def test_compare_end_to_end_real_model(real_data, model_dir, tmp_path):
    """A 6-trial prompt search and every arm scored on 24 validation items; the verdict compares
    the arms validation chose, whatever their test scores."""
    plan = _plan(
        tmp_path,
        "32",
        "{name = 'zero_shot', template = 'zero_shot'}, {name = 'constrained', template = 'zero_shot', constrained = true}",
        30,
        24,
        "[task.prompt_search]\nmethod = 'random'\ntrials = 6\nshots = [0, 2]\ntemplate = ['zero_shot', 'short']\n"
        "cue = ['', 'Answer:']\nconstrained = [false, true]\n",
        formats=2,
    )
    args = ["compare", "--plan", str(plan), "--results", str(tmp_path / "res"), "--run-id", "r", "--retention", ""]
    done = _cli(args)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "res" / "r"
    manifest = json.loads((run / "manifest.json").read_text())
    for key in ("git_sha", "versions", "hardware", "model_hash", "plan", "tasks", "timings"):
        assert manifest[key], key
    assert "avx2" in manifest["hardware"]["cpu_flags"] and manifest["hardware"]["cpus_usable"] >= 1
    assert manifest["hardware"]["allocator"] == ("tcmalloc" if allocator.tcmalloc() else "glibc malloc")
    task = manifest["tasks"]["twitter_fin_sentiment"]
    assert task["n_items"] == 30 and task["test_data_hash"] and task["template_hashes"]["zero_shot"]
    assert task["adapters"]["lora_n32"]["train_device_s"] > 0 and task["data_check"]["n_train"] == 9543
    assert task["validation"]["n_items"] == 24 and task["validation"]["labels_covered"] == [3, 3]
    assert not set(task["validation"]["items"]) & set(task["test_items"])
    records = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    val_records = [json.loads(x) for x in (run / "validation.jsonl").read_text().splitlines()]
    arms = {r["variant"] for r in records}
    assert {"zero_shot", "constrained", "lora_n32", "lora_n32+constrained"} <= arms
    assert arms == {r["variant"] for r in val_records}
    assert len(records) == 30 * len(arms) and len({(r["item"], r["variant"]) for r in records}) == len(records)
    assert {r["item"] for r in val_records} == set(task["validation"]["items"])
    assert all(r["prompt_tokens"] > 10 and r["latency_s"] > 0 for r in records)
    constrained = [r for r in records if r["variant"] in ("constrained", "lora_n32+constrained")]
    assert all(r["output"] in ("Bearish", "Bullish", "Neutral") for r in constrained)
    # The search's trials were scored on the validation items: its best trial, evaluated again as
    # an arm by the runner, must score what the search measured.
    search = task["search"]["prompt"]
    assert len(search["trials"]) == 6
    best = max(search["trials"], key=lambda t: t["metric"])
    assert search["best_metric"] == best["metric"]
    # (as "searched", or as the hand-written arm it turned out to be: then that arm scores it)
    prompt_arms = [v["name"] for v in task["variants"]]
    assert any(_metric(val_records, v) == pytest.approx(best["metric"]) for v in prompt_arms)
    if any(v["name"] == "searched" for v in task["variants"]):
        assert _metric(val_records, "searched") == pytest.approx(best["metric"])
    # The verdict's prompt is the validation winner among prompt arms, not the test winner.
    val_best = max(_metric(val_records, v) for v in prompt_arms)
    metrics = json.loads((run / "metrics.json").read_text())["twitter_fin_sentiment"]
    assert _metric(val_records, metrics["best_prompt"]) == val_best
    assert metrics["selection"]["on"] == "validation" and metrics["selection"]["n_val_items"] == 24
    adapter_arms = {"lora_n32", *twins("lora_n32")}  # every decoding the prompts have, too
    assert adapter_arms <= arms and metrics["best_adapter"] in adapter_arms
    assert _metric(val_records, metrics["best_adapter"]) == max(_metric(val_records, v) for v in adapter_arms)
    assert metrics["verdict"] and "Tuning budgets: prompt search 6 trials" in metrics["verdict"]
    # the format spread: the selected prompt in two other formats, every test item, answers of its own
    spread = task["formats"]
    assert spread["of"] == metrics["best_prompt"] and len(spread["variants"]) == 2
    fmt_records = [json.loads(x) for x in (run / "formats.jsonl").read_text().splitlines()]
    assert sorted((r["item"], r["variant"]) for r in fmt_records) == sorted(
        (i, v["name"]) for i in task["test_items"] for v in spread["variants"]
    )
    shown: dict[str, set[str]] = {}
    for r in fmt_records + [r for r in records if r["variant"] == spread["of"]]:
        shown.setdefault(r["item"], set()).add(r["messages"][-1]["content"])
    assert all(len(turns) == 3 for turns in shown.values())  # each item saw three different prompts
    assert f"Format spread of {spread['of']} over 2 meaning-preserving formats" in metrics["verdict"]
    assert "Verdict" in (run / "report.md").read_text() and "data:image/png" in (run / "report.html").read_text()
    assert "Chosen on 24 validation items" in (run / "report.md").read_text()
    # the console gives the verdict's headline and its labelled lines, as metrics.json holds them
    said = " ".join((done.stdout + done.stderr).split())
    assert f"Verdict: {' '.join(metrics['structured']['headline'].split())}" in said
    assert all(f"{label}:" in said for label, _ in metrics["structured"]["lines"])
    _engine_output_in_its_log(run, done)
    # at most one engine for the base model's arms and one for the adapter merged into a copy of the
    # base; none where the shared cache holds every answer, probe time and noise batch (a rerun of
    # `make test` on this machine): the kill test below always starts one
    assert manifest["timings"]["engine_starts"] <= 2

    start = time.perf_counter()
    again = _cli(args)  # unchanged: every record, trial and adapter exists, no engine starts
    assert again.returncode == 0 and time.perf_counter() - start < 90
    assert json.loads((run / "metrics.json").read_text())["twitter_fin_sentiment"] == metrics
    assert len((run / "samples.jsonl").read_text().splitlines()) == len(records)
    assert json.loads((run / "manifest.json").read_text())["timings_resumed"]["engine_starts"] == 0

    rebuilt = _cli(["report", str(run), "--out", str(tmp_path / "rebuilt")])
    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
    assert json.loads((tmp_path / "rebuilt" / "metrics.json").read_text())["twitter_fin_sentiment"] == metrics
    gate = _cli(["gate", str(run), "--baseline", str(run)])
    assert gate.returncode == 0 and "ok" in gate.stdout


def twins(adapter: str) -> set[str]:
    """An adapter's other decodings on a small label set: constrained, and the label by log-likelihood."""
    return {f"{adapter}+{d}" for d in ("constrained", "loglik", "loglik_contextual", "loglik_batch")}


def test_three_seeds_on_both_sides(real_data, model_dir, tmp_path):
    """seeds = [0, 1, 2] at small sizes: an adapter trained per seed and the few-shot prompt drawn per
    seed, each seed's adapter paired with the same seed's draw, and the verdict says in how many."""
    plan = _plan(
        tmp_path, "16", "{name = 'few_shot_2', template = 'few_shot', shots = 2, selection = 'random'}", 12, 6,
        seeds="0, 1, 2", probe=2,
    )  # fmt: skip
    args = ["compare", "--plan", str(plan), "--results", str(tmp_path / "res"), "--run-id", "s", "--retention", ""]
    done = _cli(args)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "res" / "s"
    records = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    draws, adapters = {f"few_shot_2_s{k}" for k in range(3)}, {f"lora_n16_s{k}" for k in range(3)}
    assert {r["variant"] for r in records} == draws | adapters | {t for a in adapters for t in twins(a)}
    first = records[0]["item"]
    shown = {r["variant"]: r["messages"][1]["content"] for r in records if r["variant"] in draws and r["item"] == first}
    assert len(set(shown.values())) == 3  # three draws: three different first examples
    manifest = json.loads((run / "manifest.json").read_text())
    seeds = {f["seed"] for f in manifest["tasks"]["twitter_fin_sentiment"]["adapters"].values()}
    hashes = {f["adapter_hash"] for f in manifest["tasks"]["twitter_fin_sentiment"]["adapters"].values()}
    assert seeds == {0, 1, 2} and len(hashes) == 3  # three trained adapters, not one reused
    verdict = json.loads((run / "metrics.json").read_text())["twitter_fin_sentiment"]["verdict"]
    assert "Across seeds 0, 1, 2: lora_n16_s" in verdict and "few_shot_2 over its few-shot draws" in verdict
    assert "of 3 seeds (each seed's adapter against the same seed's few-shot draw)." in verdict
    # the latency probe: two requests sent alone through the real engine for each arm the report can
    # select (the prompt validation chose, and per adapter its better decoding on validation), each timed
    waits = [json.loads(x) for x in (run / "latency.jsonl").read_text().splitlines()]
    probed = {w["variant"] for w in waits}
    assert len(waits) == 2 * 4 and len(probed & draws) == 1
    assert manifest["tasks"]["twitter_fin_sentiment"]["selected_prompt"] in probed
    assert all(len(probed & {a, *twins(a)}) == 1 for a in adapters)
    assert all(w["latency_s"] > 0.01 for w in waits)


def _engine_output_in_its_log(run: Path, done: subprocess.CompletedProcess[str]) -> None:
    """The engines' own output is in the run's engine.log, not on the console (where one started)."""
    console_text = done.stdout + done.stderr
    vllm_line = r"(WARNING|INFO|DEBUG) \d\d-\d\d \d\d:\d\d:\d\d \[[\w./]+:\d+\]"  # vLLM's own log format
    assert not re.search(vllm_line, console_text), console_text[:3000]
    log = (run / "engine.log").read_text() if (run / "engine.log").exists() else ""
    started = json.loads((run / "manifest.json").read_text())["timings"]["engine_starts"]
    assert bool(re.search(r" (WARNING|INFO) vllm", log)) == (started > 0), log[-2000:]
    # an engine loads its weights (the bar it draws at every start) into the log, not onto the console
    assert ("Loading safetensors" in log) == (started > 0) and "Loading safetensors" not in console_text


def test_kill_and_resume_on_the_real_model(real_data, model_dir, tmp_path):
    plan = _plan(tmp_path, "", "{name = 'zero_shot', template = 'zero_shot'}", 16, 4)
    base = [
        "compare",
        "--plan",
        str(plan),
        "--results",
        str(tmp_path / "res"),
        "--no-cache",
        "--batch-size",
        "4",
        "--retention",
        "",
    ]
    # The reference run fills a fresh response cache; the run to be killed answers from it (no
    # engine start: the kill comes before anything the cache cannot answer); the resumed session
    # bypasses the cache, so every answer after the kill comes from the real engine.
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "models").symlink_to(model_dir.parent)
    with_cache = [a for a in base if a != "--no-cache"]
    ref = _cli([*with_cache, "--run-id", "ref"], env={"HARNESS_CACHE": str(cache)})
    assert ref.returncode == 0, ref.stderr[-3000:]
    killed = _cli([*with_cache, "--run-id", "k"], env={"HARNESS_FAULT": "after-batch:2", "HARNESS_CACHE": str(cache)})
    assert killed.returncode == -9
    # One validation batch (4 items), then one test batch, then the kill.
    assert len((tmp_path / "res" / "k" / "validation.jsonl").read_text().splitlines()) == 4
    assert len((tmp_path / "res" / "k" / "samples.jsonl").read_text().splitlines()) == 4
    resumed = _cli([*base, "--run-id", "k"], env={"HARNESS_CACHE": str(cache)})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    manifest = json.loads((tmp_path / "res" / "k" / "manifest.json").read_text())
    assert manifest["timings"]["engine_starts"] == 1  # the killed session never wrote its timings
    _engine_output_in_its_log(tmp_path / "res" / "k", resumed)  # a real engine, whatever the cache holds

    def load(name):
        run = tmp_path / "res" / name
        recs = {
            (r["item"], r["variant"]): (r["output"], r["scores"])
            for r in map(json.loads, (run / "samples.jsonl").read_text().splitlines())
        }
        m = json.loads((run / "metrics.json").read_text())["twitter_fin_sentiment"]
        return recs, [(r["variant"], r["metric"]["value"]) for r in m["rows"]]

    assert load("k") == load("ref")
