"""What a summary is made of: an arm's row of the table, the task's summary, and the few rules every
analysis module reads records by (scored items, significance, an arm's side). Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.analysis import cost as cost_mod
from harness.analysis import decision as decision_mod
from harness.analysis import effort as effort_mod
from harness.analysis import selection as sel_mod
from harness.analysis import worth as worth_mod
from harness.analysis.stats import Estimate
from harness.taskkit.metrics import Scored

ALPHA = 0.05


@dataclass(frozen=True)
class Row:
    variant: str
    is_adapter: bool
    train_size: int | None
    seed: int
    metric: Estimate
    secondary: dict[str, float]
    diff: Estimate | None  # against the best prompt, paired on the same items
    p_value: float | None  # the paired test alone: what a headline arm is judged by
    p_holm: float | None  # Holm over the exploratory arms; None for a headline arm (tested alone)
    prompt_tokens: float
    completion_tokens: float
    latency_s: float
    cost_per_1k: float
    train_cost: float | None
    break_even: cost_mod.BreakEven | None
    overfit: bool = False
    side: str = "prompt"  # "prompt" | "adapter" | "combined"
    constrained: bool = False
    decoding: str = "free"  # "free", "constrained" or a log-likelihood choice ("loglik", "loglik_batch", ...)
    test: str = ""  # the paired test behind p_value: the metric's own (taskkit.metrics.metric)
    mde: float | None = None  # smallest difference from the selected prompt these items detect
    wait_p50: float | None = None  # seconds a single request waits (the latency probe, concurrency 1)
    wait_p95: float | None = None
    ci_level: float = 0.95  # of `diff`: an exploratory arm's interval is at the Bonferroni level 1 - alpha/m


@dataclass(frozen=True)
class VerdictText:
    """A task's verdict as every renderer shows it: one sentence that names the action, then short
    labelled lines (how sure, cost at volume, what would change the decision, robustness, tuning
    budgets, data caveats)."""

    headline: str
    lines: tuple[tuple[str, str], ...] = ()

    @property
    def text(self) -> str:
        return " ".join([self.headline, *(f"{label}: {line}" for label, line in self.lines)])


@dataclass(frozen=True)
class TaskSummary:
    task: str
    metric: str
    n_items: int
    rows: tuple[Row, ...]
    best_prompt: str
    best_adapter: str | None
    verdict: str
    learning_curve: tuple[tuple[int, float, float, float], ...]  # (size, mean metric, low, high)
    smallest_winning_size: int | None
    confusion: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    disagreements: tuple[dict[str, Any], ...] = ()
    training: tuple[dict[str, Any], ...] = ()  # per adapter and epoch: train and validation loss
    majority: tuple[str, float] | None = None  # (commonest training label, its share of the test items)
    retention: tuple[RetentionRow, ...] = ()
    data_warnings: tuple[str, ...] = ()
    selection: sel_mod.Selection | None = None
    selection_note: str = ""
    efforts: tuple[effort_mod.Effort, ...] = ()
    combined: str = ""  # does the selected adapter with the selected prompt beat both?
    noise: tuple[str, int, int] | None = None  # (arm, answers changed, items) when re-run in another batch order
    formats: FormatSpread | None = None
    worth: worth_mod.Worth | None = None  # the selected prompt in training rows (the learning curve)
    one_offs: tuple[cost_mod.OneOff, ...] = ()  # (prompt side, adapter side): everything paid before serving
    at_volume: tuple[cost_mod.AtVolume, ...] = ()  # the chosen arms at the plan's requests_per_month
    structured: VerdictText | None = None  # `verdict`, as a headline and labelled lines
    decided: decision_mod.Decision | None = None  # the rule behind the headline (the card's slider applies it)


@dataclass(frozen=True)
class FormatSpread:
    """The selected prompt under meaning-preserving format perturbations, on the test items."""

    arm: str
    original: float  # the metric as the prompt was written
    values: tuple[tuple[str, str, float], ...]  # (arm name, what changed, metric) per perturbed format
    claim: str = ""  # the verdict's direction ("the adapter beats the prompt"); "" without an adapter
    holds: int = 0  # formats in which that claim holds


@dataclass(frozen=True)
class RetentionRow:
    """What specialising cost elsewhere: an adapter against the base model on another task."""

    source: str
    adapter: str
    task: str
    metric: str
    base: Estimate
    tuned: Estimate
    diff: Estimate
    p_value: float | None
    sentence: str


def mean_of(records: Sequence[Mapping[str, Any]], key: str) -> float:
    """An arm's mean of a record field; for time, of its fresh answers (a cached answer's time was
    measured in another run, in another batch)."""
    rs = [r for r in records if not r.get("cached")] if key == "latency_s" else records
    rs = rs or records
    return sum(float(r[key]) for r in rs) / len(rs)


def scored(records: Sequence[Mapping[str, Any]]) -> list[Scored]:
    return [Scored(r["prediction"], r["gold"], dict(r["scores"])) for r in records]


def significant(p: float | None, diff: Estimate) -> bool:
    if p is not None:
        return p < ALPHA
    return diff.low > 0 or diff.high < 0


def side_of(facts: Mapping[str, Any] | None) -> str:
    if facts is None:
        return "prompt"
    return "combined" if facts.get("side") == "combined" else "adapter"


def align(records: Sequence[Mapping[str, Any]], task: str) -> tuple[list[str], dict[str, list[Mapping[str, Any]]]]:
    by_variant: dict[str, dict[str, Mapping[str, Any]]] = defaultdict(dict)
    for r in records:
        by_variant[r["variant"]].setdefault(r["item"], r)
    item_sets = {frozenset(v) for v in by_variant.values()}
    items = sorted(frozenset.intersection(*item_sets)) if item_sets else []
    if not items:
        raise ValueError(f"{task}: no items shared by all variants")
    return items, {v: [recs[i] for i in items] for v, recs in by_variant.items()}
