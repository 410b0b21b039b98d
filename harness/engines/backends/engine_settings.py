"""The vLLM engine settings an in-process engine and `harness serve` share, so the two schedule and
cache requests alike: cores bound, KV block size, scheduler step. No vLLM import."""

from __future__ import annotations

import os

from harness.engines.chat import cuda_available


def configure_cpu_env() -> None:
    """Bind every available core to the worker (vLLM reserves one for the front end by default,
    which halves throughput on a 2-core machine). The KV cache is sized per model (kv_space)."""
    cores = sorted(os.sched_getaffinity(0))
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(str(c) for c in cores))
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")


# vLLM's CPU backend stores the KV cache in blocks of 128 tokens, and prefix caching reuses whole
# blocks only: of a 400-token shared prefix (the shots of a `fixed` set, banking77's label list) the
# last partial block is computed again for every request. Blocks of 32 (the CPU backend's preferred
# multiple) reuse all but <32 tokens of it. Measured in-process, 2 AMD EPYC cores, same answers:
# twitter few_shot_6 'fixed', 200 requests 34.4 -> 17.0 s; banking77 zero-shot, 100 requests 23.3 ->
# 12.9 s; banking77 few_shot_8 'similar' (no shared shots), 50 requests 23.9 -> 23.9 s.
CPU_KV_BLOCK = 32


# vLLM's own CPU defaults differ by entry point: 4096 tokens and 256 sequences per scheduler step for
# an in-process engine, 2048 and 128 for its API server. The smaller step is the faster one on CPU (a
# 4096-token step's MLP activations, ~25 MB in float32 here, overflow the cores' caches). Measured in
# bench/scheduler_budget.py, 2 AMD EPYC cores: twitter few-shot, 400 requests 36.2 -> 32.8 s; banking77
# zero-shot, 200: 24.1 -> 23.3 s; banking77 few-shot similar, 50: 19.4 -> 17.7 s. Both compare's engine
# and `harness serve` ask for it, so the two schedule requests alike.
CPU_STEP = {"max_num_batched_tokens": 2048, "max_num_seqs": 128}


def step_budget() -> dict[str, int]:
    """Tokens and sequences per scheduler step for this machine's engines: vLLM's own on CUDA."""
    return {} if cuda_available() else dict(CPU_STEP)


def kv_block_size() -> int | None:
    """The KV block size compare's engine and `harness serve` ask for: 32 on CPU, vLLM's own on CUDA."""
    return None if cuda_available() else CPU_KV_BLOCK
