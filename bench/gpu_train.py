"""Recipe training throughput and model-FLOPs utilisation on a GPU (runs on CPU too, slowly).

Real weights cannot travel to the borrowed GPU, so the model is a randomly initialised Llama of
SmolLM2-135M's exact shape; speed does not depend on the weights' values. Examples are random
token sequences with the completion-only label mask the recipe builds. The harness recipe (its
Trainer, `apply_lora`, collator) runs against a plain peft + torch loop on the same batches.

    python bench/gpu_train.py [--steps 40] [--batch 32] [--seq 256]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# SmolLM2-135M-Instruct's config (the converted model's config.json).
SHAPE: dict[str, Any] = dict(
    vocab_size=49152,
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    max_position_embeddings=8192,
    tie_word_embeddings=True,
    rope_theta=100000.0,
)
PEAK_BF16 = {"H100": 989.4e12, "H200": 989.4e12}  # dense bf16 tensor-core peak (SXM)


def synthetic(n: int, seq: int, completion: int, vocab: int, seed: int = 0):
    import torch

    from harness.train.examples import IGNORE, Example

    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(100, vocab, (seq,), generator=g).tolist()
        out.append(Example(tuple(ids), tuple([IGNORE] * (seq - completion) + ids[seq - completion :])))
    return out


class Timer:
    """Wall time of steps after the warm-up ones (compilation, allocator growth)."""

    def __init__(self, warmup: int):
        from transformers import TrainerCallback

        timer = self

        class CB(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                timer.mark(state.global_step)

        self.callback = CB()
        self.warmup, self.t0, self.t1, self.steps = warmup, 0.0, 0.0, 0

    def mark(self, step: int) -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
        now = time.perf_counter()
        if step == self.warmup:
            self.t0 = now
        self.t1, self.steps = now, step - self.warmup


def main() -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.trainer_callback import PrinterCallback

    from harness.train.config import TrainConfig
    from harness.train.examples import collate
    from harness.train.recipe import apply_lora, build_trainer

    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch", type=int, nargs="+", default=[16, 64])
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--out", default="results/bench")
    a = p.parse_args()
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else "cpu"
    rows = []
    for batch in a.batch:
        cfg = TrainConfig(task="bench", batch_size=batch, epochs=1, lr=1e-3, rank=16, precision="auto")
        examples = synthetic(batch * (a.steps + a.warmup), a.seq, 32, SHAPE["vocab_size"])
        tokens_per_step = batch * a.seq

        def model(cfg=cfg):
            torch.manual_seed(0)
            m: Any = LlamaForCausalLM(LlamaConfig(**SHAPE))
            m = m.to(torch.bfloat16 if cuda else torch.float32)
            return apply_lora(cfg, m)

        class Tok:
            pad_token_id = 0

        timer = Timer(a.warmup)
        trainer = build_trainer(cfg, model(), Tok(), examples, [], Path("/tmp/bench-gpu"), [timer.callback])
        trainer.args.save_strategy = "no"
        trainer.remove_callback(PrinterCallback)
        trainer.train()
        recipe_tps = tokens_per_step * timer.steps / (timer.t1 - timer.t0)

        m = model().to("cuda" if cuda else "cpu")
        params = [q for q in m.parameters() if q.requires_grad]
        opt = torch.optim.AdamW(params, lr=cfg.lr)
        loader = torch.utils.data.DataLoader(examples, batch_size=batch, collate_fn=lambda b: collate(b, 0))
        m.train()
        for step, b in enumerate(loader, 1):
            b = {k: v.to(m.device) for k, v in b.items()}
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                loss = m(**b).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad()
            if step == a.warmup:
                if cuda:
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
        if cuda:
            torch.cuda.synchronize()
        plain_tps = tokens_per_step * a.steps / (time.perf_counter() - t0)

        n_params = sum(q.numel() for q in m.parameters())  # tied head counted once, as it is computed once
        attn = 12 * SHAPE["num_hidden_layers"] * SHAPE["hidden_size"] * a.seq
        flops_full = 6 * n_params + attn  # per token, the usual full-fine-tuning convention
        flops_lora = 4 * n_params + attn  # LoRA skips the frozen weights' gradient matmuls
        peak = next((v for k, v in PEAK_BF16.items() if k in device), None)
        rows.append({
            "device": device, "batch": batch, "seq": a.seq, "recipe_tok_s": round(recipe_tps),
            "plain_tok_s": round(plain_tps), "ratio": round(recipe_tps / plain_tps, 3),
            "mfu_6N_pct": round(100 * flops_full * recipe_tps / peak, 2) if peak else None,
            "mfu_lora_4N_pct": round(100 * flops_lora * recipe_tps / peak, 2) if peak else None,
        })  # fmt: skip
        print(rows[-1], flush=True)
    from bench.common import write_result

    os.makedirs(a.out, exist_ok=True)
    write_result(
        "gpu_train", rows, {"shape": SHAPE, "note": "random-init weights of the default model's shape"}, out_dir=a.out
    )


if __name__ == "__main__":
    main()
