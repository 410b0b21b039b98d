"""The machinery both sides of an equal-effort comparison tune with: a space of settings, a trial
budget, proposals from a grid, seeded random distinct points or Optuna's TPE sampler, and a log of
finished trials (appended and fsynced as each finishes, so an interrupted search resumes and never
records a trial twice). The adapter sweep (harness.experiment.sweep) and the prompt search
(harness.experiment.prompt_search) each bring their space's meaning and their trial runner."""

from __future__ import annotations

import itertools
import json
import random
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from harness.core.errors import UserError, closest
from harness.core.progress import Bar
from harness.runlog.folder import SampleWriter, read_samples

METHODS = ("grid", "random", "tpe")


@dataclass(frozen=True)
class Space:
    params: tuple[tuple[str, tuple[Any, ...]], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.params)

    @property
    def size(self) -> int:
        n = 1
        for _, values in self.params:
            n *= len(values)
        return n


def grid(space: Space) -> list[dict[str, Any]]:
    return [dict(zip(space.names, combo, strict=True)) for combo in itertools.product(*(v for _, v in space.params))]


@dataclass(frozen=True)
class Trial:
    # how a stored trial is read back (harness.core.schema.validate): exactly these fields, typed
    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid", "strict": True}

    number: int
    params: dict[str, Any]
    metric: float
    train_loss: float | None
    val_loss: float | None
    wall_s: float
    device_s: float
    adapter: str

    def cost(self, usd_per_hour: float) -> float:
        return self.device_s * usd_per_hour / 3600


@dataclass(frozen=True)
class SweepSummary:
    metric: str
    trials: tuple[Trial, ...]
    best: Trial
    median: float
    spread: float  # best minus median: the part of the fine-tuning result owed to tuning
    sensitivity: dict[str, list[tuple[Any, float, int]]]  # param -> [(value, mean metric, trials)]


def summarise(trials: Sequence[Trial], metric: str) -> SweepSummary:
    if not trials:
        raise UserError("the sweep finished no trial")
    best = max(trials, key=lambda t: (t.metric, -(t.val_loss if t.val_loss is not None else float("inf")), -t.number))
    med = statistics.median(t.metric for t in trials)
    sens: dict[str, list[tuple[Any, float, int]]] = {}
    for name in trials[0].params:
        values = sorted({t.params[name] for t in trials})
        sens[name] = [
            (
                v,
                statistics.fmean(t.metric for t in trials if t.params[name] == v),
                sum(1 for t in trials if t.params[name] == v),
            )
            for v in values
        ]
    return SweepSummary(metric, tuple(trials), best, med, best.metric - med, sens)


def heatmap(trials: Sequence[Trial], x: str, y: str) -> dict[tuple[Any, Any], float]:
    """Mean metric for each (x, y) pair that a trial covered."""
    cells: dict[tuple[Any, Any], list[float]] = {}
    for t in trials:
        cells.setdefault((t.params[x], t.params[y]), []).append(t.metric)
    return {k: statistics.fmean(v) for k, v in cells.items()}


class TrialLog:
    """A search's trials.jsonl: finished trials by settings, each appended (fsynced) as it finishes,
    so an interrupted search resumes and a trial is never recorded twice."""

    def __init__(
        self, path: Path, on_trial: Callable[[Trial], None] | None = None, label: str = "", budget: int | None = None
    ):
        self.done = {json.dumps(r["params"], sort_keys=True): Trial(**r) for r in read_samples(path, Trial)}
        self.trials: list[Trial] = list(self.done.values())
        self.on_trial = on_trial
        self._writer = SampleWriter(path)
        self._bar = Bar(label, budget, min(len(self.trials), budget)) if label and budget else None

    def record(self, trial: Trial) -> None:
        key = json.dumps(trial.params, sort_keys=True)
        if key not in self.done:
            self.done[key] = trial
            self.trials.append(trial)
            self._writer.append([asdict(trial)])
            if self._bar is not None:
                self._bar.advance()
        if self.on_trial:
            self.on_trial(trial)

    def close(self) -> None:
        self._writer.close()
        if self._bar is not None:
            self._bar.close()


def key(params: Mapping[str, Any]) -> str:
    """A point of a space as the trial log keys it."""
    return json.dumps(dict(params), sort_keys=True)


def check_budget(method: str, budget: int, max_device_s: float | None = None, what: str = "the trial budget") -> None:
    if method not in METHODS:
        raise UserError(f"unknown search method {method!r}{closest(method, METHODS)} (choose from {', '.join(METHODS)})")
    if budget <= 0:
        raise UserError(f"{what} must be at least 1, got {budget}")
    if max_device_s is not None and not max_device_s > 0:
        raise UserError(f"the device-seconds budget must be positive, got {max_device_s}")


# Runs trials: (number, params) in, each finished Trial out as it finishes (in sequence, or from Ray).
TrialRunner = Callable[[Sequence[tuple[int, dict[str, Any]]]], Iterable[Trial]]


