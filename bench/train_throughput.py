"""Training tokens/s: the harness recipe (transformers Trainer) vs a plain peft + torch loop.

Same model, same LoRA settings (the recipe's own `apply_lora`), same examples, same batch size,
optimiser, schedule and precision, in one run on this machine; rounds alternate to spread noise.
Writes results/bench/train_throughput.json.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import write_result

N_EXAMPLES = int(os.environ.get("BENCH_N", "64"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))


def examples_and_cfg():
    from harness import data
    from harness.models import resolve
    from harness.tasks import get_task
    from harness.train.config import TrainConfig
    from harness.train.examples import build_examples

    cfg = TrainConfig(
        task="twitter_fin_sentiment",
        train_size=N_EXAMPLES,
        epochs=1,
        batch_size=8,
        lr=1e-3,
        rank=16,
        val_fraction=0.0,
        precision="fp32",
    )
    task = get_task(cfg.task)
    rows = data.stratified(data.load_split(task, task.train_split), N_EXAMPLES, seed=0)
    from transformers import AutoTokenizer

    model_dir = resolve(cfg.model)
    tok = AutoTokenizer.from_pretrained(model_dir)
    return cfg, model_dir, tok, build_examples(task, task.adapter_template, rows, tok, cfg.max_seq_len)


def fresh_model(cfg, model_dir):
    import torch
    from transformers import AutoModelForCausalLM, set_seed

    from harness.train.recipe import apply_lora

    set_seed(cfg.seed)
    return apply_lora(cfg, AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32))


def run_recipe(cfg, model_dir, tok, examples, tmp: Path) -> float:
    from harness.train.recipe import build_trainer

    trainer = build_trainer(cfg, fresh_model(cfg, model_dir), tok, examples, [], tmp, [])
    trainer.args.save_strategy = "no"
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    trainer.train()
    return time.perf_counter() - start


def run_plain(cfg, model_dir, tok, examples) -> float:
    import torch
    from transformers import get_linear_schedule_with_warmup

    from harness.train.examples import collate

    model = fresh_model(cfg, model_dir)
    model.train()
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = torch.utils.data.DataLoader(
        examples, batch_size=cfg.batch_size, shuffle=True, generator=gen, collate_fn=lambda b: collate(b, tok.pad_token_id)
    )
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    steps = len(loader)
    sched = get_linear_schedule_with_warmup(opt, round(cfg.warmup_ratio * steps), steps)
    start = time.perf_counter()
    for batch in loader:
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)  # the Trainer's default max_grad_norm
        opt.step()
        sched.step()
        opt.zero_grad()
    return time.perf_counter() - start


def main() -> None:
    import tempfile

    cfg, model_dir, tok, examples = examples_and_cfg()
    tokens = sum(len(e.input_ids) for e in examples)
    walls: dict[str, list[float]] = {"recipe": [], "plain": []}
    for _ in range(ROUNDS):
        with tempfile.TemporaryDirectory() as tmp:
            walls["recipe"].append(run_recipe(cfg, model_dir, tok, examples, Path(tmp)))
        walls["plain"].append(run_plain(cfg, model_dir, tok, examples))
    best = {k: min(v) for k, v in walls.items()}
    rows = [
        {
            "trainer": k,
            "examples": len(examples),
            "tokens": tokens,
            "best_wall_s": best[k],
            "tokens_per_s": tokens / best[k],
            "all_walls_s": " ".join(f"{w:.1f}" for w in walls[k]),
        }
        for k in walls
    ]
    ratio = best["plain"] / best["recipe"]
    rows.append(
        {
            "trainer": "ratio recipe/plain (tokens/s)",
            "examples": "",
            "tokens": "",
            "best_wall_s": "",
            "tokens_per_s": ratio,
            "all_walls_s": "",
        }
    )
    write_result("train_throughput", rows, {"ratio_recipe_over_plain": ratio, "threads": os.cpu_count()})


if __name__ == "__main__":
    main()
