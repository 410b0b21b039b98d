"""`harness new-task`: the written task file and template load, pass their own checks on the
placeholder fixtures and on the data, and say what was inferred; every refusal is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.authoring import scaffold
from harness.authoring.taskcheck import run_checks
from harness.taskkit import data, prompts
from harness.taskkit.registry import get_task, registry
from tests.helpers import run_cli

SMS = [("Claim your free cash prize now", "spam"), ("Lunch tomorrow at noon?", "ham"), ("You won a cruise", "spam")]


def _write(folder: Path, split: str, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _classification(folder: Path) -> None:
    rows = [{"id": f"r{i}", "message": f"{SMS[i % 3][0]} {i}", "category": SMS[i % 3][1]} for i in range(40)]
    _write(folder, "train", rows[:30])
    _write(folder, "test", rows[30:])


def _numeric(folder: Path) -> None:
    rows = [{"question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(40)]  # no id field
    _write(folder, "train", rows[:30])
    _write(folder, "validation", rows[30:])


def _multiple_choice(folder: Path) -> None:
    rows = [
        {"id": f"q{i}", "question": f"Pick option {'ABCD'[i % 4]}", "options": ["w", "x", "y", "z"], "answer": "ABCD"[i % 4]}
        for i in range(24)
    ]
    _write(folder, "train", rows[:16])
    _write(folder, "test", rows[16:])
    _write(folder, "dev", rows[16:20])


def _summaries(folder: Path) -> None:
    rows = [{"id": f"d{i}", "doc": f"Long text number {i} about topic {i}.", "summaries": [f"topic {i}"]} for i in range(20)]
    _write(folder, "train", rows[:15])
    _write(folder, "test", rows[15:])


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HARNESS_TASKS_PATH", str(tmp_path / "out" / "tasks"))
    monkeypatch.chdir(tmp_path)
    registry.cache_clear()
    yield tmp_path
    registry.cache_clear()


@pytest.mark.parametrize(
    ("make", "kind", "labels", "input_field", "splits"),
    [
        (_classification, "classification", ("ham", "spam"), "message", ("test", "train", None)),
        (_numeric, "numeric", (), "question", ("validation", "train", None)),
        (_multiple_choice, "multiple_choice", ("A", "B", "C", "D"), "question", ("test", "train", "dev")),
        (_summaries, "generation", (), "doc", ("test", "train", None)),
    ],
)
def test_written_task_loads_and_passes_its_checks(workspace, capsys, monkeypatch, make, kind, labels, input_field, splits):
    make(workspace / "data" / "mine")
    code, out, err = run_cli(["new-task", "mine", "--data", "data/mine", "--out", "out"], capsys, monkeypatch)
    assert code == 0, err
    assert f"{kind} task mine" in out and "harness check-task mine --tasks-dir out/tasks" in out
    task = get_task("mine")
    assert (task.kind, task.labels, task.input_field) == (kind, labels, input_field)
    assert (task.test_split, task.train_split, task.val_split) == splits
    assert task.templates == ("zero_shot",)
    checks = run_checks(task)
    assert all(c.ok for c in checks), [(c.name, c.detail) for c in checks if not c.ok]
    sample = data.load_split(task, task.test_split)[0]
    user = prompts.render(task, "zero_shot", sample)[-1].content
    assert str(sample.fields[input_field]) in user
    if kind == "multiple_choice":
        assert "A. w\nB. x\nC. y\nD. z" in user and sample.choices == ("w", "x", "y", "z")
    if kind == "generation":
        assert sample.references == (sample.target,)


def test_labels_json_gives_the_label_order(workspace):
    _classification(workspace / "data" / "mine")
    (workspace / "data" / "mine" / "labels.json").write_text('["spam", "ham"]')
    assert scaffold.infer("mine", workspace / "data" / "mine").labels == ("spam", "ham")


def _no_train(t: Path) -> list[str]:
    _write(t / "data" / "mine", "test", [{"id": "a", "text": "x", "label": "y"}])
    return ["new-task", "mine", "--data", str(t / "data" / "mine")]


def _no_target(t: Path) -> list[str]:
    _write(t / "data" / "mine", "train", [{"id": "a", "text": "x", "verdict": "y"}])
    _write(t / "data" / "mine", "test", [{"id": "b", "text": "x", "verdict": "y"}])
    return ["new-task", "mine", "--data", str(t / "data" / "mine")]


def _exists(t: Path) -> list[str]:
    _classification(t / "data" / "mine")
    (t / "out" / "tasks").mkdir(parents=True)
    (t / "out" / "tasks" / "mine.py").write_text("# mine\n")
    return ["new-task", "mine", "--data", str(t / "data" / "mine"), "--out", str(t / "out")]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda t: ["new-task", "Mine-1", "--data", str(t)], "must be lower-case letters"),
        (lambda t: ["new-task", "mine", "--data", str(t / "nowhere")], "is not a folder of <split>.jsonl files"),
        (_no_train, "has no train.jsonl (splits found: test)"),
        (_no_target, "cannot tell which field is the answer (fields: id, text, verdict); name it with --target"),
        (_exists, "exists; new-task never overwrites"),
    ],
)
def test_refusals_are_one_line(workspace, capsys, monkeypatch, build, message):
    monkeypatch.delenv("HARNESS_TASKS_PATH")
    code, _, err = run_cli(build(workspace), capsys, monkeypatch)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    if build is _exists:
        assert (workspace / "out" / "tasks" / "mine.py").read_text() == "# mine\n"


def _many_intents(folder: Path, with_labels: bool) -> list[str]:
    """A CLINC150-style set: 151 intents, a few rows each (written here, by rule)."""
    intents = [f"intent_{i:03d}" for i in range(151)]
    rows = [{"id": f"r{i}", "text": f"please help with {intents[i % 151]} number {i}", "intent": intents[i % 151]}
            for i in range(151 * 3)]  # fmt: skip
    _write(folder, "train", rows[: 151 * 2])
    _write(folder, "test", rows[151 * 2 :])
    if with_labels:
        (folder / "labels.json").write_text(json.dumps(list(reversed(intents))))
    return intents


def test_a_labels_file_makes_a_151_intent_set_a_classification_task(workspace, capsys, monkeypatch):
    intents = _many_intents(workspace / "data" / "clinc", with_labels=True)
    code, out, err = run_cli(["new-task", "clinc", "--data", "data/clinc", "--out", "out"], capsys, monkeypatch)
    assert code == 0, err
    task = get_task("clinc")
    assert task.kind == "classification" and task.labels == tuple(reversed(intents))  # the file's order
    assert "151 labels" in out


def test_kind_says_what_the_heuristic_cannot(workspace, capsys, monkeypatch):
    _many_intents(workspace / "data" / "clinc", with_labels=False)
    code, out, err = run_cli(["new-task", "clinc", "--data", "data/clinc", "--out", "out"], capsys, monkeypatch)
    assert code == 0 and "generation task clinc" in out and "--kind classification" in out, out + err
    for p in (workspace / "out" / "tasks" / "clinc.py", workspace / "out" / "prompts" / "clinc" / "zero_shot.j2"):
        p.unlink()
    registry.cache_clear()
    args = ["new-task", "clinc", "--data", "data/clinc", "--out", "out", "--kind", "classification"]
    code, out, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    assert get_task("clinc").kind == "classification" and len(get_task("clinc").labels) == 151


def test_a_labels_file_that_leaves_out_a_label_is_refused(workspace, capsys, monkeypatch):
    intents = _many_intents(workspace / "data" / "clinc", with_labels=False)
    (workspace / "data" / "clinc" / "labels.json").write_text(json.dumps(intents[:-1]))
    code, _, err = run_cli(["new-task", "clinc", "--data", "data/clinc", "--out", "out"], capsys, monkeypatch)
    assert code == 2 and "leaves out 1 label(s) the training data uses, e.g. 'intent_150'" in err, err
