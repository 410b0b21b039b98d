"""Which arm wins, decided on validation items only. Pure: the whole protocol is in this file.

- Every arm of a task is scored on the same validation items, carved from the training split
  (never test items, never a few-shot example, never an adapter's training row). An arm is on
  one side: "prompt" (a hand-written variant or the prompt search's best), "adapter" (an adapter
  with one decoding: free text or constrained choice) or "combined" (an adapter served with the
  selected prompt's wording).
- The prompt arm is the prompt-side arm with the best validation metric, the adapter arm
  likewise; ties go to the cheaper arm (fewer prompt tokens, then fewer training rows), then to
  the name, so the choice is deterministic and never prefers lora_n1000 to lora_n256 for its name.
- The combined arm is the one built on the selected adapter.
- Test scores never enter a choice. They are read afterwards only to report, for each selected
  arm, its test score and its rank on its side: the "selection optimism" a reader should see.
- Runs made before validation records existed fall back to choosing on test, and say so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.taskkit.metrics import Scored, metric_fn

SIDES = ("prompt", "adapter", "combined")


@dataclass(frozen=True)
class ArmScore:
    variant: str
    side: str
    val: float | None  # validation metric (None when selection fell back to test)
    test: float
    test_rank: int  # 1 = the best test score on its side
    side_size: int  # arms on that side


@dataclass(frozen=True)
class Selection:
    on: str  # "validation" | "test" (old runs only)
    n_val_items: int
    prompt: str
    adapter: str | None
    combined: str | None
    arms: tuple[ArmScore, ...]

    def arm(self, variant: str) -> ArmScore:
        return next(a for a in self.arms if a.variant == variant)

    def chosen(self) -> tuple[ArmScore, ...]:
        return tuple(self.arm(v) for v in (self.prompt, self.adapter, self.combined) if v)


def validation_scores(
    records: Sequence[Mapping[str, Any]], metric: str, labels: Sequence[str], variants: Sequence[str]
) -> tuple[dict[str, tuple[float, float]], int]:
    """variant -> (metric, mean prompt tokens) over the validation items every listed variant
    answered, and how many items that is. Variants without validation records are left out."""
    by_variant: dict[str, dict[str, Mapping[str, Any]]] = defaultdict(dict)
    for r in records:
        if r["variant"] in variants:
            by_variant[r["variant"]].setdefault(r["item"], r)
    if not by_variant:
        return {}, 0
    items = sorted(frozenset.intersection(*(frozenset(v) for v in by_variant.values())))
    if not items:
        return {}, 0
    fn = metric_fn(metric)
    out = {}
    for v, recs in by_variant.items():
        rs = [recs[i] for i in items]
        scored = [Scored(r["prediction"], r["gold"], dict(r["scores"])) for r in rs]
        out[v] = (fn(scored, labels), sum(float(r["prompt_tokens"]) for r in rs) / len(rs))
    return out, len(items)


def _best(candidates: Sequence[str], score: Mapping[str, tuple[float, float]], rows: Mapping[str, int] | None = None) -> str:
    rows = rows or {}
    return min(candidates, key=lambda v: (-score[v][0], score[v][1], rows.get(v, 0), v))


def best_per_side(
    sides: Mapping[str, str], val: Mapping[str, tuple[float, float]], rows: Mapping[str, int] | None = None
) -> dict[str, str]:
    """Per side, the arm validation chooses, by the rule `select` applies."""
    by_side: dict[str, list[str]] = defaultdict(list)
    for v, side in sides.items():
        by_side[side].append(v)
    return {side: _best(members, val, rows) for side, members in by_side.items()}


def select(
    sides: Mapping[str, str],
    test: Mapping[str, float],
    val: Mapping[str, tuple[float, float]],
    n_val_items: int,
    built_on: Mapping[str, str] | None = None,
    test_tokens: Mapping[str, float] | None = None,
    rows: Mapping[str, int] | None = None,
) -> Selection:
    """`sides`: variant -> side; `test`: variant -> test metric (reporting only); `val`: variant ->
    (validation metric, prompt tokens); `built_on`: adapter or combined arm -> the adapter it serves
    (a constrained twin and a combined arm are built on the same trained adapter); `rows`: an
    adapter arm's training rows, which break a tie in favour of the cheaper arm."""
    built_on = built_on or {}
    covered = all(v in val for v in sides)
    if covered and val:
        on, score = "validation", dict(val)
    else:  # an old run: no validation records. Say so rather than pretend.
        on, score, n_val_items = "test", {v: (test[v], (test_tokens or {}).get(v, 0.0)) for v in sides}, 0
    by_side: dict[str, list[str]] = defaultdict(list)
    for v, side in sides.items():
        by_side[side].append(v)
    if not by_side["prompt"]:
        raise ValueError("no prompt arm to select from")
    prompt = _best(by_side["prompt"], score, rows)
    adapter = _best(by_side["adapter"], score, rows) if by_side["adapter"] else None
    combined = None
    if adapter is not None:
        base = built_on.get(adapter, adapter)
        mine = [v for v in by_side["combined"] if built_on.get(v) == base]
        combined = _best(mine, score, rows) if mine else None
    arms = []
    for side, members in by_side.items():
        ranked = sorted(members, key=lambda v: -test[v])
        for v in members:
            rank = 1 + sum(test[o] > test[v] for o in ranked)
            arms.append(ArmScore(v, side, score[v][0] if on == "validation" else None, test[v], rank, len(members)))
    return Selection(on, n_val_items, prompt, adapter, combined, tuple(sorted(arms, key=lambda a: a.variant)))


def describe(sel: Selection, fmt: Any = lambda x: f"{x:.3f}") -> str:
    """One sentence: which arms were chosen, on what, and how their test scores ranked."""
    if sel.on != "validation":
        return (
            "Arms were chosen on their test scores (this run has no validation records), so the "
            "winners' scores are optimistic; rerun compare to select on validation."
        )
    parts = []
    for a in sel.chosen():
        parts.append(
            f"{a.side} {a.variant} (validation {fmt(a.val)}, test {fmt(a.test)}, test rank {a.test_rank} of {a.side_size})"
        )
    return f"Chosen on {sel.n_val_items} validation items, never on test: " + "; ".join(parts) + "."
