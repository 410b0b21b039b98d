"""Every check of a comparison that needs no model, in the order a user would fix them: a mistake
must not wait for a model pull or a training run (`compare --dry-run` stops here). What the checks
establish comes back as one bundle per task: its items, validation items, shot pool and prompt
search space, and the run folder the whole identity names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.files import cache_root, check_writable
from harness.core.identity import check_run_id, digest
from harness.core.types import Sample
from harness.engines.backends.factory import check_backend
from harness.engines.models import parse_spec
from harness.experiment import prompt_search as ps
from harness.experiment.checks import check_templates, check_variants
from harness.experiment.format_spread import check_perturbable
from harness.experiment.manifest import retention_info, run_identity
from harness.experiment.plan import Plan, TaskPlan
from harness.experiment.search import Space
from harness.taskkit import data
from harness.taskkit.registry import Task, get_task
from harness.train.config import from_mapping
from harness.train.recipe import split_train_val


@dataclass(frozen=True)
class TaskBundle:
    """One task of the plan with everything its comparison is made on."""

    plan: TaskPlan  # its arms (variants), training sizes, seeds, searches
    task: Task
    items: tuple[Sample, ...]  # the test items every arm is scored on
    validation: tuple[Sample, ...]  # the items every selection is made on
    pool: tuple[Sample, ...]  # training rows: shots and adapters come from here only
    space: Space | None  # the prompt search's space, when the plan searches prompts
    retention: dict[str, dict[str, Any]]  # other tasks the adapters are scored on, and their facts

    @property
    def name(self) -> str:
        return self.task.name


@dataclass(frozen=True)
class Preflight:
    bundles: tuple[TaskBundle, ...]
    identity: dict[str, Any]  # everything that decides the run's records (harness.core.identity)
    run_dir: Path


def preflight(plan: Plan, results_root: Path, backend_kind: str, run_id: str | None, options: dict[str, Any]) -> Preflight:
    if run_id is not None:
        check_run_id(run_id)
    parse_spec(plan.model)  # a misspelt model name, before anything is read
    check_writable(results_root)
    # the cache takes the model, adapters and answers: found unwritable after a model download before
    check_writable(cache_root(), "the harness cache (HARNESS_CACHE)")
    check_backend(backend_kind, options)
    tasks = {tp.name: get_task(tp.name) for tp in plan.tasks}
    items = {tp.name: data.test_items(tasks[tp.name], plan.limit, plan.seed) for tp in plan.tasks}
    pools = {tp.name: data.shot_pool(tasks[tp.name]) for tp in plan.tasks}
    for tp in plan.tasks:
        if not pools[tp.name]:  # every row duplicates a test item, or too few: the carve-out's refusal says which
            data.validation_items(tasks[tp.name], plan.val_limit)
    for tp in plan.tasks:
        task = tasks[tp.name]
        check_templates(task, (items[tp.name], pools[tp.name]))
        check_variants(
            task, tp.variants, pools[tp.name], items[tp.name], greedy_only=backend_kind == "hf",
            scores_labels=backend_kind != "openai",
        )  # fmt: skip
        if tp.formats:
            check_perturbable(task, items[tp.name])
    val_items = {tp.name: data.validation_items(tasks[tp.name], plan.val_limit) for tp in plan.tasks}
    spaces = {tp.name: prompt_space(tp, tasks[tp.name], pools[tp.name]) for tp in plan.tasks if tp.prompt_search}
    for tp in plan.tasks:
        task = tasks[tp.name]
        labelled = task.kind in ("classification", "multiple_choice")
        for size in tp.train_sizes:
            for seed in tp.seeds:
                cfg = from_mapping({**tp.train, "task": tp.name, "model": plan.model, "train_size": size, "seed": seed})
                split_train_val(cfg, data.load_split(task, task.train_split), labelled)
    # the retention tasks' data too: a missing split must not surface after the adapters trained
    retention = {tp.name: {r: retention_info(r, plan.limit, plan.seed) for r in tp.retention} for tp in plan.tasks}
    identity = run_identity(plan, backend_kind, options, items, pools, val_items, retention)
    bundles = tuple(
        TaskBundle(
            tp, tasks[tp.name], items[tp.name], val_items[tp.name], pools[tp.name], spaces.get(tp.name), retention[tp.name]
        )
        for tp in plan.tasks
    )
    return Preflight(bundles, identity, results_root / (run_id or f"{plan.name}-{digest(identity)}"))


def prompt_space(tp: TaskPlan, task: Task, pool: tuple[Sample, ...]) -> Space:
    """The plan's prompt search space, or the task's default one."""
    raw = tp.prompt_search.get("space") or ps.default_space(task, len(pool))
    return ps.parse_space(task, raw, len(pool))
