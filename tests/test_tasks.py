"""Every registered task, on hand-written fixture rows: templates render, gold scores 1, wrong 0."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace

import pytest

from harness import data, prompts, scoring
from harness.errors import UserError
from harness.tasks import all_tasks, get_task, registry
from tests.fixtures import WRONG

TASKS = sorted(all_tasks())


def test_six_builtin_tasks():
    assert {"banking77", "twitter_fin_sentiment", "contract_nli", "medmcqa", "gsm8k", "scitldr"} <= set(TASKS)
    for name in TASKS:
        task = get_task(name)
        assert task.version >= 1
        assert {"zero_shot", "few_shot"} <= set(task.templates)
    for name in ("gsm8k", "medmcqa", "contract_nli"):
        assert "cot" in get_task(name).templates


@pytest.mark.parametrize("name", TASKS)
def test_templates_render_and_gold_scores_one(name, fixture_data):
    task = get_task(name)
    test = data.load_split(task, task.test_split)
    pool = data.load_split(task, task.train_split)
    for template in task.templates:
        for s in test:
            messages = prompts.render(task, template, s, pool[:2])
            assert messages[-1].role == "user" and messages[-1].content.strip()
            assert [m.role for m in messages if m.role != "system"] == ["user", "assistant"] * 2 + ["user"]
            style = prompts.render_turn(task, template, s).style
            gold = task.completion(s, style)
            assert scoring.score(task, scoring.extract(task, gold, s), s)[_key(task)] == pytest.approx(1.0)
            wrong = scoring.extract(task, WRONG[name], s)
            assert scoring.score(task, wrong, s)[_key(task)] < 0.5


def _key(task):
    return "rougeL" if task.kind == "generation" else "correct"


@pytest.mark.parametrize("name", TASKS)
def test_training_pairs_build(name, fixture_data):
    task = get_task(name)
    for s in data.load_split(task, task.train_split):
        messages, completion = prompts.training_pair(task, task.adapter_template, s)
        assert completion.strip() and messages[-1].role == "user"
        if task.kind == "numeric" and task.adapter_template == "cot":
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
        from harness.types import Sample

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
    from harness.types import Sample

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
