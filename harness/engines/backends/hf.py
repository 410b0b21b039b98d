"""transformers + peft generation: for machines without vLLM and the reference for parity."""

from __future__ import annotations

import contextlib
import copy
import gc
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.core.errors import UserError
from harness.core.types import Completion, Request
from harness.engines import adapters
from harness.engines.backends.base import BackendBase, fit_context, kept_tokens
from harness.engines.backends.loglik import continuations, scored
from harness.engines.chat import encode_chat


def choice_constraint(tokenizer: Any, choices: Sequence[str], prompt_len: int) -> Callable[[int, Any], list[int]]:
    """prefix_allowed_tokens_fn for greedy decoding restricted to one of `choices`."""
    seqs = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in choices]
    eos = tokenizer.eos_token_id

    def allowed(_batch: int, ids: Any) -> list[int]:
        done = ids[prompt_len:].tolist()
        nxt = {s[len(done)] for s in seqs if len(s) > len(done) and s[: len(done)] == done}
        if any(s == done for s in seqs):
            nxt.add(eos)
        return sorted(nxt) or [eos]

    return allowed


def resolve_adapter_mode(requested: str, cuda: bool) -> str:
    """`auto`: peft's layers on CUDA (bf16, where a merge would round small deltas away), the
    adapter merged into a float32 copy of the weights on CPU."""
    return ("lora" if cuda else "merged") if requested == "auto" else requested


