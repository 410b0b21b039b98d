"""float32 against bf16 for the base model on CPU: how much faster, and how many answers change.

The evidence behind serving the base model in float32 on CPU even where the CPU multiplies bf16 in
hardware (AVX512_BF16, AMX): a dtype may become the default only where its answers are the
float32 ones (the issue's rule: bf16 where check-adapter shows parity). Each dtype gets an
in-process engine with compare's settings (eager, prefix caching, the CPU's KV block size) and the
same requests: label answers (twitter few-shot with a fixed shot set; banking77 few-shot with
similar shots) and free text (banking77 zero-shot, where the model rarely answers with a label).
The prefix cache is emptied before every timed pass; the best wall of BENCH_ROUNDS counts. Reports
the speed ratio, the answers that differ from float32, and each dtype's accuracy. On a CPU without
bf16 instructions bf16 is emulated (several times slower): the JSON's hardware block says which
this was. Writes results/bench/precision.json.

    BENCH_N=200 BENCH_ROUNDS=2
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import engine_log, write_result

N_ITEMS = int(os.environ.get("BENCH_N", "200"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
DTYPES = ("float32", "bfloat16")
WORKLOADS = (  # (task, variant name, template, shots, selection, share of N)
    ("twitter_fin_sentiment", "few_shot_6", "few_shot", 6, "fixed", 1.0),
    ("banking77", "few_shot_8", "few_shot", 8, "similar", 0.25),
    ("banking77", "zero_shot", "zero_shot", 0, "balanced", 0.5),
)


def main() -> None:
    os.environ["HARNESS_NO_SERVE"] = "1"  # the engines below, never a running `harness serve`
    from harness.engines.backends.vllm import VLLMBackend
    from harness.engines.models import resolve
    from harness.experiment.requests import build_requests
    from harness.experiment.runner import score_record
    from harness.experiment.variant import Variant
    from harness.taskkit import data
    from harness.taskkit.registry import get_task

    model_dir = resolve()
    batches = []
    for task_name, name, template, shots, selection, share in WORKLOADS:
        task = get_task(task_name)
        items = data.test_items(task, max(1, int(N_ITEMS * share)), seed=0)
        variant = Variant(name, template, shots=shots, selection=selection)
        requests = build_requests(task, variant, items, data.shot_pool(task))
        batches.append((f"{task_name} {name}", task, variant, items, requests))
    walls: dict[tuple[str, str], list[float]] = {}
    texts: dict[tuple[str, str], list[str]] = {}
    correct: dict[tuple[str, str], int] = {}
    for dtype in DTYPES:
        backend = VLLMBackend(model_dir, dtype=dtype)
        for label, task, variant, items, requests in batches:
            backend.generate(requests[:2])  # the engine's start and this shape's first pass, untimed
            for _ in range(ROUNDS):
                backend._engine.reset_prefix_cache()
                t0 = time.perf_counter()
                done = backend.generate(requests)
                walls.setdefault((label, dtype), []).append(time.perf_counter() - t0)
            texts[(label, dtype)] = [c.text for c in done]
            scored = [score_record(task, variant, s, r, c) for s, r, c in zip(items, requests, done, strict=True)]
            correct[(label, dtype)] = sum(int(x["scores"].get("correct", 0)) for x in scored)
        backend.close()
    rows = []
    for label, _task, _variant, items, _requests in batches:
        f32, b16 = min(walls[(label, "float32")]), min(walls[(label, "bfloat16")])
        same = sum(a == b for a, b in zip(texts[(label, "float32")], texts[(label, "bfloat16")], strict=True))
        rows.append(
            {
                "workload": label,
                "requests": len(items),
                "float32_wall_s": f32,
                "bfloat16_wall_s": b16,
                "x_float32": f32 / b16,
                "answers_changed": len(items) - same,
                "float32_correct": correct[(label, "float32")],
                "bfloat16_correct": correct[(label, "bfloat16")],
                "all_walls_s": " ".join(f"{w:.1f}" for d in DTYPES for w in walls[(label, d)]),
            }
        )
    write_result("precision", rows, {"rounds": ROUNDS, "items": N_ITEMS})


if __name__ == "__main__":
    with engine_log("precision"):
        main()
