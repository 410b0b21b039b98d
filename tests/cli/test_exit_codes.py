"""Every command's exit status on a failing case: 0 success, 1 a check that failed (gate,
check-adapter) or a bug, 2 the user's input, 130 interrupted. A gate that exits 0 on a regression
would never fail a CI job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures import write_data_dir
from tests.helpers import make_run, run_cli


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_DIR", str(write_data_dir(tmp_path / "data", ["twitter_fin_sentiment"])))
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)


def _records(items: int, correct: set[int]) -> str:
    return "".join(
        json.dumps({
            "task": "twitter_fin_sentiment", "item": f"i{i}", "variant": "zero_shot", "gold": "Bullish",
            "prediction": "Bullish" if i in correct else "Bearish", "scores": {"correct": float(i in correct)},
            "prompt_tokens": 10, "completion_tokens": 1, "latency_s": 0.01,
        }) + "\n"
        for i in range(items)
    )  # fmt: skip


def test_gate_exits_1_on_a_regression_0_on_none_2_on_nothing_to_compare(tmp_path, capsys, monkeypatch):
    runs = tmp_path / "runs"
    base = make_run(runs, "base", samples=_records(40, set(range(40))))
    worse = make_run(runs, "worse", samples=_records(40, set(range(10))))  # 30 items flipped to wrong
    same = make_run(runs, "same", samples=_records(40, set(range(40))))
    code, out, err = run_cli(["gate", str(worse), "--baseline", str(base)], capsys, monkeypatch)
    assert code == 1 and "FAIL twitter_fin_sentiment/zero_shot" in out and "flipped to wrong (30)" in out, out + err
    code, out, _ = run_cli(["gate", str(same), "--baseline", str(base)], capsys, monkeypatch)
    assert code == 0 and "ok twitter_fin_sentiment/zero_shot" in out
    other = make_run(runs, "other", items=("x1", "x2"))
    code, _, err = run_cli(["gate", str(other), "--baseline", str(base)], capsys, monkeypatch)
    assert code == 2 and "share no test items" in err


def test_check_adapter_exits_1_when_the_check_fails(tmp_path, capsys, monkeypatch):
    import numpy as np
    from safetensors.numpy import save_file

    import harness.experiment.check_adapter
    from harness.experiment.check_adapter import AdapterCheck

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"r": 8}')
    save_file({"w": np.zeros(2, dtype=np.float32)}, str(adapter / "adapter_model.safetensors"))  # complete
    monkeypatch.setattr(harness.experiment.check_adapter, "check", lambda *a, **k: AdapterCheck(0.0, {}, 1))
    code, _, _ = run_cli(["check-adapter", str(adapter), "--task", "twitter_fin_sentiment"], capsys, monkeypatch)
    assert code == 1
    monkeypatch.setattr(harness.experiment.check_adapter, "check", lambda *a, **k: AdapterCheck(1.0, {"lora": 1.0}, 1))
    code, _, _ = run_cli(["check-adapter", str(adapter), "--task", "twitter_fin_sentiment"], capsys, monkeypatch)
    assert code == 0


def test_check_adapter_keeps_the_engines_lines_in_a_log(tmp_path, capsys, monkeypatch):
    import logging

    import harness.experiment.check_adapter
    from harness.experiment.check_adapter import AdapterCheck

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"r": 8}')
    (adapter / "adapter_model.safetensors").write_bytes(b"\x08" + b"\x00" * 7 + b"{}      ")  # an empty, complete file

    def engines_talk(*args, **kwargs):
        logging.getLogger("vllm.platforms.cpu").warning("Triton is not installed.")
        return AdapterCheck(1.0, {"lora": 1.0}, 1)

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(harness.experiment.check_adapter, "check", engines_talk)
    code, out, err = run_cli(["check-adapter", str(adapter), "--task", "twitter_fin_sentiment"], capsys, monkeypatch)
    log = tmp_path / "cache" / "check-adapter" / "engine.log"
    assert code == 0 and "Triton" not in out + err and f"engine log: {log}" in out
    assert "WARNING vllm.platforms.cpu: Triton is not installed." in log.read_text()


def test_a_bug_is_exit_1_and_ctrl_c_is_130_each_with_one_line(capsys, monkeypatch):
    import harness.taskkit.data

    def boom(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(harness.taskkit.data, "test_items", boom)
    code, _, err = run_cli(["preview", "twitter_fin_sentiment"], capsys, monkeypatch)
    assert code == 1 and err.strip() == "internal error: RuntimeError: a bug (rerun with --debug for the traceback)"

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(harness.taskkit.data, "test_items", interrupt)
    code, _, err = run_cli(["preview", "twitter_fin_sentiment"], capsys, monkeypatch)
    assert code == 130 and err.strip().splitlines() == [
        "interrupted: finished work is saved; rerun the same command to resume"
    ]


def _broken_tasks_dir(tmp: Path) -> str:
    d = tmp / "broken"
    d.mkdir()
    (d / "oops.py").write_text("raise ValueError('nope')\n")
    return str(d)


# every command, one failing case each: (command, args, status)
COMMANDS = [
    ("tasks", lambda t: ["--tasks-dir", _broken_tasks_dir(t), "tasks"], 2),
    ("preview", lambda t: ["preview", "twiter"], 2),
    ("models list", lambda t: ["models", "list", "--all"], 2),
    ("models pull", lambda t: ["models", "pull", "smollm9"], 2),
    ("train", lambda t: ["train", "twitter_fin_sentiment", "--rank", "0"], 2),
    ("compare", lambda t: ["compare"], 2),
    ("sweep", lambda t: ["sweep", "twitter_fin_sentiment"], 2),
    ("data-check", lambda t: ["data-check", "twiter"], 2),
    ("report", lambda t: ["report", str(t)], 2),
    ("gate", lambda t: ["gate", str(t), "--baseline", str(t)], 2),
    ("check-adapter", lambda t: ["check-adapter", str(t / "none"), "--task", "twitter_fin_sentiment"], 2),
    ("cache", lambda t: ["cache", "--clear", "nope"], 2),
]


@pytest.mark.parametrize("case", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_every_command_fails_with_its_status(case, tmp_path, capsys, monkeypatch):
    _, build, status = case
    code, out, err = run_cli(build(tmp_path), capsys, monkeypatch)
    assert code == status, out + err
    assert "Traceback" not in out + err and err.strip()


def _manifest_facts(run: Path, **facts) -> Path:
    path = run / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["tasks"]["twitter_fin_sentiment"].update(facts)
    path.write_text(json.dumps(manifest))
    return run


def test_gate_refuses_a_run_that_lacks_answers_and_names_variants_it_cannot_gate(tmp_path, capsys, monkeypatch):
    """A killed candidate holds answers for a few items: gated on those, it passed (or failed) by
    accident. A variant that the candidate no longer has is said, not silently skipped."""
    runs = tmp_path / "runs"
    facts = {"test_items": [f"i{i}" for i in range(40)], "variants": [{"name": "zero_shot"}]}
    base = _manifest_facts(make_run(runs, "base", samples=_records(40, set(range(40)))), **facts)
    cut = _manifest_facts(make_run(runs, "cut", samples=_records(5, set(range(5)))), **facts)
    code, _, err = run_cli(["gate", str(cut), "--baseline", str(base)], capsys, monkeypatch)
    assert code == 2 and f"candidate run {cut} is incomplete (twitter_fin_sentiment: zero_shot 5 of 40)" in err
    code, _, err = run_cli(["gate", str(base), "--baseline", str(cut)], capsys, monkeypatch)
    assert code == 2 and f"baseline run {cut} is incomplete" in err

    two = _records(40, set(range(40))) + _records(40, set(range(40))).replace('"zero_shot"', '"few_shot"')
    wide = make_run(runs, "wide", samples=two)
    same = make_run(runs, "same", samples=_records(40, set(range(40))))
    code, out, _ = run_cli(["gate", str(same), "--baseline", str(wide)], capsys, monkeypatch)
    assert code == 0 and "not in the candidate, so not gated: twitter_fin_sentiment/few_shot" in out


def test_gate_tests_clustered_items_as_the_report_does(tmp_path, capsys, monkeypatch):
    """40 items from 4 sources; the candidate got one source's 10 items wrong. Counted as 40
    independent items that is a regression (McNemar p = 0.002); it is one source of four, which a
    clustered test cannot call a regression, and the report would not either."""
    runs = tmp_path / "runs"
    base = make_run(runs, "base", samples=_records(40, set(range(40))))
    worse = make_run(runs, "worse", samples=_records(40, set(range(10, 40))))
    code, out, _ = run_cli(["gate", str(worse), "--baseline", str(base)], capsys, monkeypatch)
    assert code == 1, out
    sources = {f"i{i}": f"doc{i // 10}" for i in range(40)}
    _manifest_facts(worse, clusters=sources)
    code, out, _ = run_cli(["gate", str(worse), "--baseline", str(base)], capsys, monkeypatch)
    assert code == 0 and "ok twitter_fin_sentiment/zero_shot" in out, out


def test_gate_corrects_for_the_number_of_variants_it_gates(tmp_path, capsys, monkeypatch):
    """Six items flipped to wrong in one variant: exact McNemar p = 0.031, a regression when it is
    the only variant gated. Gated beside a second, unchanged variant it is one of two tests, and
    Holm's p = 0.062 does not fail the gate; thirty flipped items fail it either way."""
    runs = tmp_path / "runs"

    def two(zero_shot: str) -> str:
        return zero_shot + _records(40, set(range(40))).replace('"zero_shot"', '"few_shot"')

    base = make_run(runs, "base", samples=_records(40, set(range(40))))
    six = make_run(runs, "six", samples=_records(40, set(range(6, 40))))
    code, out, _ = run_cli(["gate", str(six), "--baseline", str(base)], capsys, monkeypatch)
    assert code == 1 and "p=0.0312 on 40 shared items" in out, out
    base2 = make_run(runs, "base2", samples=two(_records(40, set(range(40)))))
    six2 = make_run(runs, "six2", samples=two(_records(40, set(range(6, 40)))))
    code, out, _ = run_cli(["gate", str(six2), "--baseline", str(base2)], capsys, monkeypatch)
    assert code == 0 and "ok twitter_fin_sentiment/zero_shot" in out and "p=0.0625 (Holm over 2)" in out, out
    worse2 = make_run(runs, "worse2", samples=two(_records(40, set(range(30, 40)))))
    code, out, _ = run_cli(["gate", str(worse2), "--baseline", str(base2)], capsys, monkeypatch)
    assert code == 1 and "FAIL twitter_fin_sentiment/zero_shot" in out and "ok twitter_fin_sentiment/few_shot" in out


