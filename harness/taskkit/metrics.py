"""A task's metrics over scored items, each with the paired test that belongs to it and the one
rule for how it is shown (a proportion in points, anything else as it is). Pure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from harness.core.errors import UserError, closest


@dataclass(frozen=True)
class Scored:
    """What corpus metrics need of one item."""

    prediction: str | None
    gold: str
    scores: dict[str, float]


def _mean(key: str) -> Callable[[Sequence[Scored], Sequence[str]], float]:
    def metric(items: Sequence[Scored], labels: Sequence[str]) -> float:
        return sum(i.scores[key] for i in items) / len(items) if items else float("nan")

    return metric


def _macro_f1(items: Sequence[Scored], labels: Sequence[str]) -> float:
    """sklearn's f1_score(average="macro", zero_division=0) over the golds' labels and the task labels
    predicted, computed on integer codes as the bootstrap and the permutation test compute it (the
    tests hold both to sklearn); importing sklearn for it cost every compare and report 1-2 s."""
    return corpus_macro_f1(items, labels)


METRICS: dict[str, Callable[[Sequence[Scored], Sequence[str]], float]] = {
    "accuracy": _mean("correct"),
    "exact_match": _mean("correct"),
    "macro_f1": _macro_f1,
    "rouge1": _mean("rouge1"),
    "rouge2": _mean("rouge2"),
    "rougeL": _mean("rougeL"),
}


# Metrics whose per-item value is a 0/1 outcome: these get an exact McNemar test.
BINARY_METRICS = frozenset({"accuracy", "exact_match"})


@dataclass(frozen=True)
class Metric:
    """A metric with the paired test that belongs to it, so no metric is tested by another's test:
    McNemar compares per-item 0/1 outcomes and so tests accuracy only; a corpus metric (macro-F1)
    or a mean of graded scores (ROUGE) gets a paired permutation test of the metric itself."""

    name: str
    corpus: Callable[[Sequence[Scored], Sequence[str]], float]
    item_key: str | None  # the per-item score whose mean is the metric; None for a corpus metric
    test: str  # "exact McNemar" | "paired permutation"
    points: bool  # a proportion, shown in percentage points

    def shown(self, value: float) -> str:
        """A value as every table, card and sentence shows it: a proportion in points with one
        decimal (66.2), anything else with three (0.412)."""
        return f"{value * 100:.1f}" if self.points else f"{value:.3f}"

    def change(self, value: float) -> str:
        """A difference, signed, with its unit: "+47.5 points", "-0.012"."""
        return f"{value * 100:+.1f} points" if self.points else f"{value:+.3f}"

    def interval(self, low: float, high: float) -> str:
        return f"95% CI {self.shown(low)} to {self.shown(high)}"

    def item_values(self, items: Sequence[Scored]) -> list[float]:
        assert self.item_key is not None
        return [i.scores.get(self.item_key, 0.0) for i in items]


def metric(name: str) -> Metric:
    if name in BINARY_METRICS:
        return Metric(name, METRICS[name], "correct", "exact McNemar", True)
    if name in ("rouge1", "rouge2", "rougeL"):
        return Metric(name, METRICS[name], name, "paired permutation", False)
    if name == "macro_f1":
        return Metric(name, METRICS[name], None, "paired permutation", True)
    return Metric(name, metric_fn(name), None, "paired permutation", False)


def metric_fn(name: str) -> Callable[[Sequence[Scored], Sequence[str]], float]:
    if name in METRICS:
        return METRICS[name]
    if name.startswith("evaluate:"):
        return _evaluate_metric(name.removeprefix("evaluate:"))
    raise UserError(
        f"unknown metric {name!r}{closest(name, list(METRICS))}; "
        "built-ins: " + ", ".join(METRICS) + ", or evaluate:NAME (needs hub access)"
    )


def _evaluate_metric(name: str) -> Callable[[Sequence[Scored], Sequence[str]], float]:
    """Any Hugging Face `evaluate` metric, for users with hub access (it fetches the script)."""

    def metric(items: Sequence[Scored], labels: Sequence[str]) -> float:
        import evaluate

        try:
            m = evaluate.load(name)
        except Exception as exc:
            raise UserError(f"could not load evaluate metric {name!r} (needs hub access): {exc}") from None
        out = m.compute(predictions=[i.prediction or "" for i in items], references=[i.gold for i in items])
        return float(next(iter(out.values())))

    return metric


def score_key(metric: str) -> str:
    """The per-item score a metric's paired test compares (macro-F1 pairs on correctness)."""
    return {"rouge1": "rouge1", "rouge2": "rouge2", "rougeL": "rougeL"}.get(metric, "correct")


def per_item_value(metric: str, item: Scored) -> float:
    return item.scores.get(score_key(metric), 0.0)


@dataclass(frozen=True)
class Coded:
    golds: np.ndarray  # integer codes of the gold answers (shared: the same items)
    preds: tuple[np.ndarray, ...]  # one array of prediction codes per variant
    allowed: np.ndarray  # per code: is it one of the task's labels


def code_labels(columns: Sequence[Sequence[Scored]], labels: Sequence[str]) -> Coded:
    codes: dict[str, int] = {}
    golds = np.array([codes.setdefault(i.gold, len(codes)) for i in columns[0]], dtype=int)
    preds = tuple(
        np.array(
            [codes.setdefault(i.prediction if i.prediction is not None else "<none>", len(codes)) for i in col], dtype=int
        )
        for col in columns
    )
    for label in labels:
        codes.setdefault(label, len(codes))
    allowed = np.zeros(len(codes), dtype=bool)
    allowed[[codes[label] for label in labels]] = True
    return Coded(golds, preds, allowed)


def f1_of_codes(golds: np.ndarray, preds: np.ndarray, allowed: np.ndarray) -> float:
    """scoring's macro-F1 on codes: the labels present are the golds' and the predicted task labels;
    F1 = 2tp / (predicted + actual), 0 where both are 0 (sklearn's zero_division=0)."""
    k = len(allowed)
    gold_n = np.bincount(golds, minlength=k)
    pred_n = np.bincount(preds, minlength=k)
    tp = np.bincount(golds[golds == preds], minlength=k)
    present = gold_n > 0
    if allowed.any():
        present |= (pred_n > 0) & allowed
    if not present.any():
        return float("nan")
    denom = gold_n + pred_n
    f1 = np.divide(2.0 * tp, denom, out=np.zeros(k), where=denom > 0)
    return float(f1[present].mean())


def corpus_macro_f1(items: Sequence[Scored], labels: Sequence[str]) -> float:
    coded = code_labels([items], labels)
    return f1_of_codes(coded.golds, coded.preds[0], coded.allowed)
