"""Training tokens/s and peak memory: the recipe as `harness compare` calls it vs a plain peft + torch loop.

Same model, same LoRA (the recipe's own `apply_lora`), same training examples, optimiser, schedule
and precision. The recipe runs as compare runs it: its validation carve-out evaluated each epoch,
its checkpoint cadence, micro-batches on CPU, deterministic kernels (`recipe.fit`). The plain loop is
what a user would write: padded batches of `batch_size`, the model's own loss, AdamW, no evaluation,
no checkpoints. `recipe_full_determinism` is the recipe as it was before `fit` (transformers'
full_determinism, which also fills every new tensor with NaN); `recipe_packed` packs each
micro-batch into one unpadded row (`pack = true`).

Each path runs in its own process (torch's determinism switch is process-global, and peak RSS is
a process's), paths alternating over rounds; the best wall time of each counts. Tokens/s is the
training tokens seen over the wall time of `train()` (its evaluation and checkpoints included).
Writes results/bench/train_throughput.json.

    BENCH_TASK=twitter_fin_sentiment BENCH_N=128 BENCH_EPOCHS=1 BENCH_BATCH=16 BENCH_ROUNDS=2
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TASK = os.environ.get("BENCH_TASK", "twitter_fin_sentiment")
N_EXAMPLES = int(os.environ.get("BENCH_N", "128"))
EPOCHS = float(os.environ.get("BENCH_EPOCHS", "1"))
BATCH = int(os.environ.get("BENCH_BATCH", "16"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
PATHS = ("plain", "recipe_full_determinism", "recipe", "recipe_packed")


def config(path: str):
    from harness.train.config import TrainConfig

    # compare's own settings for a plan's [task.train] (val_fraction and the rest at their defaults)
    return TrainConfig(
        task=TASK, train_size=N_EXAMPLES, epochs=EPOCHS, batch_size=BATCH, lr=1e-3, pack=path == "recipe_packed"
    )


def examples(cfg):
    from transformers import AutoTokenizer

    from harness.engines.models import resolve
    from harness.taskkit import data
    from harness.taskkit.registry import get_task
    from harness.train.examples import build_examples
    from harness.train.recipe import split_train_val

    task = get_task(cfg.task)
    pool = data.load_split(task, task.train_split)
    train_rows, val_rows = split_train_val(cfg, pool, True, data.load_split(task, task.test_split))
    model_dir = resolve(cfg.model)
    tok = AutoTokenizer.from_pretrained(model_dir)
    template = task.adapter_template
    return model_dir, tok, [build_examples(task, template, r, tok, cfg.max_seq_len) for r in (train_rows, val_rows)]


def fresh_model(cfg, model_dir):
    import torch
    from transformers import AutoModelForCausalLM, set_seed

    from harness.train.recipe import apply_lora

    set_seed(cfg.seed)
    return apply_lora(cfg, AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32))


def run_recipe(cfg, model_dir, tok, train_ex, val_ex, full_determinism: bool) -> tuple[float, float]:
    from transformers.trainer_callback import PrinterCallback

    from harness.train.recipe import build_trainer, fit

    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(cfg, fresh_model(cfg, model_dir), tok, train_ex, val_ex, Path(tmp), [])
        trainer.remove_callback(PrinterCallback)
        start = time.perf_counter()
        if full_determinism:
            trainer.args.full_determinism = True
            trainer.train()
        else:
            fit(trainer)
        wall = time.perf_counter() - start
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return wall, losses[-1]


def run_plain(cfg, model_dir, tok, train_ex) -> tuple[float, float]:
    import torch
    from transformers import get_linear_schedule_with_warmup

    from harness.train.examples import collate

    model = fresh_model(cfg, model_dir)
    model.train()
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = torch.utils.data.DataLoader(
        train_ex, batch_size=cfg.batch_size, shuffle=True, generator=gen, collate_fn=lambda b: collate(b, tok.pad_token_id)
    )
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    steps = round(len(loader) * cfg.epochs)
    sched = get_linear_schedule_with_warmup(opt, round(cfg.warmup_ratio * steps), steps)
    done, loss = 0, torch.tensor(0.0)
    start = time.perf_counter()
    while done < steps:
        for batch in loader:
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)  # the Trainer's default max_grad_norm
            opt.step()
            sched.step()
            opt.zero_grad()
            done += 1
            if done == steps:
                break
    return time.perf_counter() - start, float(loss.item())


def child(path: str) -> None:
    cfg = config(path)
    model_dir, tok, (train_ex, val_ex) = examples(cfg)
    if path == "plain":
        wall, loss = run_plain(cfg, model_dir, tok, train_ex)
    else:
        wall, loss = run_recipe(cfg, model_dir, tok, train_ex, val_ex, full_determinism=path == "recipe_full_determinism")
    tokens = sum(len(e.input_ids) for e in train_ex) * cfg.epochs
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # KiB on Linux
    print(json.dumps({"path": path, "wall_s": wall, "tokens": tokens, "final_loss": loss, "peak_rss_gb": peak_gb,
                      "train_examples": len(train_ex), "val_examples": len(val_ex)}))  # fmt: skip


def main() -> None:
    from bench.common import write_result

    runs: dict[str, list[dict]] = {p: [] for p in PATHS}
    for _ in range(ROUNDS):
        for path in PATHS:
            out = subprocess.run(
                [sys.executable, __file__, "--path", path], capture_output=True, text=True, check=False, env=os.environ
            )
            if out.returncode:
                sys.exit(f"{path} failed:\n{out.stderr[-3000:]}")
            runs[path].append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = {p: min(r, key=lambda x: x["wall_s"]) for p, r in runs.items()}
    plain_tps = best["plain"]["tokens"] / best["plain"]["wall_s"]
    rows = []
    for p in PATHS:
        b = best[p]
        tps = b["tokens"] / b["wall_s"]
        rows.append(
            {
                "path": p,
                "tokens": int(b["tokens"]),
                "best_wall_s": b["wall_s"],
                "tokens_per_s": tps,
                "x_plain": tps / plain_tps,
                "peak_rss_gb": max(r["peak_rss_gb"] for r in runs[p]),
                "final_loss": b["final_loss"],
                "all_walls_s": " ".join(f"{r['wall_s']:.1f}" for r in runs[p]),
            }
        )
    settings = {"task": TASK, "train_size": N_EXAMPLES, "epochs": EPOCHS, "batch_size": BATCH, "rounds": ROUNDS}
    ratios = {f"ratio_{p}_over_plain": r["x_plain"] for p, r in zip(PATHS, rows, strict=True)}
    write_result("train_throughput", rows, {"settings": settings, **ratios, "runs": runs})


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--path":
        child(sys.argv[2])
    else:
        main()
