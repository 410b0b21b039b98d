"""Property-based fuzzing of everything a user hands the harness: plans, data rows, templates and
stored results, mutated at random (wrong types, missing and extra keys, odd unicode, huge values).

The property, for every input: the CLI either succeeds or exits 2 with one line; never exit 1
(an internal error), never a traceback, and an existing results folder is byte-identical after.
The unit tier runs the seeded `ci` profile; `make fuzz` runs the long one (HYPOTHESIS_PROFILE=fuzz).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import currently_in_test_context, event, given
from hypothesis import strategies as st

from tests.helpers import run_cli, snapshot
from tests.tiny_model import make_model_dir

WORDS = {"rises": "Bullish", "soars": "Bullish", "falls": "Bearish", "slips": "Bearish", "holds": "Neutral"}


def _rows(prefix: str, n: int) -> list[dict[str, Any]]:
    # Synthetic rows made here, by rule: never rows of the real dataset.
    words = list(WORDS)
    return [{"id": f"{prefix}{i}", "text": f"$T{i} stock {words[i % 5]}", "label": WORDS[words[i % 5]]} for i in range(n)]


def _jsonl(rows: list[Any]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Data, a tiny model and one finished run, shared by every example (examples never change them)."""
    root = tmp_path_factory.mktemp("fuzz")
    data = root / "data" / "twitter_fin_sentiment"
    data.mkdir(parents=True)
    (data / "train.jsonl").write_bytes(_jsonl(_rows("tr", 40)))
    (data / "validation.jsonl").write_bytes(_jsonl(_rows("va", 20)))
    model = make_model_dir(root / "tiny")
    runs = root / "runs"
    run = runs / "base"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps(MANIFEST))
    (run / "samples.jsonl").write_bytes(_jsonl(RECORDS))
    return root, model


@pytest.fixture
def env(world, monkeypatch, tmp_path):
    root, _ = world
    monkeypatch.setenv("HARNESS_DATA_DIR", str(root / "data"))
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    return world


def check(args: list[str], capsys, monkeypatch, runs: Path, allowed: tuple[int, ...] = (0, 2)) -> tuple[int, str]:
    before = snapshot(runs)
    code, out, err = run_cli(args, capsys, monkeypatch)
    if not currently_in_test_context():
        pass
    elif code == 2:  # the statistics (make fuzz) show what the examples ran into, so a weak fuzz shows
        event(f"{args[0] if not args[0].startswith('-') else args[2]}: exit 2, " + _gist(err))
    else:
        event(f"{args[0] if not args[0].startswith('-') else args[2]}: exit {code}")
    assert "Traceback" not in out + err, err
    assert "internal error" not in err, err
    assert code in allowed, (code, out[-500:], err[-500:])
    if code == 2:
        lines = [line for line in err.strip().splitlines() if line.strip()]
        usage = any(line.startswith("Usage:") for line in lines)  # click's own usage errors add usage lines
        assert len(lines) == 1 or usage, err
    assert snapshot(runs) == before  # no existing result changed
    return code, out + err


def _gist(err: str) -> str:
    """The kind of refusal, without the values: 'task[1].seeds: list should have at least...'."""
    import re

    text = err.strip().removeprefix("error: ")
    text = re.sub(r"/\S+", "PATH", text)
    return re.sub(r"(got|id|key|setting|line) .*", r"\1 …", text)[:70]


# ---------------------------------------------------------------- values and mutations

ODD_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from(["\x00", "\n", '"', "\\", "é", "𝔘"]),
    max_size=12,
)
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | ODD_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ODD_TEXT, inner, max_size=3),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(doc: Any, draw: Any) -> Any:
    doc = json.loads(json.dumps(doc))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        key = path[-1]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[key] = draw(VALUES)
        elif action == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(ODD_TEXT.filter(bool))] = draw(VALUES)
        else:
            parent.append(draw(VALUES))
    return doc


@st.composite
def mutated(draw: Any, base: Any) -> Any:
    return _mutate(base, draw)


# ---------------------------------------------------------------- plans


