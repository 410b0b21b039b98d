"""Prompt search: the prompt side's tuning, with the adapter sweep's machinery and budget.

A search space over template wording, shots k, few-shot selection, label-list order, an output
cue and constrained choice; grid, seeded random or Optuna TPE proposals; every trial scored on
the same validation items the adapter sweep and the final selection use, through the run's
backend and response cache. Trials are appended to trials.jsonl as each finishes, so an
interrupted search resumes; a budget in trials and, optionally, in device-seconds.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.core.console import make_console
from harness.core.errors import UserError, closest
from harness.core.files import write_json
from harness.core.words import counted
from harness.engines import engine_log
from harness.engines.backends.base import Backend
from harness.engines.backends.factory import check_backend, make_backend
from harness.engines.chat import encode_chat
from harness.engines.models import DEFAULT_MODEL, content_hash, resolve
from harness.engines.response_cache import CachedBackend, default_cache
from harness.engines.tokenizer import counting_tokenizer
from harness.experiment.bootstrap import bootstrap
from harness.experiment.calibration import answers
from harness.experiment.checks import DEFAULT_CONTEXT
from harness.experiment.runner import score_trial
from harness.experiment.search import Space, SweepSummary, Trial, TrialLog, check_budget, grid, propose, summarise
from harness.experiment.variant import Variant, loglik_decodings
from harness.taskkit import data, prompts
from harness.taskkit.choice import CALIBRATIONS, SCORINGS
from harness.taskkit.prompts import LABEL_ORDERS, PER_ITEM_SELECTIONS, SELECTIONS
from harness.taskkit.registry import Task

console = make_console(stderr=True)

SEARCHABLE = ("template", "shots", "selection", "label_order", "cue", "constrained", "scoring", "calibration")
DEFAULT_CUES = ("", "Answer:")
DEFAULT_SHOTS = (0, 4, 8)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(value)


def default_space(task: Task, pool_size: int) -> dict[str, list[Any]]:
    """Every wording the task ships (chain-of-thought ones aside: ten times the tokens), k in
    {0, 4, 8} as far as the pool allows, every selection, a cue or none; for labelled tasks
    also the label order and constrained choice."""
    templates = [t for t in task.templates if t != "cot"]
    labelled = bool(task.labels) and task.kind in ("classification", "multiple_choice")
    space: dict[str, list[Any]] = {
        "template": templates,
        "shots": [k for k in DEFAULT_SHOTS if k <= pool_size],
        "selection": [s for s in PER_ITEM_SELECTIONS if labelled or s != "balanced"],
        "cue": list(DEFAULT_CUES),
    }
    if labelled:
        space["label_order"] = ["given", "reversed"]
        space["constrained"] = [False, True]
    if labelled and loglik_decodings(task):  # a small label set: the likeliest label, calibrated or not
        space["scoring"] = ["generate", "loglik"]
        space["calibration"] = ["none", "contextual", "batch"]
    return space


def parse_space(task: Task, raw: Mapping[str, Any], pool_size: int) -> Space:
    """{"template": ["zero_shot", "short"], "shots": "0,4"} -> Space; each value checked now."""
    params = []
    for name, values in raw.items():
        if name not in SEARCHABLE:
            raise UserError(
                f"cannot search prompts over {name!r}{closest(name, SEARCHABLE)} (searchable: {', '.join(SEARCHABLE)})"
            )
        if isinstance(values, str):
            values = values.split(",") if name != "cue" else values.split("|")
        if not isinstance(values, list | tuple) or not values:
            raise UserError(f"prompt search values for {name!r} must be a non-empty list")
        params.append((name, tuple(dict.fromkeys(_check(task, name, v, pool_size) for v in values))))
    given = dict(params)
    calibrated = [c for c in given.get("calibration", ()) if c != "none"]
    if calibrated and all(x == "generate" for x in given.get("scoring", ("generate",))):
        raise UserError(
            f"prompt search: calibration {calibrated[0]!r} adjusts a log-likelihood choice, and no scoring searched "
            'chooses by log-likelihood: add "loglik" to scoring'
        )
    if not params:
        raise UserError("the prompt search space is empty: give at least one setting to vary, e.g. shots = [0, 4, 8]")
    return Space(tuple(params))


def _check(task: Task, name: str, value: Any, pool_size: int) -> Any:
    if name == "template":
        value = str(value).strip()
        if value not in task.templates:
            raise UserError(
                f"prompt search: task {task.name} has no template {value!r}{closest(value, task.templates)} "
                f"(templates: {', '.join(task.templates)})"
            )
        return value
    if name == "shots":
        try:
            k = int(str(value).strip())
        except ValueError:
            raise UserError(f"prompt search: shots must be whole numbers, got {value!r}") from None
        if k < 0 or k > pool_size:
            raise UserError(f"prompt search: shots {k} is outside 0..{pool_size} (the few-shot pool of {task.name})")
        return k
    if name == "selection":
        value = str(value).strip()
        if value not in SELECTIONS:
            raise UserError(f"prompt search: unknown selection {value!r}{closest(value, SELECTIONS)}")
        return value
    if name == "label_order":
        value = str(value).strip()
        if value not in LABEL_ORDERS:
            raise UserError(f"prompt search: unknown label order {value!r}{closest(value, LABEL_ORDERS)}")
        return value
    if name == "constrained":
        try:
            flag = _bool(value)
        except ValueError:
            raise UserError(f"prompt search: constrained must be true or false, got {value!r}") from None
        if flag and not task.labels:
            raise UserError(f"prompt search: constrained choice needs a label set, and {task.name} has none")
        return flag
    if name in ("scoring", "calibration"):
        value = str(value).strip()
        allowed = SCORINGS if name == "scoring" else CALIBRATIONS
        if value not in allowed:
            raise UserError(
                f"prompt search: unknown {name} {value!r}{closest(value, allowed)} (choose from {', '.join(allowed)})"
            )
        per_item = name == "scoring" and task.kind == "multiple_choice"  # lm-eval's per-document choices
        if value not in ("generate", "none") and not task.labels and not per_item:
            raise UserError(f"prompt search: {name} {value!r} chooses among a label set, and {task.name} has none")
        return value
    return str(value)  # cue: any text, "" for none


def variant_of(params: Mapping[str, Any], name: str = "searched") -> Variant:
    """The prompt variant a trial's settings describe (defaults for what the space leaves out)."""
    p = dict(params)
    shots = int(p.get("shots", 0))
    # a log-likelihood choice decodes nothing (constrained means nothing there), and calibration
    # reads label scores (it means nothing to a decoded answer)
    scoring = str(p.get("scoring", "generate"))
    loglik = scoring != "generate"
    return Variant(
        name,
        str(p.get("template", "zero_shot")),
        shots=shots,
        selection=str(p.get("selection", "random")) if shots else "random",
        constrained=bool(p.get("constrained", False)) and not loglik,
        cue=str(p.get("cue", "")),
        label_order=str(p.get("label_order", "given")),
        scoring=scoring,
        calibration=str(p.get("calibration", "none")) if loglik else "none",
    )


