"""Experiment plans: experiments/*.toml (flat), or a task's default plan.

name = "demo"
model = "smollm2-135m-instruct"
limit = 200                # test items per task (seeded subset)
[prices]
device_usd_per_hour = 2.0
[[task]]
name = "banking77"
train_sizes = [256, 1024]  # one adapter per size and seed: the learning curve
seeds = [0]
variants = [{name = "zero_shot", template = "zero_shot"},
            {name = "few_shot_8", template = "few_shot", shots = 8, selection = "balanced"}]
[task.train]               # any TrainConfig field
epochs = 2
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.cost import Prices
from harness.errors import UserError, closest
from harness.models import DEFAULT_MODEL
from harness.prompts import LABEL_ORDERS, SELECTIONS
from harness.run import Variant
from harness.tasks import Task, get_task
from harness.train.config import FIELDS as TRAIN_FIELDS


@dataclass(frozen=True)
class TaskPlan:
    name: str
    variants: tuple[Variant, ...]
    train_sizes: tuple[int, ...] = ()
    seeds: tuple[int, ...] = (0,)
    train: dict[str, Any] = field(default_factory=dict)
    sweep: dict[str, Any] = field(default_factory=dict)  # {"space": {...}, "method": ..., "trials": ...}
    retention: tuple[str, ...] = ()  # other tasks the adapters are also scored on, zero-shot
    # {"space": {...}, "method": ..., "trials": ..., "max_device_s": ...}; {} for none
    prompt_search: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    name: str
    tasks: tuple[TaskPlan, ...]
    model: str = DEFAULT_MODEL
    limit: int | None = 200
    seed: int = 0
    prices: Prices = field(default_factory=Prices)
    val_limit: int = 100  # validation items every selection (variant, search trial, adapter) is made on

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True, default=str).encode()).hexdigest()[:8]


def default_variants(task: Task) -> tuple[Variant, ...]:
    out = [Variant("zero_shot", "zero_shot")]
    if "few_shot" in task.templates:
        selection = "balanced" if task.kind in ("classification", "multiple_choice") and len(task.labels) <= 8 else "similar"
        out.append(Variant("few_shot_8", "few_shot", shots=8, selection=selection))
    if "cot" in task.templates:
        out.append(Variant("cot", "cot"))
    if task.labels:
        out.append(Variant("constrained", "zero_shot", constrained=True))
    return tuple(out)


RETENTION_DEFAULTS = ("twitter_fin_sentiment", "contract_nli")


def default_retention(task: str) -> tuple[str, ...]:
    """One other short-answer task whose zero-shot score shows what the adapter cost elsewhere."""
    return tuple(r for r in RETENTION_DEFAULTS if r != task)[:1]


def check_retention(task: str, others: tuple[str, ...]) -> tuple[str, ...]:
    for r in others:
        get_task(r)
        if r == task:
            raise UserError(f"--retention names {task} itself; name other tasks")
    return others


DEFAULT_SWEEP_SPACE = {"lr": [3e-4, 1e-3, 3e-3], "epochs": [1, 2]}


def default_search(trials: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(adapter sweep, prompt search) with matched trial counts: equal effort on both sides."""
    if trials <= 0:
        return {}, {}
    return (
        {"space": dict(DEFAULT_SWEEP_SPACE), "method": "random", "trials": trials},
        {"space": {}, "method": "random", "trials": trials},  # {}: the task's default prompt space
    )


def default_plan(
    task_names: list[str], train_sizes: tuple[int, ...] = (256,), limit: int | None = 200, search_trials: int = 4
) -> Plan:
    sweep, search = default_search(search_trials)
    tasks = tuple(
        TaskPlan(
            n,
            default_variants(get_task(n)),
            train_sizes,
            retention=default_retention(n),
            sweep=dict(sweep) if train_sizes else {},
            prompt_search=dict(search),
        )
        for n in task_names
    )
    return Plan(name="-".join(task_names), tasks=tasks, limit=limit)


def _prompt_search(task: Task, raw: Any, sweep: dict[str, Any], where: str) -> dict[str, Any]:
    """[task.prompt_search]; without one, a plan with an adapter sweep gets a prompt search of the
    same method and trial count over the task's default space (equal effort on both sides)."""
    from harness.prompt_search import check_budget, parse_space

    if raw is None:
        return {"space": {}, "method": sweep["method"], "trials": sweep["trials"]} if sweep else {}
    if not isinstance(raw, dict):
        raise UserError(f"{where}: [task.prompt_search] must be a table")
    raw = dict(raw)
    method = str(raw.pop("method", "random"))
    try:
        trials = int(raw.pop("trials", 6))
        cap = raw.pop("max_device_s", None)
        cap = float(cap) if cap is not None else None
    except (TypeError, ValueError):
        raise UserError(f"{where}: prompt_search trials and max_device_s must be numbers") from None
    check_budget(method, trials, cap)
    space = raw.pop("space", None) if "space" in raw else {k: raw.pop(k) for k in list(raw)}
    if raw:
        raise UserError(f"{where}: unknown prompt_search setting {sorted(raw)[0]!r}")
    if not isinstance(space, dict):
        raise UserError(f"{where}: prompt_search space must be a table")
    if space:
        parse_space(task, space, pool_size=10**9)  # names and values now; k against the pool before any model work
    return {"space": space, "method": method, "trials": trials, "max_device_s": cap}


