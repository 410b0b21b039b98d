"""Choosing a label by log-likelihood against constrained generation (xgrammar), on one engine.

Both answer the same question, "which label?": constrained generation decodes the label token by
token inside a grammar of the labels; log-likelihood scoring (harness.engines.backends.vllm) scores
every label after the prompt, reading the shared prompt from the prefix cache. The engine, dtype and
prompts are compare's; the prefix cache is emptied before every timed pass, so each pass pays for
its prompts once, as a compare batch does. Items/s and accuracy per workload; the ratio is
loglik over constrained. Writes results/bench/choice_scoring.json.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import engine_log, write_result

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
WORKLOADS = (
    ("banking77", int(os.environ.get("BENCH_N_BANKING", "50"))),
    ("twitter_fin_sentiment", int(os.environ.get("BENCH_N_TWITTER", "100"))),
)


def main() -> None:
    from harness.engines.backends.vllm import VLLMBackend
    from harness.engines.models import resolve
    from harness.experiment.requests import build_requests
    from harness.experiment.variant import Variant
    from harness.taskkit import data
    from harness.taskkit.registry import get_task

    model_dir = resolve()
    backend = VLLMBackend(model_dir)
    rows = []
    ratios = {}
    for task_name, n in WORKLOADS:
        task = get_task(task_name)
        items = data.test_items(task, n, seed=0)
        walls: dict[str, float] = {}
        for mode in ("constrained", "loglik"):
            variant = Variant(
                mode, "zero_shot", constrained=mode == "constrained", scoring="loglik" if mode == "loglik" else "generate"
            )
            requests = build_requests(task, variant, items, ())
            backend.generate(requests[:2])  # engine up, this shape warm
            engine = backend._engine
            best = float("inf")
            for _ in range(ROUNDS):
                engine.reset_prefix_cache()
                t0 = time.perf_counter()
                done = backend.generate(requests)
                best = min(best, time.perf_counter() - t0)
            walls[mode] = best
            accuracy = sum(c.text.strip() == s.target for c, s in zip(done, items, strict=True)) / len(items)
            rows.append({
                "task": task_name, "labels": len(task.labels), "mode": mode, "items": n, "wall_s": best,
                "items_per_s": n / best, "accuracy": accuracy,
            })  # fmt: skip
        ratios[task_name] = walls["constrained"] / walls["loglik"]
        rows[-1]["loglik_speed_over_constrained"] = ratios[task_name]
        rows[-2]["loglik_speed_over_constrained"] = ""
    backend.close()
    write_result("choice_scoring", rows, {"loglik_speed_over_constrained": ratios, "rounds": ROUNDS})


if __name__ == "__main__":
    with engine_log("choice_scoring"):
        main()
