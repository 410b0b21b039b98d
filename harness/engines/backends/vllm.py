"""vLLM in-process engine: the default backend.

Adapters are served either as true multi-LoRA (one engine, LoRARequest per request: fast on
GPUs) or as merged weights (the adapter folded into a cached copy of the base, one engine per
adapter: LoRA kernels on CPU were measured 5-10x slower than the base model here).
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.core.console import make_console
from harness.core.errors import UserError
from harness.core.types import Completion, Request
from harness.engines import adapters, engine_log
from harness.engines.backends import kv_space, serve, watchdog
from harness.engines.backends.base import ADAPTER_MODES, BackendBase, fit_context, kept_tokens
from harness.engines.backends.engine_settings import configure_cpu_env, kv_block_size, step_budget
from harness.engines.backends.loglik import continuations, scored
from harness.engines.backends.openai import OpenAIBackend
from harness.engines.chat import cuda_available, encode_chat
from harness.engines.tokenizer import counting_tokenizer

EAGER_BELOW = 2000  # on CPU, torch.compile warm-up (~2 min) only pays off for long evaluations


# A running `harness serve` gets SERVED_CALLS calls of SERVED_BATCH prompts at a time rather than one
# call per prompt: 128 in flight, on CPU the server's sequences per step (CPU_STEP below).
SERVED_BATCH = 16
SCORED_STEPS = 512  # trie steps scored in one call (see VLLMBackend._score)
LOGPROB_IDS = 20  # token ids one step reports (vLLM's default max_logprobs)
SERVED_CALLS = 8


class VLLMBackend(BackendBase):
    name = "vllm"

    def __init__(
        self,
        model_dir: Path,
        adapter_mode: str = "auto",
        eager: bool | None = None,
        max_model_len: int = 4096,
        max_lora_rank: int = 64,
        overflow: str = "error",
        seed: int = 0,
        dtype: str = "auto",
        prefix_caching: bool = True,
        max_num_batched_tokens: int | None = None,
        max_num_seqs: int | None = None,
    ):
        if adapter_mode not in ADAPTER_MODES:
            raise UserError(f"unknown --adapter-mode {adapter_mode!r} (choose from {', '.join(ADAPTER_MODES)})")
        # vLLM logs every engine step at INFO; a user reading progress and verdicts needs warnings only.
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        self.model_dir = model_dir
        self.mode = ("lora" if cuda_available() else "merged") if adapter_mode == "auto" else adapter_mode
        self.eager, self.max_model_len, self.max_lora_rank = eager, max_model_len, max_lora_rank
        self.overflow, self.seed = overflow, seed
        # Requests of one variant share their instruction and label list (and a fixed shot set): the
        # engine computes that prefix once per batch instead of once per request (bench/prefix_cache.py).
        self.prefix_caching = prefix_caching
        asked = (("max_num_batched_tokens", max_num_batched_tokens), ("max_num_seqs", max_num_seqs))
        self.budget = {**step_budget(), **{k: v for k, v in asked if v}}
        # CPU: float32, like the transformers reference, so merged adapters keep their small deltas;
        # CUDA: bf16 with true LoRA kernels, where the delta is applied unrounded.
        self.dtype = dtype if dtype != "auto" else ("bfloat16" if cuda_available() else "float32")
        # what decides the answers besides the request: the response cache keeps these apart
        self.cache_tag = f"vllm/{self.dtype}/{self.mode}"
        self._engine: Any = None
        self._engine_pids: list[int] = []
        self._torch_threads = 0
        self._watchdog: Any = None
        self._engine_key: tuple[str, bool] | None = None
        # which requests the engine up now answers (the adapter of a merged engine, whether LoRA is
        # on) and whether it runs eager: how the latency probe's request would be timed
        self._engine_serves: tuple[str | None, bool] | None = None
        self._engine_eager = False
        self._lora_ids: dict[str, int] = {}
        self._served: Any = None  # None: not looked for yet; False: no `harness serve` to use
        self.served_url: str | None = None

        self.tokenizer = counting_tokenizer(model_dir)  # the prompt ids sent, as transformers would make them
        self.engine_start_s = 0.0
        self.engine_starts = 0  # how many engines this backend started: a run's manifest keeps it

    def _get_engine(self, model: Path, lora: bool, n_requests: int) -> Any:
        key = (str(model), lora)
        if self._engine_key == key:
            return self._engine
        self.close()
        if not cuda_available():
            configure_cpu_env()
        eager = self._eager_for(n_requests)
        # On CPU the engine runs in this process: an engine core and a worker process each import
        # torch and vLLM afresh, which made a start take 23-25 s and a close 5 s on 2 cores, against
        # 3-6 s and 2 s in-process (bench/engine_start.py). Compare starts one per merged adapter.
        in_process = not cuda_available()
        start = time.perf_counter()
        # the engine's processes inherit the log as stdout and stderr; in-process, its Python writes go there too
        with engine_log.captured(keep_console=not in_process):
            import torch
            from vllm import LLM

            self._torch_threads = torch.get_num_threads()
            options: dict[str, Any] = {"distributed_executor_backend": "uni"} if in_process else {}
            if block := kv_block_size():
                options["block_size"] = block
            options.update(self.budget)
            if not cuda_available():
                options["kv_cache_memory_bytes"] = kv_space.kv_cache_bytes(self.model_dir, self.dtype, self.max_model_len)
            if in_process:
                os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
            self._engine = LLM(
                model=str(model), tokenizer=str(self.model_dir), dtype=self.dtype,  # type: ignore[arg-type]
                enforce_eager=eager,
                max_model_len=self.max_model_len, seed=self.seed, enable_lora=lora,
                enable_prefix_caching=self.prefix_caching,
                max_lora_rank=self.max_lora_rank if lora else None, max_loras=4 if lora else None,
                gpu_memory_utilization=0.5 if cuda_available() else 0.9,
                **options,
            )  # fmt: skip
        self.engine_start_s += time.perf_counter() - start
        self.engine_starts += 1
        watchdog.stop(self._watchdog)
        # an in-process engine dies with this process: only engine processes need a watchdog
        self._engine_pids = [] if in_process else watchdog.engine_processes()
        self._watchdog = watchdog.start(self._engine_pids)
        self._engine_key, self._engine_eager = key, eager
        return self._engine

    def _eager_for(self, n_requests: int) -> bool:
        """Whether an engine started for n requests runs eager (no torch.compile warm-up)."""
        return self.eager if self.eager is not None else (not cuda_available() and n_requests < EAGER_BELOW)

    def _serves(self, request: Request) -> tuple[str | None, bool]:
        """The engine a request sent alone needs: a merged engine per adapter, or LoRA on or off."""
        lora = self.mode == "lora" and bool(request.adapter)
        return (None if self.mode == "lora" else request.adapter, lora)

    def context_cut(self, request: Request) -> int | None:
        return kept_tokens(self.tokenizer, request, self.max_model_len, self.overflow)

    def timing_path(self, request: Request) -> str:
        """How a request sent alone now is timed, for the latency probe's reuse of earlier times:
        through a running `harness serve` (an HTTP round trip to its engine) or by an engine in this
        process, eager or compiled (the one up for this request, or the one a single request starts)."""
        if not request.adapter and self._server() is not None:
            return "harness serve"
        up = self._engine is not None and self._engine_serves == self._serves(request)
        eager = self._engine_eager if up else self._eager_for(1)
        return "in-process/" + ("eager" if eager else "compiled")

    def _sampling(self, request: Request) -> Any:
        from vllm import SamplingParams

        d = request.decoding
        extra: dict[str, Any] = {}
        if d.choices:
            from vllm.sampling_params import StructuredOutputsParams

            extra["structured_outputs"] = StructuredOutputsParams(choice=list(d.choices))
        return SamplingParams(
            temperature=d.temperature, max_tokens=d.max_tokens, stop=list(d.stop) or None, seed=d.seed, **extra
        )

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        for path in {r.adapter for r in requests if r.adapter}:
            adapters.validate(Path(path), self.model_dir, self.max_lora_rank if self.mode == "lora" else None)
        scored = [i for i, r in enumerate(requests) if r.decoding.scoring == "loglik"]
        if not scored:
            return self._generate(requests)
        rest = [i for i, r in enumerate(requests) if r.decoding.scoring != "loglik"]
        results: dict[int, Completion] = {}
        if rest:
            results.update(zip(rest, self._generate([requests[i] for i in rest]), strict=True))
        results.update(zip(scored, self._score([requests[i] for i in scored]), strict=True))
        return [results[i] for i in range(len(requests))]

    def _groups(self, requests: Sequence[Request]) -> dict[str | None, list[int]]:
        """Requests by the engine that answers them: one for all with LoRA on, else one per adapter."""
        groups: dict[str | None, list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            groups[None if self.mode == "lora" else r.adapter].append(i)
        return groups

    def _engine_for(self, requests: Sequence[Request], adapter: str | None, n: int) -> tuple[Any, bool]:
        """The engine for a group (started if another is up) and whether LoRA is on in it."""
        use_lora = self.mode == "lora" and any(r.adapter for r in requests)
        model = adapters.merged_model(Path(adapter), self.model_dir) if adapter else self.model_dir
        engine = self._get_engine(model, use_lora, n)
        self._engine_serves = (None if self.mode == "lora" else adapter, use_lora)
        return engine, use_lora

    def _lora_request(self, adapter: str | None) -> Any:
        from vllm.lora.request import LoRARequest

        return LoRARequest(f"a{self._lora_id(adapter)}", self._lora_id(adapter), str(adapter)) if adapter else None

    def _generate(self, requests: Sequence[Request]) -> list[Completion]:
        def prompt(i: int) -> dict[str, list[int]]:  # encoded here only for this engine: a server encodes its own
            r = requests[i]
            ids = encode_chat(self.tokenizer, r.messages)
            return {"prompt_token_ids": fit_context(ids, r.decoding.max_tokens, self.max_model_len, self.overflow, i)}

        results: list[Completion | None] = [None] * len(requests)
        for adapter, idx in self._groups(requests).items():
            remote = self._server() if not any(requests[i].adapter for i in idx) else None
            if remote is not None:
                for i, done in zip(idx, remote.generate([requests[i] for i in idx]), strict=True):
                    results[i] = done
                continue
            batch = [prompt(i) for i in idx]  # before any engine start: a prompt over the context stops the run here
            engine, use_lora = self._engine_for(requests, adapter, len(idx))
            lora_reqs = [self._lora_request(requests[i].adapter) for i in idx] if use_lora else None
            start = time.perf_counter()
            outputs = engine.generate(
                batch, [self._sampling(requests[i]) for i in idx], lora_request=lora_reqs, use_tqdm=False
            )
            wall = time.perf_counter() - start
            for i, out in zip(idx, outputs, strict=True):
                gen = out.outputs[0]
                results[i] = Completion(
                    gen.text, len(out.prompt_token_ids or []), len(gen.token_ids), str(gen.finish_reason), wall / len(idx)
                )
        return [r for r in results if r is not None]

    def _score(self, requests: Sequence[Request]) -> list[Completion]:
        """Each label's summed log-probability after the prompt, read where vLLM always computes it:
        the next-token log-probabilities of a generation step (`logprob_token_ids`), one step per
        node of the labels' token trie (the prompt, then each shared label prefix). A prompt's
        log-probabilities (`prompt_logprobs`) would do it in one sequence per label, but a prefix-cache
        hit skips the positions a label is read from: banking77 items then took up to 45 s, not 1."""
        from vllm import SamplingParams

        warm = SamplingParams(max_tokens=1, temperature=0.0, detokenize=False)
        results: list[Completion | None] = [None] * len(requests)
        for adapter, idx in self._groups(requests).items():
            conts = {i: continuations(self.tokenizer, requests[i].decoding.choices or ()) for i in idx}
            prompts = {
                i: fit_context(
                    encode_chat(self.tokenizer, requests[i].messages), max(map(len, conts[i])), self.max_model_len,
                    self.overflow, i,
                )
                for i in idx
            }  # fmt: skip
            engine, use_lora = self._engine_for(requests, adapter, len(idx))
            steps: dict[tuple[int, tuple[int, ...]], dict[int, float]] = {}
            start = time.perf_counter()
            tries = {i: label_trie(c) for i, c in conts.items()}
            group = max(1, SCORED_STEPS // max(len(t) for t in tries.values()))
            for at in range(0, len(idx), group):
                mine = idx[at : at + group]
                # each prompt's whole KV blocks first, so every step of its trie reads them from the cache
                heads = [(i, prompts[i][: cached_head(len(prompts[i]))]) for i in mine]
                heads = [(i, h) for i, h in heads if h]
                if heads:
                    lora = [self._lora_request(requests[i].adapter) for i, _ in heads] if use_lora else None
                    engine.generate([{"prompt_token_ids": h} for _, h in heads], warm, lora_request=lora, use_tqdm=False)
                jobs = [
                    (i, prefix, ids[k : k + LOGPROB_IDS])
                    for i in mine
                    for prefix, ids in tries[i].items()
                    for k in range(0, len(ids), LOGPROB_IDS)
                ]
                params = [
                    SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=ids, detokenize=False)
                    for _, _, ids in jobs
                ]
                seqs = [{"prompt_token_ids": prompts[i] + list(prefix)} for i, prefix, _ in jobs]
                lora = [self._lora_request(requests[i].adapter) for i, _, _ in jobs] if use_lora else None
                outs = engine.generate(seqs, params, lora_request=lora, use_tqdm=False)
                for (i, prefix, ids), out in zip(jobs, outs, strict=True):
                    got = (out.outputs[0].logprobs or [{}])[0]
                    steps.setdefault((i, prefix), {}).update({t: float(got[t].logprob) for t in ids})
            share = (time.perf_counter() - start) / len(idx)
            for i in idx:
                values = [sum(steps[(i, tuple(c[:k]))][c[k]] for k in range(len(c))) for c in conts[i]]
                results[i] = scored(requests[i].decoding.choices or (), values, len(prompts[i]), share)
        return [r for r in results if r is not None]

    def _server(self) -> Any:
        """The warm engine of a running `harness serve` with this backend's settings, looked for once."""
        if self._served is None:
            found = serve.running(self.model_dir, self.dtype, self.max_model_len, self.seed)
            self._served = False
            if found is not None:
                # prompts batched per call, and enough calls in flight to fill the server's scheduler steps
                self._served = OpenAIBackend(
                    self.model_dir, url=found.url, overflow=self.overflow, workers=SERVED_CALLS,
                    max_len=self.max_model_len, batch=SERVED_BATCH,
                )  # fmt: skip
                self.served_url = found.url

                make_console(stderr=True).print(
                    f"base-model requests go to the warm engine of `harness serve` at {found.url}",
                    markup=False, highlight=False, soft_wrap=True,
                )  # fmt: skip
        return self._served or None

    def _lora_id(self, adapter: str | None) -> int:
        assert adapter is not None
        return self._lora_ids.setdefault(adapter, len(self._lora_ids) + 1)

    def close(self) -> None:
        if self._served:
            self._served.close()
            self._served = None
        if self._engine is not None:
            engine, self._engine, self._engine_key, self._engine_serves = self._engine, None, None, None
            # Older/newer engines shut down on garbage collection instead.
            with contextlib.suppress(Exception):
                engine.llm_engine.engine_core.shutdown()
            del engine
            gc.collect()
            if self._torch_threads:  # an in-process engine sets torch's threads for serving; training needs them back
                import torch

                torch.set_num_threads(self._torch_threads)
        watchdog.stop(self._watchdog)
        self._watchdog, self._engine_pids = None, []


def cached_head(prompt_len: int) -> int:
    """The whole KV blocks of a prompt short of the block that holds its last token."""
    block = kv_block_size() or 16  # vLLM's own default on CUDA
    return ((prompt_len - 1) // block) * block


def label_trie(labels: Sequence[Sequence[int]]) -> dict[tuple[int, ...], list[int]]:
    """{token prefix: the next tokens of the labels under it}: the generation steps that score every
    label (the empty prefix is the prompt itself)."""
    nodes: dict[tuple[int, ...], set[int]] = {}
    for ids in labels:
        for k in range(len(ids)):
            nodes.setdefault(tuple(ids[:k]), set()).add(ids[k])
    return {prefix: sorted(nxt) for prefix, nxt in nodes.items()}