def canonical(params: Mapping[str, Any]) -> str:
    """Settings that render the same prompts are one candidate (selection means nothing at k = 0)."""
    v = variant_of(params)
    key: list[Any] = [v.template, v.shots, v.selection, v.constrained, v.cue, v.label_order]
    return json.dumps(key + ([v.scoring, v.calibration] if v.scoring != "generate" else []))


TokenCounter = Callable[[Sequence[Any]], int]  # chat messages -> prompt tokens


def candidates(
    task: Task,
    space: Space,
    val: Sequence[Any],
    pool: Sequence[Any],
    count_tokens: TokenCounter | None = None,
    max_len: int = 4096,
    strict: bool = True,
) -> list[dict[str, Any]]:
    """The space's distinct points that fit the model's context.

    The bound is conservative: the longest validation item with the k longest pool rows as shots
    (whatever the selection picks is no longer), plus the answer budget. `strict` (a space the user
    wrote) refuses a point over the context with one line; the default space just leaves it out."""

    seen: dict[str, dict[str, Any]] = {}
    for params in grid(space):
        seen.setdefault(canonical(params), params)
    points = list(seen.values())
    if not val:
        return points

    def size(s: Any) -> int:
        return sum(len(str(v)) for v in s.fields.values())

    worst = max(val, key=size)
    # A template that never shows the label list renders the same prompt in every label order:
    # one candidate, so no trial is spent on a prompt already scored.
    lists_labels = {
        t: prompts.render(task, t, worst, (), prompts.PromptFormat(label_order="given"))
        != prompts.render(task, t, worst, (), prompts.PromptFormat(label_order="reversed"))
        for t in {str(p.get("template", "zero_shot")) for p in points}
    }
    distinct: dict[str, dict[str, Any]] = {}
    for params in points:
        v = variant_of(params)
        distinct.setdefault(canonical({**params, "label_order": v.label_order if lists_labels[v.template] else "-"}), params)
    points = list(distinct.values())
    if count_tokens is None:
        return points
    longest = sorted(pool, key=size, reverse=True)
    fits: dict[tuple[str, int, str, str], int] = {}
    out = []
    for params in points:
        v = variant_of(params)
        key = (v.template, v.shots, v.cue, v.label_order)
        if key not in fits:
            fmt = prompts.PromptFormat(v.cue, v.label_order)
            messages = prompts.render(task, v.template, worst, longest[: v.shots], fmt)
            fits[key] = count_tokens(messages) + prompts.max_tokens_for(task, v.template, worst)
        if fits[key] <= max_len:
            out.append(params)
        elif strict:
            raise UserError(
                f"prompt search: template {v.template} with {v.shots} shots needs up to {fits[key]} tokens, over "
                f"the model's context of {max_len}; search fewer shots or a shorter template"
            )
    if not out:
        raise UserError(f"prompt search: no point of the space fits the model's context of {max_len} tokens")
    return out


