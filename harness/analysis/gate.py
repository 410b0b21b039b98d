"""Regression gate for prompt authors: is any variant significantly worse than the baseline run?
The variants both runs hold are one family of paired tests, Holm-corrected."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.analysis.records import scored
from harness.analysis.stats import Estimate, Paired, holm, paired_compare
from harness.core.errors import UserError
from harness.runlog.completeness import missing_answers
from harness.runlog.folder import load_run


def _load(run: Path, role: str) -> tuple[dict[str, Any], dict[tuple[str, str], dict[str, dict[str, Any]]]]:
    manifest, records = load_run(run)
    missing = missing_answers(manifest, records)
    if missing:  # a gate on the items a killed run happened to finish would pass or fail by accident
        raise UserError(
            f"{role} run {run} is incomplete ({'; '.join(missing)}): rerun `harness compare` with its plan "
            "to finish it (it resumes), then gate"
        )
    grouped: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in records:
        grouped[(r["task"], r["variant"])][r["item"]] = r
    return manifest, grouped


@dataclass(frozen=True)
class GateRow:
    """One variant both runs hold: the candidate against the baseline on their shared items."""

    task: str
    variant: str
    metric: str
    n_items: int
    diff: Estimate
    p_holm: float | None
    worse: bool
    flipped: tuple[str, ...]  # items right in the baseline and wrong in the candidate


@dataclass(frozen=True)
class Gate:
    rows: tuple[GateRow, ...]
    not_gated: tuple[str, ...]  # task/variant in the baseline only: renamed or dropped, said, not failed
    no_shared_items: tuple[str, ...]  # task/variant held by both without an item in common

    @property
    def failures(self) -> list[str]:
        return [f"{r.task}/{r.variant}" for r in self.rows if r.worse]


def run_gate(candidate: Path, baseline: Path, alpha: float) -> Gate:
    """Every variant both runs hold, gated as one family of paired tests (Holm)."""
    cand_manifest, cand = _load(candidate, "candidate")
    _, base = _load(baseline, "baseline")
    shared = sorted(set(cand) & set(base))
    if not shared:
        raise UserError(f"{candidate} and {baseline} share no (task, variant) to compare")
    compared: list[tuple[str, str, list[str], list[dict[str, Any]], list[dict[str, Any]], str, Paired]] = []
    empty = []
    for task, variant in shared:
        items = sorted(set(cand[(task, variant)]) & set(base[(task, variant)]))
        if not items:
            empty.append(f"{task}/{variant}")
            continue
        info = cand_manifest["tasks"][task]
        metric, labels = info["metrics"][0], info.get("labels") or ()
        a = [base[(task, variant)][i] for i in items]
        b = [cand[(task, variant)][i] for i in items]
        other = [i for i, x, y in zip(items, a, b, strict=True) if x.get("gold") != y.get("gold")]
        if other:  # same item ids, other examples (a revised data file): pairing them would gate nothing
            raise UserError(
                f"{task}: the baseline and the candidate disagree on the gold answer of {len(other)} of "
                f"{len(items)} shared items (first: {other[0]}); they ran on different data, so their items "
                "do not pair: gate two runs of the same test data"
            )
        known = info.get("clusters") or {}  # items that share a source are not independent: as the report tests
        clusters = [str(known.get(i, i)) for i in items] if known else None
        compared.append((task, variant, items, a, b, metric, paired_compare(scored(a), scored(b), metric, labels,
                                                                               clusters=clusters)))  # fmt: skip
    if not compared:
        raise UserError(f"{candidate} and {baseline} share no test items: nothing to compare (were they run on other data?)")
    # one family: every variant gated at once, so a change that moves none of them fails the gate
    # with probability at most alpha however many variants there are (Holm, as the report corrects)
    adjusted = holm([c[-1].p_value for c in compared])
    rows = []
    for (task, variant, items, a, b, metric, result), p_holm in zip(compared, adjusted, strict=True):
        worse = result.diff.value < 0 and (p_holm < alpha if p_holm is not None else result.diff.high < 0)
        flipped = tuple(
            i
            for i, x, y in zip(items, a, b, strict=True)
            if x["scores"].get("correct", 0) > 0.5 and y["scores"].get("correct", 0) <= 0.5
        )
        rows.append(GateRow(task, variant, metric, len(items), result.diff, p_holm, worse, flipped))
    gone = tuple(f"{t}/{v}" for t, v in sorted(set(base) - set(cand)))
    return Gate(tuple(rows), gone, tuple(empty))