def propose(
    space: Space,
    points: Sequence[dict[str, Any]],
    *,
    method: str,
    budget: int,
    seed: int,
    log: TrialLog,
    run_trials: TrialRunner,
    spent: Callable[[], bool] = lambda: False,
    parallel: int = 1,
) -> None:
    """Drive a search over `points` (the space's candidates) within `budget` trials, or until
    `spent()` (a device-seconds budget): the first points of the grid, seeded random distinct points,
    or Optuna's TPE sampler over the space's values. A trial the log holds is never run again."""
    if method == "tpe":
        _tpe(space, points, budget, seed, log, run_trials, spent, parallel)
        return
    if method == "grid":
        configs = list(points[:budget])
    else:
        configs = random.Random(seed).sample(list(points), min(budget, len(points)))
    todo = [(i, p) for i, p in enumerate(configs) if key(p) not in log.done]
    if parallel > 1:
        for trial in run_trials(todo):
            log.record(trial)
        return
    for i, params in todo:
        if spent():
            break
        for trial in run_trials([(i, params)]):
            log.record(trial)


def _tpe(
    space: Space,
    points: Sequence[dict[str, Any]],
    budget: int,
    seed: int,
    log: TrialLog,
    run_trials: TrialRunner,
    spent: Callable[[], bool],
    parallel: int,
) -> None:
    """Optuna TPE over the space; a proposal outside `points` (over the context, or a point already
    tried) is told as failed and costs no trial. With `parallel` > 1 (Ray), that many are asked for
    before any is told."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    dists: dict[str, optuna.distributions.BaseDistribution] = {
        n: optuna.distributions.CategoricalDistribution(list(v)) for n, v in space.params
    }
    allowed = {key(p) for p in points}
    number, asked, limit = 0, 0, min(budget, len(allowed))
    while number < limit and asked < 50 * budget and not spent():
        batch: list[tuple[Any, int, dict[str, Any]]] = []
        while len(batch) < min(parallel, limit - number) and asked < 50 * budget:
            asked += 1
            ot = study.ask(dists)
            if key(ot.params) not in allowed:
                study.tell(ot, state=optuna.trial.TrialState.FAIL)
                continue
            allowed.discard(key(ot.params))
            batch.append((ot, number, dict(ot.params)))
            number += 1
        fresh = {t.number: t for t in run_trials([(i, p) for _, i, p in batch if key(p) not in log.done])}
        for ot, i, params in batch:
            trial = log.done.get(key(params)) or fresh[i]
            study.tell(ot, trial.metric)
            log.record(trial)


@dataclass(frozen=True)
class SearchSettings:
    """A search as `harness sweep` runs it: a plan's [task.sweep] or [task.prompt_search] (when one is
    named), with the values given on the command line added to its space."""

    side: str  # "adapter" | "prompt"
    space: dict[str, Any]  # the raw space, parsed by the side's own parse_space
    base: dict[str, Any]  # training settings the adapter side starts from
    method: str
    trials: int
    max_device_s: float | None
    model: str | None  # the plan's model, prompted by the prompt side


def search_settings(
    side: str,
    plan: Any,
    where: str,
    task: str,
    method: str,
    trials: int,
    max_device_s: float | None,
    adapter_values: Mapping[str, Any],
    prompt_values: Mapping[str, Any],
) -> SearchSettings:
    """`plan`: the loaded plan (from the file `where`) or None. A value given for the other side is
    refused, never left out."""
    if side not in ("adapter", "prompt"):
        raise UserError(f"--side must be adapter or prompt, got {side!r}")
    base: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    model = None
    if plan is not None:
        tp = next((t for t in plan.tasks if t.name == task), None)
        if tp is None:
            raise UserError(f"plan {where} has no [[task]] named {task}")
        section = tp.sweep if side == "adapter" else tp.prompt_search
        base, raw, model = dict(tp.train), dict(section.get("space", {})), plan.model
        method, trials = section.get("method", method), int(section.get("trials", trials))
        if side == "prompt" and max_device_s is None:
            max_device_s = section.get("max_device_s")
    other, ignored = ("adapter", adapter_values) if side == "prompt" else ("prompt", prompt_values)
    given = [k for k, v in ignored.items() if v is not None]
    if side == "adapter" and max_device_s is not None:
        given.append("max_device_s")
    if given:  # never a search that silently left out a setting the user asked to vary
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        article = "an" if other == "adapter" else "a"
        what = f"is {article} {other}-side setting" if len(given) == 1 else f"are {other}-side settings"
        raise UserError(f"{flags} {what}, which --side {side} would leave out (use --side {other})")
    mine = prompt_values if side == "prompt" else adapter_values
    raw.update({k: v for k, v in mine.items() if v is not None and (side == "prompt" or v)})
    return SearchSettings(side, raw, base, method, trials, max_device_s, model)