def toml_value(v: Any) -> str:
    if v is None:
        raise ValueError("TOML has no null")
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v if x is not None) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items() if x is not None) + "}"


def toml(doc: Any) -> str:
    """Inline TOML for a plan-shaped document (None values are left out, as TOML has no null)."""
    if not isinstance(doc, dict):
        return f"x = {toml_value(doc)}\n"
    return "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in doc.items() if v is not None)


def base_plan(model: Path) -> dict[str, Any]:
    return {
        "name": "fz", "model": str(model), "limit": 10, "seed": 0, "val_limit": 5,
        "prices": {"device_usd_per_hour": 2.0, "usd_per_1k_prompt_tokens": 0.0},
        "task": [{
            "name": "twitter_fin_sentiment",
            "variants": [{"template": "zero_shot"}, {"template": "few_shot", "shots": 2, "selection": "balanced"},
                         {"name": "c", "template": "zero_shot", "constrained": True, "cue": "Answer:"}],
            "train_sizes": [8], "seeds": [0, 1], "train": {"lr": 1e-3, "epochs": 1, "rank": 4},
            "sweep": {"lr": [1e-3, 3e-3], "trials": 1, "method": "grid"},
            "prompt_search": {"shots": [0, 2], "label_order": ["given", "reversed"], "trials": 2},
            "retention": [],
        }],
    }  # fmt: skip


@given(data=st.data())
def test_fuzzed_plans_are_accepted_or_refused_in_one_line(env, capsys, monkeypatch, data):
    root, model = env
    plan = data.draw(mutated(base_plan(model)))
    path = Path("plan.toml")
    path.write_text(toml(plan), encoding="utf-8", errors="surrogatepass")
    args = ["compare", "--plan", str(path), "--dry-run", "--backend", "fake", "--results", str(root / "runs")]
    check(args, capsys, monkeypatch, root / "runs")


def test_the_unmutated_plan_passes_the_dry_run(env, capsys, monkeypatch):
    root, model = env
    Path("plan.toml").write_text(toml(base_plan(model)))
    args = ["compare", "--plan", "plan.toml", "--dry-run", "--backend", "fake", "--results", str(root / "runs")]
    code, out = check(args, capsys, monkeypatch, root / "runs")
    assert code == 0 and "checks passed" in out  # the mutations start from a plan that really runs


# ---------------------------------------------------------------- data rows


@st.composite
def data_file(draw: Any) -> bytes:
    rows: list[Any] = _rows("va", 6)
    rows = draw(mutated(rows))
    raw = _jsonl(rows)
    if draw(st.booleans()):  # byte-level damage: an inserted byte, a cut, a BOM
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.sampled_from([b"\xff", b"\x00", b"\xef\xbb\xbf", b"", b"{", b"\n\n"])) + raw[at:]
    return raw


@given(content=data_file())
def test_fuzzed_data_rows_are_accepted_or_refused_in_one_line(env, capsys, monkeypatch, tmp_path, content):
    root, _ = env
    data = tmp_path / "d"
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(root / "data", data)
    (data / "twitter_fin_sentiment" / "validation.jsonl").write_bytes(content)
    monkeypatch.setenv("HARNESS_DATA_DIR", str(data))
    check(["preview", "twitter_fin_sentiment", "-n", "3"], capsys, monkeypatch, root / "runs")
    check(["data-check", "twitter_fin_sentiment"], capsys, monkeypatch, root / "runs")


# ---------------------------------------------------------------- templates

TOY = """from harness.tasks import Task
from harness.types import Sample

TASK = Task(name="toy", version=1, domain="toy", kind="classification", description="",
            to_sample=lambda r: Sample(id=r["id"], fields={"text": r["text"]}, target=r["label"]),
            test_split="validation", train_split="train", metrics=("accuracy",), labels=("Bullish", "Bearish", "Neutral"))
"""
PIECES = st.sampled_from([
    "{{ text }}", "{{ labels | join(', ') }}", "{% for l in labels %}{{ l }}{% endfor %}", "{{ ", " }}", "{% if ",
    "{% endif %}", "{% set max_tokens = ", "{% set completion = 'cot' %}", "{% set system = 'Be brief.' %}", "{{ 1/0 }}",
    "{{ text.upper() }}", "{{ nothing }}", "{{ text | nofilter }}", "{% raw %}", "{# #}", "Answer:", "\n", "é𝔘",
])  # fmt: skip


