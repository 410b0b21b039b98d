"""The many-shot arm: as many 'similar' few-shot examples as the context allows, so the prompt
side can use the labelled rows the adapter learns from (data-matched arms). Pure given a
token-counting function.

The number of shots k is one for the whole arm (every item gets k examples, the most similar
last): the largest k for which every item's prompt plus its answer budget fits the context.
Prompt length is additive in the shots (each is a user turn and an assistant turn), so each
shot's cost is counted once, as the difference it makes to a prompt, and summed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from harness.core.errors import UserError
from harness.core.types import Message, Sample
from harness.experiment.requests import build_requests
from harness.experiment.variant import Variant
from harness.taskkit import prompts
from harness.taskkit.formats import Layout
from harness.taskkit.registry import Task

MAX_SHOTS = 200  # beyond this a 4k-token context never has room on these tasks; a bound on the work


def many_shot_k(
    task: Task,
    variant: Variant,
    item_sets: Sequence[Sequence[Sample]],
    pool: Sequence[Sample],
    count: Callable[[Sequence[Message]], int],
    max_len: int,
    seed: int = 0,
    cap: int = MAX_SHOTS,
) -> int:
    """The largest k (at most `cap` and the pool less one) for which every item's prompt with its
    k most similar examples, plus its answer budget, fits `max_len` tokens by the additive count."""
    cap = min(cap, len(pool) - 1)
    if cap < 1:
        raise UserError(f"variant {variant.name} of {task.name}: the shot pool has no examples to show")
    widest = replace(variant, shots=cap, selection="similar", many_shot=False)
    selector = prompts.ShotSelector(task, pool, cap, "similar", seed)
    pair_cost: dict[str, int] = {}
    best = cap
    for items in item_sets:
        for s, bare in zip(items, build_requests(task, replace(widest, shots=0), items, pool, seed), strict=True):
            base = count(bare.messages)
            room = max_len - bare.decoding.max_tokens - base
            shots = selector.select(s)  # most similar last: k shots are the last k
            used, k = 0, 0
            for shot in reversed(shots):
                if shot.id not in pair_cost:
                    with_shot = prompts.render(task, variant.template, s, (shot,), _fmt(variant, seed))
                    pair_cost[shot.id] = count(with_shot) - base
                used += pair_cost[shot.id]
                if used > room:
                    break
                k += 1
            best = min(best, k)
            if best == 0:
                raise UserError(
                    f"variant {variant.name} of {task.name}: item {s.id} leaves no room for a single example in "
                    f"{max_len} tokens; use few_shot with fewer shots, or a larger --max-model-len"
                )
    return best


def _fmt(variant: Variant, seed: int) -> prompts.PromptFormat:
    return prompts.PromptFormat(variant.cue, variant.label_order, seed, Layout.decode(variant.layout))


def resolve(
    task: Task,
    variants: Sequence[Variant],
    item_sets: Sequence[Sequence[Sample]],
    pool: Sequence[Sample],
    count: Callable[[Sequence[Message]], int],
    max_len: int,
    seed: int = 0,
) -> list[Variant]:
    """Each many-shot variant with its k filled in (the rest unchanged)."""
    return [
        replace(v, shots=many_shot_k(task, v, item_sets, pool, count, max_len, seed), selection="similar")
        if v.many_shot and not v.shots
        else v
        for v in variants
    ]
