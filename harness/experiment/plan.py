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
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.analysis.cost import Prices
from harness.core.errors import UserError, closest
from harness.core.schema import PlanFile, PromptSearchTable, VariantTable, read_toml, validate
from harness.engines.models import DEFAULT_MODEL
from harness.experiment import sweep as adapter_sweep
from harness.experiment.prompt_search import parse_space
from harness.experiment.requests import check_choice
from harness.experiment.variant import Variant, decoding_name, loglik_decodings
from harness.taskkit.data import has_split
from harness.taskkit.metrics import BINARY_METRICS
from harness.taskkit.registry import Task, get_task
from harness.train.config import from_mapping


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
    formats: int = 5  # meaning-preserving format perturbations of the selected prompt, on test (0: none)
    # default retention tasks left out for want of data (a default must never block a new task)
    retention_skipped: tuple[str, ...] = ()


NOISE_ITEMS = 64


@dataclass(frozen=True)
class Plan:
    name: str
    tasks: tuple[TaskPlan, ...]
    model: str = DEFAULT_MODEL
    limit: int | None = 200
    seed: int = 0
    prices: Prices = field(default_factory=Prices)
    val_limit: int = 100  # validation items every selection (variant, search trial, adapter) is made on
    latency_probe: int = 20  # requests per arm timed one at a time (p50/p95 a user waits); 0: none
    # test items the noise floor re-runs in another order: a sample, as its flip rate needs no more (64
    # items with no change bound the rate below 5.7% at 95%), not a second pass over every item; 0: none
    noise_items: int = NOISE_ITEMS

    def digest(self) -> str:
        data = asdict(self)
        for tp in data["tasks"]:
            if not tp["retention_skipped"]:  # added later: plans without one keep their digests (run names)
                del tp["retention_skipped"]
            for v in tp["variants"]:  # likewise: a variant that decodes, as every variant did before
                if v["scoring"] == "generate" and v["calibration"] == "none":
                    del v["scoring"], v["calibration"]
        if data["noise_items"] == NOISE_ITEMS:  # added later, likewise
            del data["noise_items"]
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:8]


def default_selection(task: Task) -> str:
    return "balanced" if task.kind in ("classification", "multiple_choice") and len(task.labels) <= 8 else "similar"


# the data-matched prompt arm: as many similar training examples as the context holds
MANY_SHOT = Variant("many_shot", "few_shot", selection="similar", many_shot=True)


def default_variants(task: Task) -> tuple[Variant, ...]:
    out = [Variant("zero_shot", "zero_shot")]
    if "few_shot" in task.templates:
        out.append(Variant("few_shot_8", "few_shot", shots=8, selection=default_selection(task)))
        out.append(MANY_SHOT)
    if "cot" in task.templates:
        out.append(Variant("cot", "cot"))
    if task.labels:
        out.append(Variant("constrained", "zero_shot", constrained=True))
    for scoring, calibration in loglik_decodings(task):
        name = decoding_name(scoring, calibration)
        out.append(Variant(name, "zero_shot", scoring=scoring, calibration=calibration))
    return tuple(out)


def without_scored_defaults(plan: Plan) -> Plan:
    """An OpenAI-compatible server reports no label scores: the default log-likelihood arms are left
    out of a plan run against one (a plan that names its own is refused in preflight, by name)."""
    tasks = []
    for tp in plan.tasks:
        defaults = {v for v in default_variants(get_task(tp.name)) if v.scoring != "generate"}
        kept = tuple(v for v in tp.variants if v not in defaults)
        for v in kept:
            if v.scoring != "generate":
                raise UserError(
                    f"variant {v.name} of {tp.name} chooses its label by log-likelihood, which an "
                    "OpenAI-compatible server does not report: use --backend vllm or hf, or another variant"
                )
        tasks.append(replace(tp, variants=kept))
    return replace(plan, tasks=tuple(tasks))


def pick_variants(plan: Plan, names: tuple[str, ...]) -> Plan:
    """`--variants a,b`: keep the named variants of each task's plan, in the order given. A name
    that is not a variant of the plan may be a template (zero-shot) or TEMPLATE_K (k shots with
    the task's default selection)."""
    if not names:
        raise UserError("--variants names no variant")
    if len(set(names)) != len(names):
        raise UserError(f"--variants names a variant twice: {','.join(names)}")
    tasks = []
    for tp in plan.tasks:
        task = get_task(tp.name)
        tasks.append(replace(tp, variants=tuple(_named_variant(task, tp.variants, n) for n in names)))
    return replace(plan, tasks=tuple(tasks))


