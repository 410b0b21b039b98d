"""Hyperparameter sweeps: trials are scored on the validation carve-out, never on test items.

Proposals come from a grid, seeded random choices, or Optuna's TPE sampler, within a trial
budget. Each finished trial is appended to trials.jsonl, and adapters and responses are
cached, so an interrupted sweep resumes where it stopped. Trials run one after another, or as
Ray tasks (`--executor ray`, each asking for a GPU when the cluster has them).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from harness.core.errors import UserError, closest
from harness.core.files import write_json
from harness.engines import engine_log
from harness.engines.adapters import adapter_hash
from harness.engines.backends.factory import make_backend
from harness.engines.backends.hf import resolve_adapter_mode
from harness.engines.chat import cuda_available
from harness.engines.models import content_hash, resolve
from harness.engines.response_cache import CachedBackend, default_cache
from harness.experiment.requests import build_requests
from harness.experiment.runner import score_trial
from harness.experiment.search import Space, SweepSummary, Trial, TrialLog, check_budget, grid, propose, summarise
from harness.experiment.variant import Variant
from harness.taskkit import data
from harness.taskkit.prompts import template_hashes
from harness.taskkit.registry import get_task
from harness.train.config import from_mapping
from harness.train.recipe import train

SEARCHABLE: dict[str, type] = {
    "lr": float, "epochs": float, "batch_size": int, "rank": int, "alpha": int, "train_size": int,
    "dropout": float, "warmup_ratio": float, "grad_accum": int,
}  # fmt: skip
EXECUTORS = ("sequential", "ray")


def parse_space(raw: Mapping[str, Any]) -> Space:
    """{"lr": [1e-4, 1e-3], "epochs": "1,2"} -> Space; every name must be a recipe setting."""
    params = []
    for name, values in raw.items():
        if name not in SEARCHABLE:
            raise UserError(
                f"cannot search over {name!r}: the training recipe has no such setting"
                f"{closest(name, list(SEARCHABLE))} (searchable: {', '.join(SEARCHABLE)})"
            )
        if isinstance(values, str):
            values = [v for v in values.split(",") if v.strip()]
        if not isinstance(values, list | tuple) or not values:
            raise UserError(f"search values for {name!r} must be a non-empty list")
        try:
            cast = tuple(dict.fromkeys(SEARCHABLE[name](v) for v in values))
        except (TypeError, ValueError):
            raise UserError(f"search values for {name!r} must be numbers, got {values!r}") from None
        params.append((name, cast))
    if not params:
        raise UserError("the search space is empty: give at least one setting to vary, e.g. --lr 1e-4,1e-3")
    return Space(tuple(params))


def trial_backend(backend: str, cuda: bool) -> tuple[str, dict[str, str]]:
    """The backend that scores trials' adapters, and its options. `auto`: vLLM with LoRA kernels on
    CUDA; on CPU transformers with each trial's adapter merged into a float32 copy of the weights
    (one vLLM engine per trial would cost a merge to disk and a start, 5-6 s, for ~100 items)."""

    kind = backend if backend != "auto" else ("vllm" if cuda else "hf")
    return kind, {"adapter_mode": "lora" if kind == "vllm" else resolve_adapter_mode("auto", cuda)}


def sweep_id(
    task: str, space: Space, method: str, budget: int, seed: int, base: Mapping[str, Any], conditions: Mapping[str, Any]
) -> str:
    """The folder of a sweep: its settings and the conditions its trials were scored under (data,
    templates, validation items, backend), so a resumed sweep never reuses stale trial scores."""
    payload = json.dumps(
        [task, asdict(space), method, budget, seed, dict(base), dict(conditions)], sort_keys=True, default=str
    )
    return f"{task}-{hashlib.sha256(payload.encode()).hexdigest()[:8]}"


def run(
    task_name: str,
    space: Space,
    *,
    method: str = "random",
    budget: int = 4,
    seed: int = 0,
    base: Mapping[str, Any] | None = None,
    val_limit: int = 100,
    executor: str = "sequential",
    backend: str = "auto",
    out_root: Path = Path("results/sweeps"),
    on_trial: Callable[[Trial], None] | None = None,
) -> tuple[Path, SweepSummary]:
    """Run (or resume) a sweep; returns its folder and summary."""
    check_budget(method, budget)
    if executor not in EXECUTORS:
        raise UserError(f"unknown executor {executor!r} (choose from {', '.join(EXECUTORS)})")
    task = get_task(task_name)
    base_cfg = from_mapping({**(base or {}), "task": task.name})
    points = grid(space)
    for params in points:
        replace(base_cfg, **params)  # a bad value (rank 0, lr -1, inf) fails here, before any training
    if executor == "ray":
        _require_ray()
    conditions = {
        "train_data": data.samples_hash(data.load_split(task, task.train_split)),
        "validation": data.samples_hash(data.validation_items(task, val_limit)),
        # what scores the trials, resolved: a sweep resumed on another path must not reuse their scores
        "templates": template_hashes(task), "backend": _scoring_path(backend), "task_version": task.version,
    }  # fmt: skip
    folder = out_root / sweep_id(task.name, space, method, budget, seed, base or {}, conditions)
    log = TrialLog(folder / "trials.jsonl", on_trial, f"adapter sweep {task.name} ({method})", budget)
    evaluate = _TrialRunner(task.name, base_cfg, val_limit, backend)
    parallel = (os.cpu_count() or 1) if executor == "ray" else 1
    # the trials' engines write their own lines (loading bars, warnings) to a log, as a run's do;
    # only now, so refused input leaves no folder behind. Inside compare, the run's log keeps them.
    own = engine_log.current() is None
    with engine_log.logging_to(out_root / engine_log.ENGINE_LOG) if own else contextlib.nullcontext():
        try:
            propose(
                space, points, method=method, budget=budget, seed=seed, log=log,
                run_trials=lambda todo: _execute(evaluate, list(todo), executor), parallel=parallel,
            )  # fmt: skip
        finally:
            log.close()
    trials = log.trials
    summary = summarise(sorted(trials, key=lambda t: t.number), task.primary_metric)
    write_json(
        folder / "sweep.json",
        {
            "task": task.name,
            "space": asdict(space),
            "method": method,
            "budget": budget,
            "seed": seed,
            "base": dict(base or {}),
            "summary": asdict(summary),
        },
    )
    return folder, summary


def _scoring_path(backend: str) -> str:
    kind, options = trial_backend(backend, cuda_available())
    return f"{kind}/{options['adapter_mode']}"


def _require_ray() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install 'harness[ray]'") from None


def _execute(evaluate: Callable[..., Trial], todo: list[tuple[int, dict[str, Any]]], executor: str) -> Iterator[Trial]:
    """Trials as each finishes, so the caller logs every one before the next ends."""
    if executor == "sequential" or not todo:
        for i, p in todo:
            yield evaluate(i, p)
        return
    import ray
    import torch

    if not ray.is_initialized():
        env = {k: v for k, v in os.environ.items() if k.startswith(("HARNESS_", "HF_", "VLLM_"))}
        ray.init(
            num_cpus=os.cpu_count(),
            include_dashboard=False,
            ignore_reinit_error=True,
            log_to_driver=False,
            # Ray's INFO and WARNING lines ("Started a local Ray instance", its token authentication)
            # are for Ray's operators; the console keeps the sweep's progress and table
            logging_level=logging.ERROR,
            runtime_env={"env_vars": env},
        )
    if torch.cuda.is_available():
        remote = ray.remote(num_gpus=1)(_remote_trial)
        pending = [remote.remote(evaluate, i, p) for i, p in todo]
    else:
        # A Ray task gets one CPU and OMP_NUM_THREADS=1 by default: a trial trained on one thread
        # sums in another order than in sequence (final loss 3.55062 against 3.55055) and takes a
        # core from the next. Each trial gets the threads it would get in sequence, in Ray too.
        threads = min(torch.get_num_threads(), int(ray.cluster_resources().get("CPU", 1)))
        remote = ray.remote(num_cpus=threads)(_remote_trial)
        pending = [remote.remote(evaluate, i, p, threads) for i, p in todo]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield ray.get(done[0])


def _remote_trial(runner: Callable[..., Trial], number: int, params: dict[str, Any], threads: int = 0) -> Trial:
    """What a Ray worker runs (ray.remote takes functions and classes, not callable objects)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    return runner(number, params)