def search_id(task: str, space: Space, method: str, budget: int, seed: int, identity: Mapping[str, Any]) -> str:
    """Everything that decides the trials' answers names the folder: an edited template, other
    validation items or another model start a fresh search instead of mixing old answers in."""
    payload = json.dumps([task, asdict(space), method, budget, seed, dict(identity)], sort_keys=True, default=str)
    return f"prompt-{task}-{hashlib.sha256(payload.encode()).hexdigest()[:8]}"


class PromptTrialRunner:
    """Score one prompt configuration on the validation items through a (cached) backend."""

    def __init__(self, task: Task, items: Sequence[Any], pool: Sequence[Any], backend: Any, seed: int = 0):
        self.task, self.items, self.pool, self.backend, self.seed = task, items, pool, backend, seed

    def __call__(self, number: int, params: dict[str, Any]) -> Trial:
        variant = variant_of(params)
        start = time.perf_counter()
        # scored on the validation items: a batch-calibrated trial estimates its prior on them too
        shown, pool, boot = bootstrap(self.task, variant, self.pool, self.backend, self.seed)
        completions = answers(self.task, shown, self.items, pool, self.backend, self.seed, self.items)
        wall = time.perf_counter() - start
        metric, device_s = score_trial(self.task, self.items, completions)
        device_s += boot.device_s if boot else 0.0  # the teacher's calls are the trial's cost too
        return Trial(number, dict(params), metric, None, None, wall, device_s, "")


def run(
    task: Task,
    space: Space,
    runner: Callable[[int, dict[str, Any]], Trial],
    *,
    method: str = "random",
    budget: int = 6,
    seed: int = 0,
    max_device_s: float | None = None,
    identity: Mapping[str, Any] | None = None,
    out_root: Path = Path("results/sweeps"),
    on_trial: Callable[[Trial], None] | None = None,
    space_points: Sequence[dict[str, Any]] | None = None,
) -> tuple[Path, SweepSummary]:
    """Run (or resume) a prompt search over `space_points` (from `candidates`; default: every
    distinct point of the space); returns its folder and summary (the adapter sweep's)."""
    check_budget(method, budget, max_device_s, "the prompt search's trial budget")
    points = list(space_points) if space_points is not None else list(dict((canonical(p), p) for p in grid(space)).values())
    digest = hashlib.sha256(json.dumps(points, sort_keys=True).encode()).hexdigest()[:12]
    folder = out_root / search_id(
        task.name, space, method, budget, seed, {**(identity or {}), "cap": max_device_s, "points": digest}
    )
    log = TrialLog(folder / "trials.jsonl", on_trial, f"prompt search {task.name} ({method})", min(budget, len(points)))
    trials = log.trials

    def spent() -> bool:
        return max_device_s is not None and sum(t.device_s for t in trials) >= max_device_s

    try:
        propose(
            space, points, method=method, budget=budget, seed=seed, log=log, spent=spent,
            run_trials=lambda todo: (runner(i, p) for i, p in todo),
        )  # fmt: skip
    finally:
        log.close()
    summary = summarise(sorted(trials, key=lambda t: t.number), task.primary_metric)
    write_json(
        folder / "sweep.json",
        {
            "side": "prompt", "task": task.name, "space": asdict(space), "method": method, "budget": budget,
            "max_device_s": max_device_s, "seed": seed, "identity": dict(identity or {}), "summary": asdict(summary),
        },
    )  # fmt: skip
    return folder, summary