def _named_variant(task: Task, planned: tuple[Variant, ...], name: str) -> Variant:
    for v in planned:
        if v.name == name:
            return v
    if name in task.templates:
        return Variant(name, name)
    if name == MANY_SHOT.name and MANY_SHOT.template in task.templates:
        return MANY_SHOT
    stem, _, k = name.rpartition("_")
    if stem in task.templates and k.isdigit() and int(k) > 0:
        return Variant(name, stem, shots=int(k), selection=default_selection(task))
    known = [v.name for v in planned] + [t for t in task.templates if t not in {v.name for v in planned}]
    raise UserError(
        f"--variants: {task.name} has no variant {name!r}{closest(name, known)} "
        f"(variants: {', '.join(v.name for v in planned)}; or a template: {', '.join(task.templates)}, "
        "optionally with _K for K shots)"
    )


MAX_FORMATS = 50


def check_error_price(tasks: tuple[Task, ...], where: str) -> None:
    """usd_per_error prices wrong answers: each task needs a metric that counts them."""

    for task in tasks:
        if not BINARY_METRICS & set(task.metrics):
            raise UserError(
                f"{where}: usd_per_error prices wrong answers, and {task.name}'s metrics "
                f"({', '.join(task.metrics)}) do not count them (accuracy or exact_match do); leave it out"
            )


def with_volume(plan: Plan, volume: float | None) -> Plan:
    """`--volume N`: the requests a month the costs are given at."""
    if volume is None:
        return plan
    if not volume > 0 or volume != volume or volume == float("inf"):
        raise UserError(f"--volume must be a positive number of requests a month, got {volume}")
    return replace(plan, prices=replace(plan.prices, requests_per_month=float(volume)))


def with_formats(plan: Plan, n: int | None) -> Plan:
    """`--formats N`: the format spread's size for every task (0: none)."""
    if n is None:
        return plan
    if not 0 <= n <= MAX_FORMATS:
        raise UserError(f"--formats must be from 0 to {MAX_FORMATS}, got {n}")
    return replace(plan, tasks=tuple(replace(tp, formats=n) for tp in plan.tasks))


def without_training(plan: Plan) -> Plan:
    """`--no-train`: prompts only. No adapter, no adapter sweep, no retention (it scores adapters)."""
    return replace(
        plan, tasks=tuple(replace(tp, train_sizes=(), sweep={}, retention=(), retention_skipped=()) for tp in plan.tasks)
    )


RETENTION_DEFAULTS = ("twitter_fin_sentiment", "contract_nli")