@given(pieces=st.lists(PIECES | ODD_TEXT, max_size=6))
def test_fuzzed_templates_are_accepted_or_refused_in_one_line(env, capsys, monkeypatch, tmp_path, pieces):
    root, _ = env
    extra = tmp_path / "extra"
    (extra / "tasks").mkdir(parents=True, exist_ok=True)
    (extra / "prompts" / "toy").mkdir(parents=True, exist_ok=True)
    (extra / "tasks" / "toy.py").write_text(TOY)
    (extra / "prompts" / "toy" / "zero_shot.j2").write_text("".join(pieces), encoding="utf-8", errors="surrogatepass")
    shutil.copytree(root / "data" / "twitter_fin_sentiment", tmp_path / "data" / "toy", dirs_exist_ok=True)
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "data"))
    for shots in ("0", "2"):
        args = ["--tasks-dir", str(extra / "tasks"), "preview", "toy", "--shots", shots, "-n", "2"]
        check(args, capsys, monkeypatch, root / "runs")


# ---------------------------------------------------------------- sandbox escapes and runaway templates

CANARY = "canary-5d1e-never-in-output"
# SECRET, REL and MARKER are filled in per example: a file to steal, its path relative to the
# template's folder, and a file a command would create
ESCAPES = [
    "{{ cycler.__init__.__globals__.__builtins__.open('SECRET').read() }}",
    "{{ self.__init__.__globals__['__builtins__']['__import__']('os').system('touch MARKER') }}",
    "{{ lipsum.__globals__['os'].popen('cat SECRET').read() }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ text.__class__.__base__.__subclasses__() }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ joiner.__call__.__globals__ }}",
    "{{ range.__self__.open('SECRET').read() }}",
    "{{ labels.__class__.__mro__ }}",
    "{{ ''|attr('__class__') }}",
    "{{ '{0.__class__.__init__.__globals__}'.format(cycler) }}",
    "{{ self._TemplateReference__context }}",
    "{% set x = labels.append('x') %}",
    "{% set d = {} %}{{ d.update({'a': 1}) }}",
    "{% include 'REL' %}",
    "{% include 'SECRET' %}",
    "{% import '../../../../etc/hostname' as h %}",
    "{% extends 'REL' %}",
    "{% from 'REL' import x %}",
    "{% include ['nope.j2', 'REL'] %}",
    "{{ cycler.next.__func__.__globals__ }}",
    "{{ dict(a=1).items.__self__.__class__ }}",
]
RUNAWAYS = [
    "{% for i in range(10**9) %}x{% endfor %}",
    "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
    "{% for a in labels %}{% for b in range(99999) %}{% for c in range(99999) %}{% endfor %}{% endfor %}{% endfor %}",
    "{{ 'a' * 10**12 }}",
    "{{ text * 10**9 }}",
    "{{ 9 ** 9 ** 99 }}",
    "{{ 2 ** (10**9) }}",
    "{% set ns = namespace(s=text) %}{% for i in range(80) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "{% set ns = namespace(s=text) %}{% for i in range(80) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "{% set ns = namespace(l=[text]) %}{% for i in range(80) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l }}",
    "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "{% include 'zero_shot.j2' %}",
    "{{ (text * 1000)|replace('', text * 1000) }}",
    "{{ 'x'|center(10**11) }}",
    "{{ '%099999999999d'|format(1) }}",
    "{{ '{:>99999999999}'.format(1) }}",
    "{{ ('a' * 5000 + '!')|regex_replace('(a+)+$', '') }}",
    "{% for i in range(99999) %}{{ labels|join(', ') }}{% endfor %}",
    "{{ [1]|batch(10**10, 'x')|list }}",
    "{{ [[1]] * 99999 | sum(start=[]) }}",
    "{{ range(99999)|list|map('string')|join(text * 99999) }}",
]
SANDBOX_LIMIT_S = 0.3


@given(pieces=st.lists(PIECES | st.sampled_from(ESCAPES) | st.sampled_from(RUNAWAYS), min_size=1, max_size=4))
def test_fuzzed_escapes_and_runaways_neither_escape_nor_hang(env, capsys, monkeypatch, tmp_path, pieces):
    from harness.taskkit import sandbox

    root, _ = env
    monkeypatch.setattr(sandbox, "RENDER_SECONDS", SANDBOX_LIMIT_S)
    secret, marker = tmp_path / "secret.txt", tmp_path / "ran"
    secret.write_text(CANARY)
    marker.unlink(missing_ok=True)
    extra = tmp_path / "extra"
    folder = extra / "prompts" / "toy"
    folder.mkdir(parents=True, exist_ok=True)
    (extra / "tasks").mkdir(exist_ok=True)
    (extra / "tasks" / "toy.py").write_text(TOY)
    rel = "/".join([".."] * len(folder.parts)) + str(secret)
    body = "".join(pieces).replace("SECRET", str(secret)).replace("REL", rel).replace("MARKER", str(marker))
    (folder / "zero_shot.j2").write_text(body)
    shutil.copytree(root / "data" / "twitter_fin_sentiment", tmp_path / "data" / "toy", dirs_exist_ok=True)
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "data"))
    for shots in ("0", "2"):
        t0 = time.perf_counter()
        args = ["--tasks-dir", str(extra / "tasks"), "preview", "toy", "--shots", shots, "-n", "2"]
        code, out = check(args, capsys, monkeypatch, root / "runs")
        # a render is stopped after SANDBOX_LIMIT_S (and each refusal is one line): no example hangs
        assert time.perf_counter() - t0 < 20 * SANDBOX_LIMIT_S + 5, pieces
        assert CANARY not in out, pieces  # check() saw the error stream: nothing of the file there either
        assert not marker.exists(), pieces
        if any(p in ESCAPES for p in pieces):
            assert code == 2, (pieces, out[-300:])


