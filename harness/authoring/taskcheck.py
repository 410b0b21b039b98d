"""`harness check-task`: the checks a task carries with it, run on its own fixture rows (and on the
first rows of its data when they are at hand). The test suite runs the same checks for every
registered task, built-in or found through --tasks-dir / HARNESS_TASKS_PATH."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.core.errors import UserError
from harness.core.types import Sample
from harness.taskkit import data, metrics, prompts, scoring
from harness.taskkit.registry import Task

DATA_ROWS = 20  # rows of each local split the data check renders


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: not run (said why in `detail`)
    detail: str


def run_checks(task: Task, with_data: bool = True) -> list[Check]:
    checks = [_fixtures_present(task)]
    if checks[0].ok:
        test = _attempt(lambda: data.fixture_samples(task, task.test_split))
        train = _attempt(lambda: data.fixture_samples(task, task.train_split))
        if isinstance(test, str) or isinstance(train, str):
            checks.append(Check("fixture rows load", False, str(test if isinstance(test, str) else train)))
        else:
            checks.append(Check("fixture rows load", True, f"{len(test)} test, {len(train)} train rows"))
            checks += [
                _check("templates render", lambda: _render_all(task, test, train)),
                _check("gold answers score 1", lambda: _gold_scores(task, test)),
                _check("a wrong answer scores 0", lambda: _wrong_scores(task, test)),
                _check("training pairs build", lambda: _training_pairs(task, train)),
            ]
    checks.append(_data_check(task) if with_data else Check("data", None, "not asked for"))
    return checks


def _fixtures_present(task: Task) -> Check:
    fx = task.fixtures
    if fx is None:
        return Check(
            "fixtures",
            False,
            f"the task file defines no fixtures: add fixtures=Fixtures(rows={{'{task.test_split}': [...], "
            f"'{task.train_split}': [...]}}, wrong='...') with a few rows you write by hand",
        )
    missing = [s for s in (task.test_split, task.train_split) if s not in fx.rows]
    if missing:
        return Check("fixtures", False, f"fixtures have no {' or '.join(repr(m) for m in missing)} rows")
    return Check("fixtures", True, ", ".join(f"{k} {len(v)}" for k, v in fx.rows.items()))


def _attempt(fn: Callable[[], tuple[Sample, ...]]) -> tuple[Sample, ...] | str:
    try:
        return fn()
    except UserError as exc:
        return str(exc)


def _check(name: str, fn: Callable[[], str]) -> Check:
    try:
        return Check(name, True, fn())
    except (UserError, AssertionError) as exc:
        return Check(name, False, str(exc))


def _render_all(task: Task, test: Sequence[Sample], train: Sequence[Sample]) -> str:
    if not task.templates:
        raise UserError(f"no templates in {task.prompts_dir}")
    shots = tuple(train[:2])
    for template in task.templates:
        for s in test:
            for k in (0, len(shots)):
                messages = prompts.render(task, template, s, shots[:k])
                roles = [m.role for m in messages if m.role != "system"]
                if roles != ["user", "assistant"] * k + ["user"]:
                    raise AssertionError(f"{template}.j2 with {k} shots gives turns {roles}")
                if not messages[-1].content.strip():
                    raise AssertionError(f"{template}.j2 renders an empty user turn for row {s.id}")
    return f"{len(task.templates)} template(s): {', '.join(task.templates)}; 0 and {len(shots)} shots"


def _key(task: Task) -> str:
    return metrics.score_key(task.primary_metric)


def _gold_scores(task: Task, test: Sequence[Sample]) -> str:
    for template in task.templates:
        style = prompts.render_turn(task, template, test[0]).style
        for s in test:
            gold = task.completion(s, style)
            got = scoring.score(task, scoring.extract(task, gold, s), s)[_key(task)]
            if got < 1.0 - 1e-9:
                raise AssertionError(
                    f"the gold completion {gold!r} of row {s.id} scores {got:g} (answer read from it: "
                    f"{scoring.extract(task, gold, s)!r}); the scorer cannot read the task's own answers"
                )
    return f"{len(test)} row(s) x {len(task.templates)} template(s)"


def _wrong_scores(task: Task, test: Sequence[Sample]) -> str:
    assert task.fixtures is not None
    for s in test:
        got = scoring.score(task, scoring.extract(task, task.fixtures.wrong, s), s)[_key(task)]
        if got >= 0.5:
            raise AssertionError(f"the wrong answer {task.fixtures.wrong!r} scores {got:g} on row {s.id}")
    return f"{task.fixtures.wrong!r} scores below 0.5 on every test row"


def _training_pairs(task: Task, train: Sequence[Sample]) -> str:
    for s in train:
        messages, completion = prompts.training_pair(task, task.adapter_template, s)
        if messages[-1].role != "user" or not completion.strip():
            raise AssertionError(f"row {s.id}: the training pair does not end in a user turn with a completion")
    return f"{len(train)} pair(s) with template {task.adapter_template}"


def _data_check(task: Task) -> Check:
    """The real data's rows load (every row) and every template renders on the first ones."""
    try:
        root = data.data_dir()
    except UserError as exc:
        return Check("data", False, str(exc))
    splits = [s for s in dict.fromkeys((task.test_split, task.train_split, task.val_split)) if s]
    if root is None or all(data.local_path(task, s) is None for s in splits):
        where = f"{root}/{task.name}/" if root else "HARNESS_DATA_DIR (unset)"
        return Check("data", None, f"not checked: no local data in {where}")
    try:
        counts = []
        for split in splits:
            if data.local_path(task, split) is None:
                raise UserError(f"{root}/{task.name}/{split}.jsonl is missing")
            rows = data.load_split(task, split)
            for template in task.templates:
                for s in rows[:DATA_ROWS]:
                    prompts.render_turn(task, template, s)
            counts.append(f"{split} {len(rows)}")
    except UserError as exc:
        return Check("data", False, str(exc))
    return Check("data", True, f"{', '.join(counts)} rows load; templates render on the first {DATA_ROWS}")
