"""Evaluation requests/s: the harness runner vs raw vLLM on the same prompts, same warm engine.

The harness path renders templates, selects few-shot examples, generates through the vLLM
backend, extracts and scores answers and appends fsynced records; the baseline hands the same
prompt token ids and sampling parameters straight to `LLM.generate`. Rounds alternate.
A third path is the harness pass with torch's deterministic algorithms left on, as compare's
evaluation ran after training in the same process before `recipe.fit` restored them (their NaN fill
of every new tensor included). Writes results/bench/eval_throughput.json.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import engine_log, write_result

N_ITEMS = int(os.environ.get("BENCH_N", "200"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))


def main() -> None:
    import torch

    from harness.engines.backends.vllm import VLLMBackend
    from harness.engines.chat import encode_chat
    from harness.engines.models import resolve
    from harness.experiment.requests import build_requests
    from harness.experiment.runner import evaluate
    from harness.experiment.variant import Variant
    from harness.taskkit import data
    from harness.taskkit.registry import get_task

    task = get_task("twitter_fin_sentiment")
    items = data.test_items(task, N_ITEMS, seed=0)
    pool = data.load_split(task, task.train_split)
    variant = Variant("few_shot_6", "few_shot", shots=6, selection="balanced")
    backend = VLLMBackend(resolve(), eager=True)
    backend.generate(build_requests(task, variant, items[:2], pool))  # start and warm the engine
    engine = backend._engine
    requests = build_requests(task, variant, items, pool)
    prompts = [{"prompt_token_ids": encode_chat(backend.tokenizer, r.messages)} for r in requests]
    params = [backend._sampling(r) for r in requests]
    walls: dict[str, list[float]] = {"raw vLLM": [], "harness": [], "harness, determinism left on": []}
    for _ in range(ROUNDS):
        # each pass computes its prompts afresh: the other path's pass would otherwise leave them cached
        engine.reset_prefix_cache()
        t0 = time.perf_counter()
        engine.generate(prompts, params, use_tqdm=False)
        walls["raw vLLM"].append(time.perf_counter() - t0)
        engine.reset_prefix_cache()
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            records = evaluate(task, [variant], items, pool, backend, Path(tmp), batch_size=len(items))
            walls["harness"].append(time.perf_counter() - t0)
            assert len(records) == len(items)
        engine.reset_prefix_cache()
        torch.use_deterministic_algorithms(True)  # what transformers' full_determinism left behind
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            again = evaluate(task, [variant], items, pool, backend, Path(tmp), batch_size=len(items))
            walls["harness, determinism left on"].append(time.perf_counter() - t0)
            assert [r["output"] for r in again] == [r["output"] for r in records]
        torch.use_deterministic_algorithms(False)
    backend.close()
    best = {k: min(v) for k, v in walls.items()}
    rows = [
        {
            "path": k,
            "requests": len(items),
            "best_wall_s": best[k],
            "requests_per_s": len(items) / best[k],
            "all_walls_s": " ".join(f"{w:.1f}" for w in walls[k]),
        }
        for k in walls
    ]
    ratio = best["raw vLLM"] / best["harness"]
    rows.append(
        {
            "path": "ratio harness/raw (requests/s)",
            "requests": "",
            "best_wall_s": "",
            "requests_per_s": ratio,
            "all_walls_s": "",
        }
    )
    left_on = best["harness"] / best["harness, determinism left on"]
    rows.append(
        {
            "path": "ratio determinism left on/harness (requests/s)",
            "requests": "",
            "best_wall_s": "",
            "requests_per_s": left_on,
            "all_walls_s": "",
        }
    )
    extra = {"ratio_harness_over_raw": ratio, "ratio_determinism_left_on": left_on, "variant": "twitter few_shot_6"}
    write_result("eval_throughput", rows, extra)


if __name__ == "__main__":
    with engine_log("eval_throughput"):
        main()