def trial_facts(summary: SweepSummary, method: str, folder: Path) -> dict[str, Any]:
    """What the manifest keeps of a search: enough for the effort curve and the report."""
    return {
        "folder": str(folder),
        "method": method,
        "best": summary.best.params,
        "best_metric": summary.best.metric,
        "median": summary.median,
        "spread": summary.spread,
        "trials": [
            {"number": t.number, "params": t.params, "metric": t.metric, "device_s": t.device_s} for t in summary.trials
        ],
    }


def search_points(
    task: Task, space: Space, val: Sequence[Any], pool: Sequence[Any], model_dir: Path, max_len: int, strict: bool
) -> list[dict[str, Any]]:
    """The space's candidates, checked against the context with the model's own tokenizer.
    `strict`: a space the user wrote, where a point over the context is refused, never dropped."""
    tokenizer = counting_tokenizer(model_dir)
    return candidates(task, space, val, pool, lambda m: len(encode_chat(tokenizer, m)), max_len, strict=strict)


def search_identity(model_hash: str, backend: Backend, task: Task) -> dict[str, Any]:
    """What names a prompt search's folder besides its space and items: the model, the backend as
    the response cache keys it (dtype, adapter mode, a server's address: trials scored in bfloat16
    or by another server are not this backend's) and the task's templates."""
    return {"model": model_hash, "backend": backend.cache_tag, "templates": prompts.template_hashes(task)}


def search(
    task: Task,
    cfg: dict[str, Any],
    space: Space,
    space_points: list[dict[str, Any]],
    val: Sequence[Any],
    pool: Sequence[Any],
    backend: Backend,
    seed: int,
    out_root: Path,
    identity: dict[str, Any],
) -> tuple[Variant, dict[str, Any], SweepSummary]:
    """Search prompts on the validation items (compare and `sweep --side prompt` alike); returns the
    best trial as a variant, the facts the manifest keeps, and the summary. `identity` (model,
    backend, template hashes) and the items' hashes name the search folder."""
    console.print(
        f"[bold]prompt search[/bold] {task.name}: {cfg['method']}, {counted(cfg['trials'], 'trial')} "
        f"on {len(val)} validation items"
    )
    folder, summary = run(
        task,
        space,
        PromptTrialRunner(task, val, pool, backend, seed),
        method=cfg["method"],
        budget=int(cfg["trials"]),
        seed=seed,
        max_device_s=cfg.get("max_device_s"),
        identity={**identity, "val": data.samples_hash(val), "pool": data.samples_hash(pool)},
        out_root=out_root,
        space_points=space_points,
        on_trial=lambda t: console.print(
            f"  trial {t.number} {t.params}: {t.metric:.4f} ({t.device_s:.0f} device-s)", markup=False
        ),
    )
    return variant_of(summary.best.params, "searched"), trial_facts(summary, cfg["method"], folder), summary


def search_alone(
    task: Task,
    raw: dict[str, Any],
    settings: dict[str, Any],
    seed: int,
    val_limit: int,
    backend_kind: str,
    remote: dict[str, Any],
    model: str | None,
    results: Path,
) -> tuple[Path, SweepSummary]:
    """`harness sweep TASK --side prompt`: every check before the model loads, then the search
    exactly as compare runs it (same folder naming, so the two share finished trials). `settings`:
    method, trials and max_device_s."""
    kind = "vllm" if backend_kind == "auto" else backend_kind
    options = remote if kind == "openai" else {}
    check_backend(kind, options)
    check_budget(settings["method"], settings["trials"], settings["max_device_s"], "the prompt search's trial budget")
    pool = data.shot_pool(task)
    val = data.validation_items(task, val_limit)
    space = parse_space(task, raw or default_space(task, len(pool)), len(pool))
    model_dir = resolve(model or DEFAULT_MODEL)
    points = search_points(task, space, val, pool, model_dir, DEFAULT_CONTEXT, strict=bool(raw))
    model_hash = content_hash(model_dir)
    engine = CachedBackend(make_backend(kind, model_dir, **options), default_cache(), model_hash, {None: "base"})
    identity = search_identity(model_hash, engine, task)
    # the engines' own lines (vLLM's warnings, loading bars) go to a log, as a run's do
    with engine_log.logging_to(results / engine_log.ENGINE_LOG):
        try:
            _, facts, summary = search(task, settings, space, points, val, pool, engine, seed, results, identity)
            return Path(facts["folder"]), summary
        finally:
            engine.close()
