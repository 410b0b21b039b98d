"""Scoring adapters with transformers: the hf backend as a CPU sweep calls it vs a plain peft loop.

What an adapter sweep on CPU does for every trial: generate greedily for the validation items with
the trial's adapter. The plain loop is what a user would write (and what the hf backend was): peft's
unmerged LoRA layers, batches of 16 in the items' order, left-padded. The hf backend merges the
adapter into a float32 copy of the weights and batches prompts of like length, 32 at a time.

Two adapters, trained here (cached): one whose answers end after a few tokens (`lr 1e-3`: 4.4 a
item at BENCH_TRAIN=32) and one barely moved from the base (`lr 1e-5`) whose answers run on toward
the 24-token budget (20.7 a item), as a sweep's weak trials do. Both paths run in one process,
alternating over rounds; the best wall of each counts, and the two paths' predictions (what the
metric reads) are compared item by item. Writes results/bench/hf_scoring.json.

    BENCH_N=100 BENCH_ROUNDS=2 BENCH_TRAIN=32
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TASK = "twitter_fin_sentiment"
N_ITEMS = int(os.environ.get("BENCH_N", "100"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
N_TRAIN = int(os.environ.get("BENCH_TRAIN", "32"))
LRS = (1e-3, 1e-5)


class PlainPeft:
    """peft's layers, batches of 16 in arrival order: the baseline."""

    def __init__(self, model_dir: Path, batch_size: int = 16):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.base: Any = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        self.batch_size = batch_size

    def generate(self, requests: list[Any], adapter: str) -> list[str]:
        import torch
        from peft import PeftModel

        from harness.engines.chat import encode_chat

        model = PeftModel.from_pretrained(self.base, adapter).eval()
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        texts = []
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start : start + self.batch_size]
            ids = [encode_chat(self.tok, r.messages) for r in chunk]
            width = max(len(x) for x in ids)
            input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids])
            mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
            with torch.no_grad():
                out = model.generate(
                    input_ids=input_ids,
                    attention_mask=mask,
                    max_new_tokens=max(r.decoding.max_tokens for r in chunk),
                    do_sample=False,
                    pad_token_id=pad,
                )
            texts += [str(self.tok.decode(row[width:], skip_special_tokens=True)) for row in out.tolist()]
        self.base = model.unload()  # the base without LoRA layers, for the next adapter
        return texts


def main() -> None:
    from bench.common import write_result
    from harness.engines.backends.hf import HFBackend
    from harness.engines.models import resolve
    from harness.experiment.requests import build_requests
    from harness.experiment.variant import Variant
    from harness.taskkit import data
    from harness.taskkit.registry import get_task
    from harness.taskkit.scoring import extract
    from harness.train.config import TrainConfig
    from harness.train.recipe import train

    task = get_task(TASK)
    model_dir = resolve()
    trained = [train(TrainConfig(task=TASK, train_size=N_TRAIN, epochs=1, lr=lr), progress=False) for lr in LRS]
    items = data.validation_items(task, N_ITEMS)
    plain, harness = PlainPeft(model_dir), HFBackend(model_dir)
    walls: dict[tuple[str, float], list[float]] = {}
    answers: dict[tuple[str, float], list[str]] = {}
    tokens: dict[float, int] = {}
    for _ in range(ROUNDS):
        for lr, t in zip(LRS, trained, strict=True):
            reqs = build_requests(task, Variant("trial", t.manifest["template"], adapter=str(t.path)), items, ())
            for path in ("plain_peft", "hf_backend"):
                start = time.perf_counter()
                if path == "plain_peft":
                    texts = plain.generate(reqs, str(t.path))
                else:
                    done = harness.generate(reqs)
                    texts = [c.text for c in done]
                    tokens[lr] = sum(c.completion_tokens for c in done)
                walls.setdefault((path, lr), []).append(time.perf_counter() - start)
                answers[(path, lr)] = [str(extract(task, x, s)) for x, s in zip(texts, items, strict=True)]
    rows = []
    for lr in LRS:
        base, ours = min(walls[("plain_peft", lr)]), min(walls[("hf_backend", lr)])
        same = sum(a == b for a, b in zip(answers[("plain_peft", lr)], answers[("hf_backend", lr)], strict=True))
        rows.append(
            {"adapter": f"lr {lr:g}", "items": N_ITEMS, "generated_tokens": tokens[lr], "plain_peft_s": base,
             "hf_backend_s": ours, "x_plain": base / ours, "same_predictions": f"{same}/{N_ITEMS}"}
        )  # fmt: skip
    total = sum(min(walls[("plain_peft", lr)]) for lr in LRS) / sum(min(walls[("hf_backend", lr)]) for lr in LRS)
    settings = {"task": TASK, "items": N_ITEMS, "rounds": ROUNDS, "train_size": N_TRAIN, "lrs": LRS}
    all_walls = {f"{p} lr {lr:g}": w for (p, lr), w in walls.items()}
    write_result("hf_scoring", rows, {"settings": settings, "x_plain_both": total, "walls_s": all_walls})


if __name__ == "__main__":
    main()