class OutOfMemoryError(RuntimeError):
    """torch.OutOfMemoryError's name, which is how the handler knows it (no torch import needed)."""


@pytest.mark.parametrize(
    ("failure", "said"),
    [
        (OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "out of GPU memory"),
        (MemoryError(), "out of memory"),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 40000 bytes"), "out of memory"),
    ],
)
def test_memory_running_out_is_one_line_with_what_helps(failure, said, tmp_path, capsys, monkeypatch):
    import harness.cli.results

    def exhausted(*args, **kwargs):
        raise RuntimeError("step failed") from failure

    monkeypatch.setattr(harness.cli.results, "write_reports", exhausted)
    code, _, err = run_cli(["report", str(make_run(tmp_path / "runs", "r1"))], capsys, monkeypatch)
    assert code == 2 and err.startswith(f"error: {said}: finished work is saved") and len(err.splitlines()) == 1
    assert "batch_size with a larger grad_accum" in err and "internal error" not in err


def test_too_little_memory_for_the_kv_cache_is_one_line_with_what_helps(tmp_path, capsys, monkeypatch):
    import harness.cli.results

    vllm_said = ValueError(
        "Available memory on node 0 (3.10/23.40 GiB) on kv cache allocation is less than requested memory for kv "
        "(8.00 GiB). Decrease --kv-cache-memory-bytes, VLLM_CPU_KVCACHE_SPACE, or reduce CPU memory used by other processes."
    )

    def exhausted(*args, **kwargs):
        raise RuntimeError("Engine core initialization failed") from vllm_said

    monkeypatch.setattr(harness.cli.results, "write_reports", exhausted)
    code, _, err = run_cli(["report", str(make_run(tmp_path / "runs", "r1"))], capsys, monkeypatch)
    assert code == 2 and len(err.splitlines()) == 1 and "internal error" not in err
    assert err.startswith("error: not enough free memory for the engine's KV cache: finished work is saved")
    assert "VLLM_CPU_KVCACHE_SPACE" in err
