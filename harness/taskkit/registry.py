"""The Task dataclass and the registry that finds one `TASK` per file in tasks/*.py."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from harness.core.errors import UserError, closest
from harness.core.identity import check_shown_name
from harness.core.types import Sample

KINDS = ("classification", "multiple_choice", "numeric", "generation", "short_answer")


@dataclass(frozen=True)
class HubSource:
    """Where users with hub access get the data; `row_map` turns a hub row into the local schema."""

    path: str
    config: str | None
    splits: Mapping[str, str]  # local split name -> hub split name
    row_map: Callable[[dict[str, Any]], dict[str, Any]] = dict
    data_files: Mapping[str, str] | None = None  # with path "json" or "csv": hub split name -> file or URL
    # a commit, tag or branch of the dataset's repository: unpinned, a later run may read rows the
    # dataset's owner changed since (the manifest's data hash tells, after the fact)
    revision: str | None = None


@dataclass(frozen=True)
class AnswerRule:
    """How a `short_answer` task reads and compares an answer: lm-evaluation-harness's regex filter
    (the answer is the selected match, its first non-empty group) and exact_match's options, which
    apply to the answer and the gold alike."""

    pattern: str | None = None  # without one the whole output is the answer
    group_select: int = 0  # which match when there are several; -1 the last
    ignore_case: bool = False
    ignore_punctuation: bool = False
    regexes_to_ignore: tuple[str, ...] = ()


@dataclass(frozen=True)
class Fixtures:
    """Hand-written rows that travel with a task file: `harness check-task` and the test suite
    render every template on them, score the gold answers and a wrong one, build training pairs."""

    rows: Mapping[str, Sequence[Mapping[str, Any]]]  # split -> rows in the data's own schema
    wrong: str  # an answer that must score below 0.5 on every test row


@dataclass(frozen=True)
class Task:
    name: str
    version: int
    domain: str
    kind: str
    description: str
    to_sample: Callable[[dict[str, Any]], Sample]
    test_split: str
    train_split: str
    metrics: tuple[str, ...]
    labels: tuple[str, ...] = ()  # label set (classification) or option letters (multiple choice)
    hub: HubSource | None = None
    max_tokens: int = 16  # answer budget for direct templates
    cot_max_tokens: int = 256
    required_fields: tuple[str, ...] = ()  # local-schema fields every row must have
    input_field: str = "text"  # what `similar` few-shot selection and overlap checks compare
    adapter_template: str = "zero_shot"  # the prompt an adapter is trained and served with
    val_split: str | None = None  # a dev split to select on; without one, a carve-out of train_split
    fixtures: Fixtures | None = None  # hand-written rows for `harness check-task` and the tests
    answer_rule: AnswerRule = AnswerRule()  # short_answer tasks: how the answer is read and compared
    # a sample field naming the source items share (contract_nli: the contract); its items are not
    # independent, so intervals and tests resample those sources (clustered), not items
    cluster_field: str | None = None
    prompts_dir: Path | None = None  # filled in by the registry

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]

    @property
    def templates(self) -> tuple[str, ...]:
        if self.prompts_dir is None or not self.prompts_dir.is_dir():
            return ()
        return tuple(sorted(p.stem for p in self.prompts_dir.glob("*.j2") if not p.stem.startswith("_")))

    def completion(self, sample: Sample, style: str = "answer") -> str:
        """The gold assistant turn: what few-shot examples show and what training teaches."""
        if style == "cot":
            reasoning = (sample.rationale or "").strip()
            return f"{reasoning}\nThe answer is {sample.target}." if reasoning else f"The answer is {sample.target}."
        return sample.target


def builtin_dir(name: str) -> Path:
    here = Path(__file__).resolve().parents[1]  # the harness package
    for candidate in (here.parent / name, here / "_builtin" / name):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"built-in {name}/ folder not found next to the harness package")


def task_dirs(extra: tuple[str, ...] = ()) -> tuple[Path, ...]:
    env = tuple(p for p in os.environ.get("HARNESS_TASKS_PATH", "").split(os.pathsep) if p)
    return (builtin_dir("tasks"), *(Path(p) for p in (*env, *extra)))


def _prompts_for(tasks_dir: Path, name: str) -> Path:
    for candidate in (tasks_dir.parent / "prompts" / name, tasks_dir / "prompts" / name):
        if candidate.is_dir():
            return candidate
    if tasks_dir == builtin_dir("tasks"):
        return builtin_dir("prompts") / name
    return tasks_dir.parent / "prompts" / name


def _load_file(path: Path) -> Task:
    module_name = f"harness_task_{path.stem}_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"cannot import task file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise UserError(f"task file {path} failed to import: {type(exc).__name__}: {exc}") from None
    task = getattr(module, "TASK", None)
    if not isinstance(task, Task):
        raise UserError(f"task file {path} must define TASK = Task(...)")
    if task.name != path.stem:
        raise UserError(f"task file {path} defines TASK named {task.name!r}; it must equal the file name")
    if task.kind not in KINDS:
        raise UserError(f"task {task.name}: kind {task.kind!r} is not one of {', '.join(KINDS)}")
    check_shown_name(task.name, f"task file {path}: name")
    for label in task.labels:  # labels are printed in prompts, tables and verdicts
        check_shown_name(label, f"task file {path}: label")
    return task


@cache
def registry(extra_dirs: tuple[str, ...] = ()) -> dict[str, Task]:
    found: dict[str, Task] = {}
    origin: dict[str, Path] = {}
    seen_dirs: set[Path] = set()
    for d in task_dirs(extra_dirs):
        if not d.is_dir():
            raise UserError(f"tasks folder not found: {d}")
        if d.resolve() in seen_dirs:  # the same folder named twice (env and --tasks-dir) is one folder
            continue
        seen_dirs.add(d.resolve())
        for path in sorted(d.glob("*.py")):
            if path.name.startswith("_"):
                continue
            task = _load_file(path)
            if task.name in found:  # a silent replacement would score another task under a known name
                raise UserError(f"task file {path} names a task that {origin[task.name]} already defines; rename one")
            found[task.name] = replace(task, prompts_dir=_prompts_for(d, task.name))
            origin[task.name] = path
            for template in found[task.name].templates:  # template names become variant names
                check_shown_name(template, f"task {task.name}: template")
    return found


_extra: list[str] = []


def set_extra_dirs(dirs: list[str]) -> None:
    """CLI `--tasks-dir`: folders searched after the built-in one and HARNESS_TASKS_PATH."""
    _extra[:] = dirs


def add_extra_dirs(dirs: list[str]) -> None:
    _extra.extend(d for d in dirs if d not in _extra)


def all_tasks() -> dict[str, Task]:
    return registry(tuple(_extra))


def file_for(name: str) -> Path | None:
    """The task file that defines NAME in any task folder that exists (a file's name is its task's),
    found without importing one: a folder that is missing or holds a broken file does not matter here."""
    for d in task_dirs(tuple(_extra)):
        if (d / f"{name}.py").is_file():
            return d / f"{name}.py"
    return None


def get_task(name: str) -> Task:
    tasks = all_tasks()
    if name not in tasks:
        hint = closest(name, list(tasks))
        raise UserError(
            f"unknown task {name!r}{hint} (known: {', '.join(sorted(tasks))}); a task of your own is a file "
            f"<dir>/{name}.py defining TASK, found with --tasks-dir <dir> or HARNESS_TASKS_PATH "
            f"(`harness new-task {name} --data FOLDER` writes one)"
        )
    return tasks[name]


def stable_id(prefix: str, text: str) -> str:
    """A row id that is the same in every process (Python's hash() is salted per process)."""

    return f"{prefix}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