def default_retention(task: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(retention tasks, skipped ones): one other short-answer task whose zero-shot score shows what
    the adapter cost elsewhere, when its data is at hand. A researcher's own HARNESS_DATA_DIR seldom
    holds the built-in tasks' data: the default then skips retention (the report says so) instead of
    refusing the new task."""

    wanted = tuple(r for r in RETENTION_DEFAULTS if r != task)[:1]
    kept = tuple(r for r in wanted if has_split(get_task(r), get_task(r).test_split))
    return kept, tuple(r for r in wanted if r not in kept)


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
            retention=default_retention(n)[0],
            sweep=dict(sweep) if train_sizes else {},
            prompt_search=dict(search),
            retention_skipped=default_retention(n)[1] if train_sizes else (),
        )
        for n in task_names
    )
    return Plan(name="-".join(task_names), tasks=tasks, limit=limit)


def _prompt_search(task: Task, table: PromptSearchTable | None, sweep: dict[str, Any], where: str) -> dict[str, Any]:
    """[task.prompt_search]; without one, a plan with an adapter sweep gets a prompt search of the
    same method and trial count over the task's default space (equal effort on both sides)."""

    if table is None:
        return {"space": {}, "method": sweep["method"], "trials": sweep["trials"]} if sweep else {}
    try:
        space = table.search_space()
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None
    if space:
        parse_space(task, space, pool_size=10**9)  # names and values now; k against the pool before any model work
    return {"space": space, "method": table.method, "trials": table.trials, "max_device_s": table.max_device_s}


def _variant(task: Task, table: VariantTable, where: str) -> Variant:
    if table.template not in task.templates:
        raise UserError(
            f"{where}: task {task.name} has no template {table.template!r}"
            f"{closest(table.template, task.templates)} (templates: {', '.join(task.templates)})"
        )
    raw = table.model_dump()
    counted = table.template + (f"_{table.shots}" if table.shots else "")
    name = raw.pop("name") or ("many_shot" if table.many_shot else counted)
    if table.many_shot:
        raw["selection"] = "similar"
    if raw["stop"] is not None:
        raw["stop"] = tuple(raw["stop"])
    variant = Variant(name=name, **raw)
    try:  # a choice without labels, or with two rules, is the plan's mistake: said with its place
        check_choice(task, variant)
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None
    return variant


def load_plan(path: Path) -> Plan:
    data = read_toml(path, "plan file")
    if not data.get("task"):
        raise UserError(f"{path}: the plan names no [[task]]")
    plan = validate(PlanFile, data, path)
    tasks = []
    for i, raw in enumerate(plan.task):
        where = f"{path} task #{i + 1}"
        task = get_task(raw.name)
        variants = tuple(_variant(task, v, where) for v in raw.variants) or default_variants(task)
        if len({v.name for v in variants}) != len(variants):
            raise UserError(f"{where}: two variants share a name")
        sweep: dict[str, Any] = {}
        if raw.sweep is not None:
            space = raw.sweep.space()
            adapter_sweep.parse_space(space)  # validates names and values now, not after training started
            sweep = {"space": space, "method": raw.sweep.method, "trials": raw.sweep.trials}
        retention = check_retention(task.name, tuple(raw.retention or ()))
        search = _prompt_search(task, raw.prompt_search, sweep, where)
        train = raw.train.settings()
        from_mapping({**train, "task": task.name})  # meaning checks of the settings together, before any work
        tasks.append(
            TaskPlan(
                task.name, variants, tuple(raw.train_sizes), tuple(raw.seeds), train, sweep, retention, search, raw.formats
            )
        )
    if plan.prices.usd_per_error is not None:
        check_error_price(tuple(get_task(tp.name) for tp in tasks), str(path))
    return Plan(
        name=plan.name or path.stem,
        tasks=tuple(tasks),
        model=plan.model or DEFAULT_MODEL,
        limit=plan.limit,
        seed=plan.seed,
        prices=Prices(**plan.prices.model_dump()),
        val_limit=plan.val_limit,
        latency_probe=plan.latency_probe,
        noise_items=plan.noise_items,
    )


def with_sizes(plan: Plan, sizes: tuple[int, ...] | None) -> Plan:
    """`--train-sizes`: the adapters' training sizes for every task."""
    if not sizes:
        return plan
    return replace(plan, tasks=tuple(replace(tp, train_sizes=sizes) for tp in plan.tasks))


def command_plan(
    plan_file: Path | None,
    tasks: Sequence[str],
    sizes: tuple[int, ...] | None,
    *,
    no_train: bool = False,
    search_trials: int = 4,
    formats: int | None = None,
    volume: float | None = None,
    latency_probe: int | None = None,
    variants: str | None = None,
    retention: str | None = None,
    limit: int | None = None,
) -> Plan:
    """The plan `harness compare` runs: a named plan or the tasks' default one, with what the command
    line changes (sizes or none, formats, traffic, probe, variants, retention, items)."""
    if plan_file is None and not tasks:
        raise UserError("name tasks (harness compare banking77) or a plan (--plan experiments/demo.toml)")
    if no_train and sizes:
        raise UserError("--no-train and --train-sizes contradict each other; give one")
    p = load_plan(plan_file) if plan_file else default_plan(list(tasks), sizes or (256,), search_trials=search_trials)
    p = without_training(p) if no_train else with_sizes(p, sizes)
    p = with_volume(with_formats(p, formats), volume)
    if latency_probe is not None:
        p = replace(p, latency_probe=latency_probe)
    if variants is not None:
        p = pick_variants(p, tuple(v.strip() for v in variants.split(",") if v.strip()))
    if retention is not None:
        others = tuple(r.strip() for r in retention.split(",") if r.strip())
        chosen = (replace(tp, retention=check_retention(tp.name, others), retention_skipped=()) for tp in p.tasks)
        p = replace(p, tasks=tuple(chosen))
    return p if limit is None else replace(p, limit=limit)
