"""The runner: plan -> requests -> backend -> scored records. The only eval code doing I/O."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.core.faults import checkpoint
from harness.core.types import Completion, Request, Sample
from harness.engines.backends.base import Backend, BatchStats
from harness.engines.chat import device_count
from harness.experiment.bootstrap import Bootstrapped, bootstrap
from harness.experiment.calibration import Chooser, chooser
from harness.experiment.requests import build_requests
from harness.experiment.variant import Variant
from harness.runlog.folder import FORMATS, NOISE, SAMPLES, VALIDATION, SampleWriter, read_samples, unique_records
from harness.taskkit import scoring
from harness.taskkit.metrics import Scored, metric_fn
from harness.taskkit.registry import Task


def score_record(task: Task, variant: Variant, sample: Sample, request: Request, completion: Any) -> dict[str, Any]:
    prediction = scoring.extract(task, completion.text, sample)
    chosen = (
        {"choice_logprobs": list(completion.choice_logprobs), "scoring": variant.scoring, "calibration": variant.calibration}
        if getattr(completion, "choice_logprobs", ())
        else {}
    )  # what a log-likelihood choice was made from: every label's score, and how it was read
    return {
        **chosen,
        "task": task.name, "item": sample.id, "variant": variant.name,
        "messages": [asdict(m) for m in request.messages], "output": completion.text,
        "prediction": prediction, "gold": sample.target, "scores": scoring.score(task, prediction, sample),
        "prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens,
        "latency_s": completion.latency_s, "finish_reason": completion.finish_reason, "cached": completion.cached,
    }  # fmt: skip


BATCHES = "batches.jsonl"  # accounting per backend call: wall and device seconds, tokens, requests/s


def batch_record(
    task: str, chunk: Sequence[tuple[Variant, Sample, Request]], completions: Sequence[Any], wall: float
) -> dict[str, Any]:
    fresh = [c for c in completions if not c.cached]
    stats = BatchStats(
        len(chunk), wall, wall * device_count(), sum(c.prompt_tokens for c in fresh), sum(c.completion_tokens for c in fresh)
    )
    return {
        "task": task,
        "variants": sorted({v.name for v, _, _ in chunk}),
        "cached": len(completions) - len(fresh),
        **asdict(stats),
        "requests_per_s": round(stats.requests_per_s, 3),
    }


def evaluate(
    task: Task,
    variants: Sequence[Variant],
    items: Sequence[Sample],
    pool: Sequence[Sample],
    backend: Backend,
    run_dir: Path,
    seed: int = 0,
    batch_size: int = 128,
    on_batch: Callable[[int, int], None] | None = None,
    split: str = "test",
    calibration_items: Sequence[Sample] = (),
) -> list[dict[str, Any]]:
    """Evaluate every variant on the same items; finished (item, variant) records are kept, so a
    rerun after a crash only computes what is missing. Returns this task's records.
    `on_batch(done, total)` after the kept records are counted and after each batch.

    `split` "validation" writes to validation.jsonl: the records every selection is made on,
    kept apart from the test records the report's numbers come from. `calibration_items`: the
    validation items a "batch"-calibrated variant estimates its prior on (the items themselves on
    the validation split)."""
    path = run_dir / {"test": SAMPLES, "validation": VALIDATION, "noise": NOISE, "formats": FORMATS}[split]
    done = unique_records(r for r in read_samples(path) if r.get("task") == task.name)
    chunks: list[list[tuple[Variant, Sample, Request]]] = []
    prepared: dict[str, tuple[Variant, tuple[Sample, ...], Bootstrapped | None]] = {}  # bootstrapped shots
    for v in sorted(variants, key=lambda v: v.adapter or ""):  # base first, one adapter at a time
        missing = [s for s in items if (s.id, v.name) not in done]
        if missing:
            shown, shots_from, boot = bootstrap(task, v, pool, backend, seed)
            prepared[v.name] = (shown, shots_from, boot)
            requests = build_requests(task, shown, missing, shots_from, seed)
            mine = list(zip([v] * len(missing), missing, requests, strict=True))
            # a batch holds one variant: its wall time per request is that variant's cost, not a mix
            chunks += [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]
    todo = [job for chunk in chunks for job in chunk]
    total = len(items) * len(variants)
    finished = total - len(todo)  # kept from an earlier run: a resumed or finished run says so, not 0/?
    if on_batch:
        on_batch(finished, total)
    rules: dict[str, Chooser | None] = {}
    for v in {v.name: v for chunk in chunks for v, _, _ in chunk}.values():
        calibrate_on = items if split == "validation" else calibration_items
        shown, shots_from, _ = prepared[v.name]
        rules[v.name] = chooser(task, shown, items, shots_from, backend, seed, calibrate_on)
    writer = SampleWriter(path)
    batches = SampleWriter(run_dir / BATCHES)
    try:
        for chunk in chunks:
            started = time.perf_counter()
            completions = backend.generate([r for _, _, r in chunk])
            wall = time.perf_counter() - started
            completions = [chosen(rules[v.name], c, r) for (v, _, r), c in zip(chunk, completions, strict=True)]
            records = [score_record(task, v, s, r, c) for (v, s, r), c in zip(chunk, completions, strict=True)]
            for rec, (v, _, _) in zip(records, chunk, strict=True):
                if (boot := prepared[v.name][2]) is not None:
                    rec["bootstrap"] = boot.as_record()  # what finding its shots cost: the prompt side's one-off
            checkpoint("before-append")
            writer.append(records)
            batches.append([{**batch_record(task.name, chunk, completions, wall), "split": split}])
            checkpoint("after-batch")
            for rec in records:
                done[(rec["item"], rec["variant"])] = rec
            finished += len(chunk)
            if on_batch:
                on_batch(finished, total)
    finally:
        writer.close()
        batches.close()
    names = {v.name for v in variants}
    ids = {s.id for s in items}
    return [r for (item, name), r in done.items() if name in names and item in ids]


def chosen(rule: Chooser | None, completion: Completion, request: Request) -> Completion:
    return completion if rule is None else rule.choose(completion, request.decoding.choices or ())


def score_trial(task: Task, items: Sequence[Sample], completions: Sequence[Completion]) -> tuple[float, float]:
    """(the task's primary metric, device-seconds) of a search trial's answers on the validation
    items: each completion carries its share of its batch's wall time (a cached one, the time it
    first took)."""
    scored = []
    for s, c in zip(items, completions, strict=True):
        prediction = scoring.extract(task, c.text, s)
        scored.append(Scored(prediction, s.target, scoring.score(task, prediction, s)))
    return metric_fn(task.primary_metric)(scored, task.labels), sum(c.latency_s for c in completions) * device_count()
