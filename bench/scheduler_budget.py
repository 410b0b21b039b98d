"""The CPU engine's scheduler budget: tokens per step (max_num_batched_tokens) and sequences per step
(max_num_seqs) against vLLM's own defaults for an in-process engine (4096 and 256 on CPU).

A larger step is not faster on CPU: a step of 4096 tokens carries ~25 MB of MLP activations in
float32 for this model, well past a core's 2 MB L2, so the weights and activations stream from
memory again for every layer. Each budget gets a fresh in-process engine with compare's settings
(eager, prefix caching, KV blocks of 32, float32) in a process of its own, and the same requests:
twitter few-shot with a fixed shot set (short unique tails after a long shared prefix), banking77
zero-shot (a 586-token shared label list) and banking77 few-shot with similar shots (long unique
prompts). Each pass prepends a fresh marker to the system message so no pass finds another's
prefix cached; the marker's length is the same in every pass, so every pass computes the same
number of tokens. Budgets alternate within each round; the best wall of BENCH_ROUNDS counts. Answers
are compared with the default budget's (batching changes float32 summation order). Writes
results/bench/scheduler_budget.json.

    BENCH_N=400 BENCH_ROUNDS=2 BENCH_BUDGETS="4096x256 2048x128 1024x64 512x64"
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

N_ITEMS = int(os.environ.get("BENCH_N", "400"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
BUDGETS = os.environ.get("BENCH_BUDGETS", "4096x256 2048x128 1024x64 512x64").split()
DEFAULT = "4096x256"  # vLLM 0.32's own for an in-process engine on CPU (EngineArgs, UsageContext.LLM_CLASS)
WORKLOADS = (  # (task, variant name, template, shots, selection, share of N)
    ("twitter_fin_sentiment", "few_shot_6", "few_shot", 6, "fixed", 1.0),
    ("banking77", "zero_shot", "zero_shot", 0, "balanced", 0.5),
    ("banking77", "few_shot_8", "few_shot", 8, "similar", 0.125),
)


def one_budget(budget: str, round_no: int) -> dict[str, dict]:
    """In this process: start an engine with the budget, time each workload once; walls and answers."""
    from dataclasses import replace

    from harness.engines.backends.vllm import VLLMBackend
    from harness.engines.models import resolve
    from harness.experiment.requests import build_requests
    from harness.experiment.variant import Variant
    from harness.taskkit import data
    from harness.taskkit.registry import get_task

    tokens, seqs = (int(x) for x in budget.split("x"))
    backend = VLLMBackend(resolve(), max_num_batched_tokens=tokens, max_num_seqs=seqs)
    out: dict[str, dict] = {}
    for task_name, name, template, shots, selection, share in WORKLOADS:
        task = get_task(task_name)
        items = data.test_items(task, max(1, int(N_ITEMS * share)), seed=0)
        requests = build_requests(
            task, Variant(name, template, shots=shots, selection=selection), items, data.shot_pool(task)
        )
        if backend._engine is None:
            backend.generate(requests[:1])  # the engine's start and first pass, untimed
        marker = f"Run {round_no:02d}{budget:>9}. "  # same length for every budget and round
        marked = [
            replace(r, messages=(replace(r.messages[0], content=marker + r.messages[0].content), *r.messages[1:]))
            for r in requests
        ]
        t0 = time.perf_counter()
        done = backend.generate(marked)
        out[f"{task_name} {name}"] = {
            "wall_s": time.perf_counter() - t0,
            "texts": [c.text for c in done],
            "requests": len(done),
        }
    backend.close()
    return out


def main() -> None:
    from bench.common import write_result

    if len(sys.argv) == 3:  # a child: one budget, one round
        print(json.dumps(one_budget(sys.argv[1], int(sys.argv[2]))))
        return
    env = {**os.environ, "HARNESS_NO_SERVE": "1"}
    log = Path("results/bench/scheduler_budget.engine.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict]] = {b: [] for b in BUDGETS}
    with log.open("w") as sink:
        for r in range(ROUNDS):
            for budget in BUDGETS if r % 2 == 0 else BUDGETS[::-1]:
                child = subprocess.run([sys.executable, __file__, budget, str(r)], env=env, stdout=subprocess.PIPE,
                                       stderr=sink, text=True, check=True)  # fmt: skip
                runs[budget].append(json.loads(child.stdout.strip().splitlines()[-1]))
    base = DEFAULT if DEFAULT in runs else BUDGETS[0]
    rows = []
    for budget, passes in runs.items():
        for workload in passes[0]:
            walls = [p[workload]["wall_s"] for p in passes]
            base_best = min(p[workload]["wall_s"] for p in runs[base])
            changed = sum(
                a != b for a, b in zip(passes[0][workload]["texts"], runs[base][0][workload]["texts"], strict=True)
            )
            rows.append({
                "budget": budget, "workload": workload, "requests": passes[0][workload]["requests"],
                "best_wall_s": min(walls), f"x_{base}": base_best / min(walls),
                "answers_changed": changed, "all_walls_s": " ".join(f"{w:.1f}" for w in walls),
            })  # fmt: skip
    write_result("scheduler_budget", rows, {"rounds": ROUNDS, "items": N_ITEMS, "baseline": base, "budgets": BUDGETS})


if __name__ == "__main__":
    main()