# ---------------------------------------------------------------- stored results

MANIFEST = {
    "run_id": "base", "model": "m", "backend": "fake", "seed": 0, "prices": {},
    "tasks": {"twitter_fin_sentiment": {"metrics": ["accuracy", "macro_f1"], "labels": ["Bearish", "Bullish", "Neutral"],
                                        "kind": "classification", "adapters": {}}},
}  # fmt: skip
RECORDS = [
    {"task": "twitter_fin_sentiment", "item": f"i{i}", "variant": v, "prediction": p, "gold": "Bullish",
     "scores": {"correct": float(p == "Bullish")}, "prompt_tokens": 10, "completion_tokens": 1, "latency_s": 0.01}
    for i in range(6) for v, p in (("zero_shot", "Bullish"), ("few_shot", "Bearish" if i % 2 else "Bullish"))
]  # fmt: skip


@given(data=st.data())
def test_fuzzed_stored_results_are_reported_or_refused_in_one_line(env, capsys, monkeypatch, tmp_path, data):
    root, _ = env
    run = tmp_path / "runs" / "fz"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    which = data.draw(st.sampled_from(["manifest", "records"]))
    manifest = data.draw(mutated(MANIFEST)) if which == "manifest" else MANIFEST
    records = data.draw(mutated(RECORDS)) if which == "records" else RECORDS
    (run / "manifest.json").write_text(json.dumps(manifest))
    (run / "samples.jsonl").write_bytes(_jsonl(records if isinstance(records, list) else [records]))
    check(["report", str(run), "--out", str(tmp_path / "out")], capsys, monkeypatch, tmp_path / "runs")
    # the gate may rightly fail (exit 1) on a regression; never with an internal error
    check(["gate", str(run), "--baseline", str(root / "runs" / "base")], capsys, monkeypatch, tmp_path / "runs", (0, 1, 2))
