"""The arms of a comparison besides the plan's prompt variants: each trained adapter with every
decoding a prompt has (free text, constrained choice, the selected prompt's wording), the noise
floor's anchor, the retention arms; and the validation choices compare makes as it goes (the prompt
the combined arm uses, the arms the latency probe times), by the rule the report applies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from harness.analysis.selection import best_per_side, select, validation_scores
from harness.core.types import Sample
from harness.experiment.manifest import Arm, retention_items
from harness.experiment.plan import Plan
from harness.experiment.variant import Variant, decoding_name, decoding_of, loglik_decodings
from harness.taskkit.registry import Task, get_task

# a retention job: the other task, its one arm, its items and (no) shot pool
RetentionJob = tuple[Task, list[Variant], tuple[Sample, ...], tuple[Sample, ...]]


def noise_anchor(variants: Sequence[Variant]) -> Variant | None:
    """The base model's zero-shot arm (free decoding), whose re-run in another batch order shows
    how many answers change with batch composition alone."""
    plain = [v for v in variants if not v.is_adapter and not v.shots and decoding_of(v) == "free"]
    return next((v for v in plain if v.name == "zero_shot"), plain[0] if plain else None)


def same_prompt(a: Variant, b: Variant) -> bool:
    keys = (
        "template",
        "shots",
        "constrained",
        "cue",
        "label_order",
        "layout",
        "max_tokens",
        "adapter",
        "scoring",
        "calibration",
    )
    same = all(getattr(a, k) == getattr(b, k) for k in keys)
    return same and (a.shots == 0 or a.selection == b.selection)


def select_prompt(task: Task, variants: list[Variant], val_records: list[dict[str, Any]]) -> Variant:
    """The prompt arm validation chooses (the same rule the report applies), for the combined arm."""
    names = [v.name for v in variants]
    val, n = validation_scores(val_records, task.primary_metric, task.labels, names)
    chosen = select({v: "prompt" for v in names}, dict.fromkeys(names, 0.0), val, n).prompt
    return next(v for v in variants if v.name == chosen)


def selectable(task: Task, arms: Sequence[Arm], val_records: list[dict[str, Any]]) -> list[Variant]:
    """Of one adapter's arms, those the report can select (the best on validation of each side):
    the latency probe times only these, since a user waits on the arm they deploy."""
    names = [v.name for v, _ in arms]
    val, _ = validation_scores(val_records, task.primary_metric, task.labels, names)
    if not all(n in val for n in names):
        return [v for v, _ in arms]
    sizes = {v.name: int(f.get("train_size") or 0) for v, f in arms}
    best = set(best_per_side({v.name: str(f.get("side", "adapter")) for v, f in arms}, val, sizes).values())
    return [v for v, _ in arms if v.name in best]


def adapter_arms(
    task: Task, variant: Variant, facts: dict[str, Any], prompt: Variant | None, scores_labels: bool = True
) -> list[Arm]:
    """An adapter offers the same decoding options as a prompt: free text, and constrained choice
    where the task has labels. With a searched prompt, the adapter served with that prompt's
    wording too (prompting and fine-tuning are not exclusive)."""
    arms = [(variant, facts)]
    if task.labels:
        twin = replace(variant, name=f"{variant.name}+constrained", constrained=True)
        arms.append((twin, {**facts, "constrained": True, "decoding": "constrained", "built_on": variant.name}))
    for scoring, calibration in loglik_decodings(task) if scores_labels else ():  # the prompt side's, too
        name = f"{variant.name}+{decoding_name(scoring, calibration)}"
        twin = replace(variant, name=name, scoring=scoring, calibration=calibration)
        arms.append((twin, {**facts, "decoding": decoding_name(scoring, calibration), "built_on": variant.name}))
    if prompt is not None:
        combined = replace(
            prompt, name=f"{variant.name}+{prompt.name}", adapter=variant.adapter, train_size=variant.train_size,
            seed=variant.seed,
        )  # fmt: skip
        arms.append(
            (combined, {**facts, "side": "combined", "built_on": variant.name, "prompt": prompt.name,
                        "constrained": prompt.constrained, "decoding": decoding_of(prompt)})
        )  # fmt: skip
    return arms


def retention_jobs(plan: Plan, trained: dict[str, list[Arm]], base: bool) -> list[RetentionJob]:
    """Retention scores the most-trained adapter of a task on other tasks, zero-shot, next to the
    base model: the base model's jobs (base=True) and the adapters' (base=False)."""
    jobs: list[RetentionJob] = []
    for tp in plan.tasks:
        if not (tp.retention and trained[tp.name]):
            continue
        best, _ = max(trained[tp.name], key=lambda vf: (vf[1]["train_size"], -vf[1]["seed"]))
        for other in tp.retention:
            task = get_task(other)
            items = retention_items(task, plan.limit, plan.seed)
            if base:
                jobs.append((task, [Variant(f"retention[{tp.name}]:base", "zero_shot")], items, ()))
            else:
                v = Variant(f"retention[{tp.name}]:{best.name}", "zero_shot", adapter=best.adapter)
                jobs.append((task, [v], items, ()))
    return jobs
