"""Engine start, close and generation on CPU: vLLM's engine in this process vs in processes of its own.

vLLM's default runs the engine core and its worker in two spawned processes, each importing
torch and vLLM afresh; on CPU the harness runs them in-process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`,
the `uni` executor). Compare starts one engine for the base model and one per merged adapter, so
each start is paid several times a run. Each mode runs in a child process of its own, the modes
alternating, and each child starts the engine three times (as compare does for successive adapters)
and generates the same 100 twitter few-shot prompts. Writes results/bench/engine_start.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

N_ITEMS = int(os.environ.get("BENCH_N", "100"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
STARTS = 3


def child(mode: str) -> None:
    import gc

    from harness.engines.backends import kv_space
    from harness.engines.backends.engine_settings import configure_cpu_env
    from harness.engines.backends.vllm import VLLMBackend
    from harness.engines.chat import encode_chat
    from harness.engines.models import resolve
    from harness.experiment.requests import build_requests
    from harness.experiment.variant import Variant
    from harness.taskkit import data
    from harness.taskkit.registry import get_task

    configure_cpu_env()
    in_process = mode == "in-process"
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0" if in_process else "1"
    t0 = time.perf_counter()
    from vllm import LLM

    imported = time.perf_counter() - t0
    model_dir = resolve()
    task = get_task("twitter_fin_sentiment")
    items = data.test_items(task, N_ITEMS, seed=0)
    variant = Variant("few_shot_6", "few_shot", shots=6, selection="balanced")
    requests = build_requests(task, variant, items, data.load_split(task, task.train_split))
    settings = VLLMBackend(model_dir)  # the dtype, context length and sampling compare uses
    prompts = [{"prompt_token_ids": encode_chat(settings.tokenizer, r.messages)} for r in requests]
    params = [settings._sampling(r) for r in requests]
    executor: dict[str, Any] = {"distributed_executor_backend": "uni"} if in_process else {}
    # the KV cache the harness gives its engine (vLLM would otherwise size it from free memory)
    executor["kv_cache_memory_bytes"] = kv_space.kv_cache_bytes(model_dir, settings.dtype, settings.max_model_len)
    starts: list[float] = []
    closes: list[float] = []
    gens: list[float] = []
    texts: list[str] = []
    for k in range(STARTS):
        t0 = time.perf_counter()
        engine: Any = LLM(
            model=str(model_dir), dtype=settings.dtype,  # type: ignore[arg-type]
            enforce_eager=True, max_model_len=settings.max_model_len, seed=0, **executor,
        )  # fmt: skip
        starts.append(time.perf_counter() - t0)
        if k == 0:
            t0 = time.perf_counter()
            out = engine.generate(prompts, params, use_tqdm=False)
            gens.append(time.perf_counter() - t0)
            texts = [o.outputs[0].text for o in out]
        t0 = time.perf_counter()
        engine.llm_engine.engine_core.shutdown()
        del engine
        gc.collect()
        closes.append(time.perf_counter() - t0)
    print(json.dumps({"mode": mode, "import_s": imported, "starts_s": starts, "closes_s": closes,
                      "generate_s": gens[0], "texts": texts}))  # fmt: skip


def main() -> None:
    from bench.common import write_result

    runs: dict[str, list[dict[str, Any]]] = {"processes": [], "in-process": []}
    for _ in range(ROUNDS):
        for mode in runs:
            done = subprocess.run([sys.executable, __file__, "--child", mode], capture_output=True, text=True, check=True)
            runs[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
    rows = []
    for mode, rs in runs.items():
        starts = [s for r in rs for s in r["starts_s"]]
        rows.append(
            {
                "engine": mode,
                "first_start_s": min(r["starts_s"][0] for r in rs),
                "later_start_s": min(s for r in rs for s in r["starts_s"][1:]),
                "close_s": min(c for r in rs for c in r["closes_s"]),
                "generate_s": min(r["generate_s"] for r in rs),
                "requests": N_ITEMS,
                "all_starts_s": " ".join(f"{s:.1f}" for s in starts),
            }
        )
    same = runs["processes"][0]["texts"] == runs["in-process"][0]["texts"]
    best = {r["engine"]: r for r in rows}
    ratios = {
        "later_start_processes_over_in_process": best["processes"]["later_start_s"] / best["in-process"]["later_start_s"],
        "generate_processes_over_in_process": best["processes"]["generate_s"] / best["in-process"]["generate_s"],
    }
    write_result("engine_start", rows, {**ratios, "same_answers": same, "rounds": ROUNDS})


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main()