TASK_KEYS = {"name", "variants", "train_sizes", "seeds", "train", "sweep", "retention", "prompt_search"}
_VARIANT_FIELDS = {f.name for f in fields(Variant)} - {"adapter", "train_size", "seed"}


def _variant(task: Task, raw: Any, where: str) -> Variant:
    if not isinstance(raw, dict) or "template" not in raw:
        raise UserError(f"{where}: each variant needs at least a template")
    unknown = sorted(set(raw) - _VARIANT_FIELDS)
    if unknown:
        raise UserError(f"{where}: unknown variant setting {unknown[0]!r}{closest(unknown[0], sorted(_VARIANT_FIELDS))}")
    if raw["template"] not in task.templates:
        raise UserError(
            f"{where}: task {task.name} has no template {raw['template']!r}"
            f"{closest(raw['template'], task.templates)} (templates: {', '.join(task.templates)})"
        )
    if raw.get("label_order", "given") not in LABEL_ORDERS:
        raise UserError(f"{where}: unknown label_order {raw['label_order']!r} (choose from {', '.join(LABEL_ORDERS)})")
    if raw.get("selection", "random") not in SELECTIONS:
        raise UserError(f"{where}: unknown selection {raw['selection']!r} (choose from {', '.join(SELECTIONS)})")
    name = raw.get("name") or raw["template"] + (f"_{raw['shots']}" if raw.get("shots") else "")
    try:
        return Variant(**{**raw, "name": name})
    except TypeError as exc:
        raise UserError(f"{where}: {exc}") from None


def load_plan(path: Path) -> Plan:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"plan file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path} is not valid TOML: {exc}") from None
    known = {"name", "model", "limit", "seed", "prices", "task", "val_limit"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"{path}: unknown setting {unknown[0]!r}{closest(unknown[0], sorted(known))}")
    raw_tasks = data.get("task") or []
    if not raw_tasks:
        raise UserError(f"{path}: the plan names no [[task]]")
    tasks = []
    for i, raw in enumerate(raw_tasks):
        where = f"{path} task #{i + 1}"
        if "name" not in raw:
            raise UserError(f"{where}: missing name")
        task = get_task(raw["name"])
        unknown_keys = sorted(set(raw) - TASK_KEYS)
        if unknown_keys:
            raise UserError(
                f"{where}: unknown task setting {unknown_keys[0]!r}{closest(unknown_keys[0], sorted(TASK_KEYS))}"
            )
        variants = tuple(_variant(task, v, where) for v in raw.get("variants", [])) or default_variants(task)
        if len({v.name for v in variants}) != len(variants):
            raise UserError(f"{where}: two variants share a name")
        train = dict(raw.get("train", {}))
        bad = sorted(set(train) - TRAIN_FIELDS)
        if bad:
            raise UserError(f"{where}: unknown training setting {bad[0]!r}{closest(bad[0], sorted(TRAIN_FIELDS))}")
        sizes = tuple(int(s) for s in raw.get("train_sizes", []))
        if any(s <= 0 for s in sizes):
            raise UserError(f"{where}: train sizes must be positive")
        sweep_raw = dict(raw.get("sweep", {}))
        sweep: dict[str, Any] = {}
        if sweep_raw:
            from harness.sweep import parse_space

            method = sweep_raw.pop("method", "random")
            trials = int(sweep_raw.pop("trials", 4))
            if trials <= 0:
                raise UserError(f"{where}: sweep trials must be at least 1")
            parse_space(sweep_raw)  # validates names and values now, not after training started
            sweep = {"space": sweep_raw, "method": method, "trials": trials}
        retention = check_retention(task.name, tuple(raw.get("retention", ())))
        search = _prompt_search(task, raw.get("prompt_search"), sweep, where)
        tasks.append(
            TaskPlan(
                task.name, variants, sizes, tuple(int(s) for s in raw.get("seeds", [0])), train, sweep, retention, search
            )
        )
    try:
        prices = Prices(**data.get("prices", {}))
    except TypeError as exc:
        raise UserError(f"{path}: bad [prices]: {exc}") from None
    limit = data.get("limit", 200)
    if limit is not None and int(limit) <= 0:
        raise UserError(f"{path}: limit must be positive")
    val_limit = data.get("val_limit", 100)
    if not isinstance(val_limit, int) or isinstance(val_limit, bool) or val_limit <= 0:
        raise UserError(f"{path}: val_limit must be a positive whole number, got {val_limit!r}")
    return Plan(
        name=str(data.get("name", path.stem)),
        tasks=tuple(tasks),
        model=str(data.get("model", DEFAULT_MODEL)),
        limit=limit,
        seed=int(data.get("seed", 0)),
        prices=prices,
        val_limit=val_limit,
    )
