"""Every registered task, on hand-written fixture rows: templates render, gold scores 1, wrong 0."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace

import pytest

from harness.authoring.taskcheck import run_checks
from harness.core.errors import UserError
from harness.taskkit import data, prompts
from harness.taskkit.registry import all_tasks, get_task, registry


def test_six_builtin_tasks():
    assert {"banking77", "twitter_fin_sentiment", "contract_nli", "medmcqa", "gsm8k", "scitldr"} <= set(all_tasks())
    for name in ("banking77", "twitter_fin_sentiment", "contract_nli", "medmcqa", "gsm8k", "scitldr"):
        task = get_task(name)
        assert task.version >= 1
        assert {"zero_shot", "few_shot"} <= set(task.templates)
    for name in ("gsm8k", "medmcqa", "contract_nli"):
        assert "cot" in get_task(name).templates


def pytest_generate_tests(metafunc):
    # every registered task: built-in, and those of `pytest --tasks-dir DIR` / HARNESS_TASKS_PATH
    if "task_name" in metafunc.fixturenames:
        registry.cache_clear()
        metafunc.parametrize("task_name", sorted(registry(())))


def test_task_checks(task_name):
    """The checks `harness check-task` runs, on the task's own fixture rows: whatever templates it
    ships render with and without shots, gold answers score 1, its wrong answer scores 0, training
    pairs build."""
    checks = run_checks(get_task(task_name), with_data=False)
    failed = [f"{c.name}: {c.detail}" for c in checks if c.ok is False]
    assert not failed, failed
    assert [c.name for c in checks if c.ok] == [
        "fixtures", "fixture rows load", "templates render", "gold answers score 1", "a wrong answer scores 0",
        "training pairs build",
    ]  # fmt: skip


def test_cot_training_targets_end_in_the_answer(fixture_data):
    task = get_task("gsm8k")
    for s in data.load_split(task, task.train_split):
        _messages, completion = prompts.training_pair(task, "cot", s)
        assert completion.endswith(f"The answer is {s.target}.") and "<<" not in completion


def test_task_dropped_into_tasks_dir_is_picked_up(tmp_path, monkeypatch):
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    (tmp_path / "prompts" / "toy_yesno").mkdir(parents=True)
    (tasks_dir / "toy_yesno.py").write_text(
        "from harness.tasks import Task\nfrom harness.types import Sample\n"
        "TASK = Task(name='toy_yesno', version=1, domain='toy', kind='classification', description='yes/no',\n"
        "    to_sample=lambda r: Sample(id=r['id'], fields={'text': r['text']}, target=r['label']),\n"
        "    test_split='test', train_split='train', metrics=('accuracy',), labels=('yes', 'no'))\n"
    )
    (tmp_path / "prompts" / "toy_yesno" / "zero_shot.j2").write_text("Answer yes or no: {{ text }}")
    monkeypatch.setenv("HARNESS_TASKS_PATH", str(tasks_dir))
    registry.cache_clear()
    try:
        task = get_task("toy_yesno")
        assert task.templates == ("zero_shot",)
        from harness.core.types import Sample

        msgs = prompts.render(task, "zero_shot", Sample("1", {"text": "Is water wet?"}, "yes"))
        assert msgs[-1].content == "Answer yes or no: Is water wet?"
    finally:
        monkeypatch.delenv("HARNESS_TASKS_PATH")
        registry.cache_clear()


def test_task_name_must_equal_file_name(tmp_path, monkeypatch):
    (tmp_path / "wrong.py").write_text(
        "from harness.tasks import Task\nTASK = Task(name='other', version=1, domain='x', kind='generation',\n"
        " description='', to_sample=dict, test_split='t', train_split='t', metrics=('rougeL',))\n"
    )
    monkeypatch.setenv("HARNESS_TASKS_PATH", str(tmp_path))
    registry.cache_clear()
    try:
        with pytest.raises(UserError, match="must equal the file name"):
            all_tasks()
    finally:
        monkeypatch.delenv("HARNESS_TASKS_PATH")
        registry.cache_clear()


def test_unknown_task_suggests_closest():
    with pytest.raises(UserError, match="did you mean banking77"):
        get_task("banking76")


def test_unknown_template_suggests_closest():
    with pytest.raises(UserError, match="did you mean few_shot"):
        prompts.load_template(get_task("banking77"), "few_shots")


def test_missing_field_names_template_field_and_row(tmp_path):
    task = get_task("twitter_fin_sentiment")
    d = tmp_path / "p"
    d.mkdir()
    (d / "zero_shot.j2").write_text("{{ tweet_text }}")
    broken = replace(task, prompts_dir=d)
    from harness.core.types import Sample

    with pytest.raises(UserError, match=r"zero_shot\.j2.*tweet_text.*row r1"):
        prompts.render(broken, "zero_shot", Sample("r1", {"text": "x"}, "Bullish"))


def test_harness_tasks_is_fast():
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "from harness.cli import main; import sys; sys.argv=['harness','tasks']; main()"],
        check=True,
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "HARNESS_DATA_DIR": "/nonexistent"},
    )
    # one interpreter start plus imports; the registry itself does no I/O beyond importing task files
    assert time.perf_counter() - start < 5.0


def test_a_task_named_like_a_builtin_is_refused(tmp_path, monkeypatch):
    (tmp_path / "banking77.py").write_text(
        "from harness.tasks import Task\nTASK = Task(name='banking77', version=1, domain='x', kind='generation',\n"
        " description='', to_sample=dict, test_split='t', train_split='t', metrics=('rougeL',))\n"
    )
    monkeypatch.setenv("HARNESS_TASKS_PATH", f"{tmp_path}:{tmp_path}")  # one folder named twice is fine...
    registry.cache_clear()
    try:
        with pytest.raises(UserError, match=r"banking77.py names a task that .*tasks/banking77.py already defines"):
            all_tasks()  # ...but a second banking77 is not
    finally:
        monkeypatch.delenv("HARNESS_TASKS_PATH")
        registry.cache_clear()