class HFBackend(BackendBase):
    name = "hf"

    def __init__(self, model_dir: Path, overflow: str = "error", batch_size: int = 32, adapter_mode: str = "auto") -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_dir, self.overflow, self.batch_size = model_dir, overflow, batch_size
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        # "lora": peft's layers, adapter unmerged (the reference check-adapter holds vLLM to);
        # "merged": the adapter folded into a copy of the weights (96 prompts, 24 greedy tokens, 16
        # rows a batch: 24.0 s against 34.5 s on CPU).
        self.mode = resolve_adapter_mode(adapter_mode, self.device == "cuda")
        # answers served in bf16 and in float32 differ, merged and unmerged too: the cache keeps them apart
        self.cache_tag = f"hf/{str(dtype).removeprefix('torch.')}" + ("/merged" if self.mode == "merged" else "")
        model: Any = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
        self.model: Any = model.to(self.device).eval()
        self.max_len = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self._loaded: dict[str, str] = {}
        self._merged: tuple[str, Any] | None = None  # one at a time: the adapter and its merged copy

    def _use_adapter(self, adapter: str | None) -> Any:
        """The model to generate `adapter`'s requests with; None for the base model's."""
        from peft import PeftModel

        if adapter is None:
            return None
        adapters.validate(Path(adapter), self.model_dir)
        if self.mode == "merged":
            if self._merged is None or self._merged[0] != adapter:
                if self._merged is not None:
                    self.release_adapter()  # the old copy goes before the new one is made
                # a copy, so the base weights stay exactly the base's for base requests and the next adapter
                merged = PeftModel.from_pretrained(copy.deepcopy(self.model), adapter).merge_and_unload()
                self._merged = (adapter, merged.eval())
            return self._merged[1]
        name = self._loaded.get(adapter)
        if name is None:
            name = f"a{len(self._loaded)}"
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(adapter, adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(self.model, adapter, adapter_name=name).eval()
            self._loaded[adapter] = name
        self.model.set_adapter(name)
        return self.model

    def release_adapter(self) -> None:
        """Drop the merged copy (a second set of weights) until an adapter is asked for again: a
        sweep calls this after scoring a trial, so the next trial trains without it in memory."""

        self._merged = None
        gc.collect()

    def context_cut(self, request: Request) -> int | None:
        return kept_tokens(self.tokenizer, request, self.max_len, self.overflow)

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        import torch

        scoring = [i for i, r in enumerate(requests) if r.decoding.scoring == "loglik"]
        if scoring:
            rest = [i for i, r in enumerate(requests) if r.decoding.scoring != "loglik"]
            done = dict(zip(scoring, self._score([requests[i] for i in scoring]), strict=True))
            if rest:
                done.update(zip(rest, self.generate([requests[i] for i in rest]), strict=True))
            return [done[i] for i in range(len(requests))]
        if any(r.decoding.temperature > 0 for r in requests):
            raise UserError("the hf backend decodes greedily; a variant with temperature > 0 needs --backend vllm or openai")
        results: list[Completion | None] = [None] * len(requests)
        groups: dict[tuple[str | None, tuple[str, ...] | None], list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            groups[(r.adapter, r.decoding.choices)].append(i)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        for (adapter, choices), idx in groups.items():
            active = self._use_adapter(adapter)
            encoded = {
                i: fit_context(
                    encode_chat(self.tokenizer, requests[i].messages),
                    requests[i].decoding.max_tokens,
                    self.max_len,
                    self.overflow,
                    i,
                )
                for i in idx
            }
            # Batches of like lengths: a batch computes every row to its longest prompt. 100 twitter
            # validation prompts in arrival order cost 8,220 positions for 5,097 tokens; sorted, 5,572.
            # Constrained requests batch too: each row's choice is read after the shared width.
            by_length = sorted(idx, key=lambda i: len(encoded[i]))
            for start in range(0, len(by_length), self.batch_size):
                chunk = by_length[start : start + self.batch_size]
                ids = [encoded[i] for i in chunk]
                width = max(len(x) for x in ids)
                input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids], device=self.device)
                mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=self.device)
                max_new = max(requests[i].decoding.max_tokens for i in chunk)
                extra: dict[str, Any] = {}
                if choices:
                    extra["prefix_allowed_tokens_fn"] = choice_constraint(self.tokenizer, choices, width)
                t0 = time.perf_counter()
                # A fresh context per chunk: peft's disable_adapter() cannot be entered twice.
                base_only = active is None and self._loaded
                with self.model.disable_adapter() if base_only else contextlib.nullcontext(), torch.no_grad():
                    out = (self.model if active is None else active).generate(
                        input_ids=input_ids,
                        attention_mask=mask,
                        max_new_tokens=max_new,
                        do_sample=False,
                        pad_token_id=pad,
                        **extra,
                    )
                wall = time.perf_counter() - t0
                for row, i in enumerate(chunk):
                    results[i] = self._completion(out[row, width:].tolist(), requests[i], len(ids[row]), wall / len(chunk))
        return [r for r in results if r is not None]

    def _score(self, requests: Sequence[Request]) -> list[Completion]:
        """Each label's summed log-probability after the prompt, by one forward pass over prompt +
        label (the same ids the vllm backend scores), batched by length, right-padded."""
        import torch

        jobs: list[tuple[int, int, list[int], int]] = []  # request, label, sequence, label length
        prompt_len: dict[int, int] = {}
        by_adapter: dict[str | None, list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            conts = continuations(self.tokenizer, r.decoding.choices or ())
            ids = fit_context(encode_chat(self.tokenizer, r.messages), max(map(len, conts)), self.max_len, self.overflow, i)
            prompt_len[i] = len(ids)
            jobs += [(i, j, ids + c, len(c)) for j, c in enumerate(conts)]
            by_adapter[r.adapter].append(i)
        values: dict[tuple[int, int], float] = {}
        wall: dict[int, float] = defaultdict(float)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        for adapter, idx in by_adapter.items():
            active = self._use_adapter(adapter)
            wanted = set(idx)
            mine = sorted((job for job in jobs if job[0] in wanted), key=lambda job: len(job[2]))
            for start in range(0, len(mine), self.batch_size):
                chunk = mine[start : start + self.batch_size]
                width = max(len(seq) for _, _, seq, _ in chunk)
                input_ids = torch.tensor([seq + [pad] * (width - len(seq)) for _, _, seq, _ in chunk], device=self.device)
                mask = torch.tensor(
                    [[1] * len(seq) + [0] * (width - len(seq)) for _, _, seq, _ in chunk], device=self.device
                )
                t0 = time.perf_counter()
                base_only = active is None and self._loaded
                with self.model.disable_adapter() if base_only else contextlib.nullcontext(), torch.no_grad():
                    logits = (self.model if active is None else active)(input_ids=input_ids, attention_mask=mask).logits
                logp = torch.log_softmax(logits.float(), dim=-1)
                for row, (i, j, seq, n) in enumerate(chunk):
                    at = torch.arange(len(seq) - n - 1, len(seq) - 1, device=self.device)
                    values[(i, j)] = float(logp[row, at, torch.tensor(seq[-n:], device=self.device)].sum())
                spent = time.perf_counter() - t0
                for i, *_ in chunk:
                    wall[i] += spent / len(chunk)
        return [
            scored(
                r.decoding.choices or (),
                [values[(i, j)] for j in range(len(r.decoding.choices or ()))],
                prompt_len[i],
                wall[i],
            )
            for i, r in enumerate(requests)
        ]

    def _completion(self, new: list[int], request: Request, prompt_tokens: int, latency: float) -> Completion:
        # Greedy decoding is prefix-consistent, so a batch generated to the longest budget is
        # cut back to each request's own budget and stop strings.
        eos = self.tokenizer.eos_token_id
        new = new[: request.decoding.max_tokens]
        finish = "length"
        if eos in new:
            new = new[: new.index(eos) + 1]
            finish = "stop"
        text = str(self.tokenizer.decode(new, skip_special_tokens=True))
        for s in request.decoding.stop:
            if s in text:
                text, finish = text[: text.index(s)], "stop"
        return Completion(text, prompt_tokens, len(new), finish, latency)

    def close(self) -> None:
        self.model = self._merged = None
        gc.collect()
