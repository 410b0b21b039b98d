"""What vLLM's prefix caching saves on the harness's own prompts: one engine with it off, one with it on.

Requests of one variant share a prefix: the chat template's system turn, the task's instruction
and, for classification, its label list (banking77's 77 intents are most of a zero-shot prompt);
few-shot prompts with a fixed shot set share the shots too. The engine settings are compare's
(dtype, eager mode for this batch size, context length); only `enable_prefix_caching` differs.
The cache is emptied before every timed pass, so each pass pays for its prefix once, as a
compare batch does. Writes results/bench/prefix_cache.json.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import engine_log, write_result

N_ITEMS = int(os.environ.get("BENCH_N", "100"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))

WORKLOADS = (  # (task, variant name, template, shots, selection)
    ("banking77", "zero_shot", "zero_shot", 0, None),
    ("banking77", "few_shot_8", "few_shot", 8, "similar"),
    ("twitter_fin_sentiment", "few_shot_6", "few_shot", 6, "balanced"),
)


def main() -> None:
    from harness.engines.backends.vllm import VLLMBackend
    from harness.engines.chat import encode_chat
    from harness.engines.models import resolve
    from harness.experiment.requests import build_requests
    from harness.experiment.variant import Variant
    from harness.taskkit import data
    from harness.taskkit.registry import get_task

    model_dir = resolve()
    batches = []
    for task_name, name, template, shots, selection in WORKLOADS:
        task = get_task(task_name)
        items = data.test_items(task, N_ITEMS, seed=0)
        pool = data.load_split(task, task.train_split)
        variant = Variant(name, template, shots=shots, selection=selection or "balanced")
        batches.append((f"{task_name} {name}", build_requests(task, variant, items, pool)))
    walls: dict[tuple[str, bool], list[float]] = {}
    tokens: dict[str, int] = {}
    for caching in (False, True):
        backend = VLLMBackend(model_dir, prefix_caching=caching)
        engine = backend._get_engine(model_dir, False, N_ITEMS)
        for label, requests in batches:
            prompts = [{"prompt_token_ids": encode_chat(backend.tokenizer, r.messages)} for r in requests]
            tokens[label] = sum(len(p["prompt_token_ids"]) for p in prompts)
            params = [backend._sampling(r) for r in requests]
            engine.generate(prompts[:2], params[:2], use_tqdm=False)  # warm this shape
            for _ in range(ROUNDS):
                engine.reset_prefix_cache()
                t0 = time.perf_counter()
                engine.generate(prompts, params, use_tqdm=False)
                walls.setdefault((label, caching), []).append(time.perf_counter() - t0)
        backend.close()
    rows = []
    ratios = {}
    for label, _ in batches:
        off, on = min(walls[(label, False)]), min(walls[(label, True)])
        ratios[label] = off / on
        rows.append(
            {
                "workload": label,
                "requests": N_ITEMS,
                "prompt_tokens": tokens[label],
                "off_wall_s": off,
                "on_wall_s": on,
                "speedup_on_over_off": off / on,
                "all_walls_s": " ".join(f"{w:.1f}" for c in (False, True) for w in walls[(label, c)]),
            }
        )
    write_result("prefix_cache", rows, {"speedup_on_over_off": ratios, "rounds": ROUNDS})


if __name__ == "__main__":
    with engine_log("prefix_cache"):
        main()