class _TrialRunner:
    """Train one configuration (cached) and score its adapter on the validation carve-out.

    A plain callable object, so Ray can ship it to a worker; the backend is built lazily in
    whichever process runs the trial and reused for the trials that follow there."""

    def __init__(self, task: str, base: Any, val_limit: int, backend: str):
        self.task, self.base, self.val_limit, self.backend_kind = task, base, val_limit, backend
        self._backend: Any = None

    def __getstate__(self) -> dict[str, Any]:
        # Shipped to Ray workers without a live backend: each worker builds its own.
        return {**self.__dict__, "_backend": None}

    def __call__(self, number: int, params: dict[str, Any]) -> Trial:
        task = get_task(self.task)
        cfg = replace(self.base, **params)
        trained = train(cfg, progress=False)
        items = data.validation_items(task, self.val_limit)
        model_dir = resolve(cfg.model)
        if self._backend is None:
            kind, options = trial_backend(self.backend_kind, cuda_available())
            inner = make_backend(kind, model_dir, **options)
            self._backend = CachedBackend(inner, default_cache(), content_hash(model_dir), {})

        self._backend.adapter_hash[str(trained.path)] = adapter_hash(trained.path)
        variant = Variant("trial", trained.manifest["template"], adapter=str(trained.path))
        completions = self._backend.generate(build_requests(task, variant, items, ()))
        self._backend.release_adapter()  # the next trial trains without it
        metric, eval_device_s = score_trial(task, items, completions)
        m = trained.manifest
        return Trial(
            number, dict(params), metric, m.get("final_train_loss"), m.get("final_val_loss"), float(m["train_wall_s"]),
            float(m["train_device_s"]) + eval_device_s, str(trained.path),
        )  # fmt: skip
