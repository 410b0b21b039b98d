"""The LoRA recipe: transformers' Trainer on the task's own examples, cached by config hash.

Multi-GPU: `accelerate launch -m harness.cli train TASK ...` runs the same code unchanged
(Trainer picks up the distributed environment that accelerate sets).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import importlib.metadata as md
import json
import os
import platform
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.core.console import warn
from harness.core.errors import UserError
from harness.core.files import cache_root, file_sha256
from harness.engines.adapters import MANIFEST, canonical_config, check_files, read_manifest
from harness.engines.chat import device_count
from harness.engines.models import content_hash, resolve
from harness.taskkit import data as data_mod
from harness.taskkit.prompts import load_template
from harness.taskkit.registry import get_task
from harness.train import progress as progress_line
from harness.train.config import TrainConfig
from harness.train.examples import Example, build_examples, collate, collate_packed
from harness.train.loss import completion_loss


@dataclass(frozen=True)
class TrainedAdapter:
    path: Path
    manifest: dict[str, Any]
    cached: bool


def adapters_dir() -> Path:
    return cache_root() / "adapters"


def split_train_val(cfg: TrainConfig, pool: tuple, labelled: bool, test: tuple = ()) -> tuple[tuple, tuple]:
    """Training rows come from the split minus the fixed validation carve-out; validation-loss
    rows from the carve-out itself, so the two never overlap and test items are never involved."""
    task = get_task(cfg.task)
    rest, carved = data_mod.carve_validation(task, pool, test)
    if cfg.train_size > len(rest):
        leaked = data_mod.leaked(task, pool, test)
        dropped = f" and dropping {leaked} rows that duplicate a test input" if leaked else ""
        raise UserError(
            f"train size {cfg.train_size} is larger than the training split of {cfg.task} "
            f"({len(rest)} rows available after the validation carve-out{dropped})"
        )
    n_val = 0 if cfg.val_fraction == 0 else min(len(carved), max(8, min(64, round(cfg.train_size * cfg.val_fraction))))
    val = carved[:n_val]
    return data_mod.stratified(rest, cfg.train_size, seed=cfg.seed, by_label=labelled), val


def training_rows(cfg: TrainConfig) -> tuple:
    """The rows `train` learns from for this configuration (deterministic in the seed)."""
    task = get_task(cfg.task)
    pool = data_mod.load_split(task, task.train_split)
    test = data_mod.load_split(task, task.test_split)
    return split_train_val(cfg, pool, task.kind in ("classification", "multiple_choice"), test)[0]


def train(cfg: TrainConfig, *, progress: bool = True) -> TrainedAdapter:
    task = get_task(cfg.task)
    template = cfg.template or task.adapter_template
    tmpl = load_template(task, template)
    pool = data_mod.load_split(task, task.train_split)
    test = data_mod.load_split(task, task.test_split)
    train_rows, val_rows = split_train_val(cfg, pool, task.kind in ("classification", "multiple_choice"), test)
    model_dir = resolve(cfg.model)  # after the cheap checks: a bad size never waits for a model pull
    check_rank(cfg.rank, model_dir)
    template_src = Path(tmpl.filename or "")
    template_hash = file_sha256(template_src)[:16] if template_src.is_file() else "?"
    model_hash = content_hash(model_dir)
    key = cfg.key(data_mod.samples_hash(train_rows) + data_mod.samples_hash(val_rows), template_hash, model_hash)
    final = adapters_dir() / f"{task.name}-{key}"
    if (final / MANIFEST).is_file():
        try:
            check_files(final)
            return TrainedAdapter(final, read_manifest(final), cached=True)
        except UserError as exc:  # a cache entry is derived data: rebuild it rather than serve it
            warn(f"cached adapter damaged, training it again: {exc}")
    work = adapters_dir() / f".work-{task.name}-{key}"
    work.mkdir(parents=True, exist_ok=True)
    result = _run_training(cfg, task.name, template, model_dir, train_rows, val_rows, work, progress)
    manifest = {
        "task": task.name, "task_version": task.version, "template": template, "template_hash": template_hash,
        "data_hash": data_mod.samples_hash(train_rows), "val_data_hash": data_mod.samples_hash(val_rows),
        "train_rows": len(train_rows), "val_rows": len(val_rows),
        "base_model": cfg.model, "base_model_hash": model_hash, "config": asdict(cfg), "key": key,
        "libraries": _versions(), "device": result["device"], "host": platform.node(), **result,
    }  # fmt: skip
    staging = work / "final"
    try:
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, default=list))
        _fsync_dir(staging)
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if exc.errno == errno.ENOSPC:
            raise UserError(f"no space left on device while saving the adapter under {adapters_dir()}") from None
        raise
    shutil.rmtree(work, ignore_errors=True)
    return TrainedAdapter(final, manifest, cached=False)


def check_rank(rank: int, model_dir: Path) -> None:
    """A rank over the model's hidden size is no low-rank adapter: its matrices outgrow the layers
    they adapt (rank 100000 on a 576-wide model asks for ~50 GB) and fail deep in training."""
    try:
        hidden = json.loads((model_dir / "config.json").read_text()).get("hidden_size")
    except (OSError, ValueError, AttributeError):
        return  # not a transformers config: peft will say what it makes of the rank
    if isinstance(hidden, int) and rank > hidden:
        raise UserError(f"LoRA rank {rank} is over the model's hidden size ({hidden}); a LoRA rank is usually 4 to 64")


def _fsync_dir(path: Path) -> None:
    for f in path.iterdir():
        if f.is_file():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())


def _versions() -> dict[str, str]:
    out = {}
    for name in ("torch", "transformers", "peft", "accelerate", "harness"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "?"
    return out


class _Dataset:
    def __init__(self, examples: list[Example]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        # A mapping with input_ids lets transformers' length-grouped sampler read lengths.
        e = self.examples[i]
        return {"input_ids": e.input_ids, "labels": e.labels}


CPU_MICRO_BATCH = 2  # at most this many rows per forward/backward pass on CPU; batch_size stays the rows per update


def build_trainer(
    cfg: TrainConfig,
    model: Any,
    tokenizer: Any,
    train_ex: list[Example],
    val_ex: list[Example],
    out_dir: Path,
    callbacks: list[Any],
) -> Any:
    import torch
    from transformers import TrainingArguments

    cuda = torch.cuda.is_available()
    precision = ("bf16" if cuda else "fp32") if cfg.precision == "auto" else cfg.precision
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    steps_per_epoch = max(1, -(-len(train_ex) // (cfg.batch_size * cfg.grad_accum)))
    # On CPU a batch's activations are most of the memory (~1.4 MB a token in float32 with LoRA on
    # every linear layer): a batch goes through in micro-batches with gradient accumulation, the same
    # update since the loss is normalised over the accumulated batch's labelled tokens. Micro-batches
    # divide the batch, so every update still sees batch_size rows. twitter, 128 rows, batch 16
    # (bench/train_throughput.py, one process each): 4 rows a pass 194.6 tokens/s, peak RSS 2.17 GB;
    # 2 rows 179.5 tokens/s, 1.82 GB (the rest: 0.56 GB of imports, 0.54 GB of weights); final loss
    # equal to 5 digits. Memory within 2 GB is worth the 8%.
    micro = cfg.batch_size
    if not cuda:
        micro = max(d for d in range(1, CPU_MICRO_BATCH + 1) if cfg.batch_size % d == 0)
    accumulate = cfg.grad_accum * (cfg.batch_size // micro)
    # Each logging step syncs the GPU (loss.item()); on CPU a sync is free, so the curve keeps every step.
    # Batches of similar length waste less compute on padding (the option's name changed in transformers 5).
    fields = TrainingArguments.__dataclass_fields__
    grouping = (
        {"train_sampling_strategy": "group_by_length"} if "train_sampling_strategy" in fields else {"group_by_length": True}
    )
    args = TrainingArguments(
        **grouping,
        output_dir=str(out_dir), num_train_epochs=cfg.epochs, learning_rate=cfg.lr, lr_scheduler_type=cfg.schedule,
        warmup_steps=max(0, round(cfg.warmup_ratio * steps_per_epoch * cfg.epochs)),
        per_device_train_batch_size=micro, per_device_eval_batch_size=micro,
        gradient_accumulation_steps=accumulate, seed=cfg.seed, data_seed=cfg.seed,
        bf16=precision == "bf16", fp16=precision == "fp16", logging_steps=1 if not cuda else 10,
        report_to=[], disable_tqdm=True, prediction_loss_only=True,  # validation keeps its loss, no logits
        save_strategy="steps", save_steps=max(5, steps_per_epoch // 2), save_total_limit=1,
        eval_strategy="epoch" if val_ex else "no", remove_unused_columns=False, dataloader_num_workers=0,
        use_cpu=not cuda, full_determinism=False, weight_decay=0.0,  # see fit()
        load_best_model_at_end=bool(val_ex and cfg.early_stopping_patience),
        metric_for_best_model="eval_loss" if val_ex and cfg.early_stopping_patience else None,
        greater_is_better=False if val_ex and cfg.early_stopping_patience else None,
    )  # fmt: skip
    if cfg.early_stopping_patience and val_ex:
        from transformers import EarlyStoppingCallback

        args.save_strategy = "epoch"  # type: ignore[assignment]
        callbacks = [*callbacks, EarlyStoppingCallback(cfg.early_stopping_patience)]
    return _completion_trainer()(
        model=model,
        args=args,
        train_dataset=_Dataset(train_ex),  # type: ignore[arg-type]
        eval_dataset=_Dataset(val_ex) if val_ex else None,  # type: ignore[arg-type]
        data_collator=collate_packed if cfg.pack else lambda b: collate(b, pad),
        callbacks=callbacks,
    )


def fit(trainer: Any, resume_from: str | None = None) -> None:
    """trainer.train() with deterministic kernels on CPU, the state before restored afterwards."""
    with _deterministic_kernels(trainer.args.use_cpu):
        trainer.train(resume_from_checkpoint=resume_from)


@contextlib.contextmanager
def _deterministic_kernels(on: bool) -> Any:
    """transformers' full_determinism switches torch's deterministic algorithms on for the rest of the
    process, and with them the NaN fill of every new tensor (a debugging aid that costs memory
    bandwidth on each allocation: ~2.4 ms for a 22 MB activation on this CPU). Compare serves vLLM in
    this same process after training. Here the kernels are deterministic while training, without the
    fill (same losses: the fill only exposes reads of uninitialised memory), and the earlier state
    comes back afterwards. The seed is the Trainer's own (args.seed)."""
    import torch
    import torch.utils.deterministic

    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.utils.deterministic.fill_uninitialized_memory,  # type: ignore[attr-defined]
    )
    if on:
        torch.use_deterministic_algorithms(True)
        torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.utils.deterministic.fill_uninitialized_memory = before[2]  # type: ignore[attr-defined]


@functools.cache
def _completion_trainer() -> Any:
    """transformers' Trainer with the loss computed on completion positions only (harness.train.loss):
    no logits over the vocabulary for prompt positions, which carry no loss."""
    from transformers import Trainer

    class CompletionTrainer(Trainer):  # type: ignore[misc]
        # divided by the labelled tokens of the whole accumulated batch, as transformers' own loss
        loss_is_scaled_for_ga = True

        def compute_loss(
            self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
        ) -> Any:
            if num_items_in_batch is not None and hasattr(num_items_in_batch, "to"):
                num_items_in_batch = num_items_in_batch.to(inputs["labels"].device)
            loss = completion_loss(
                model,
                inputs["input_ids"],
                inputs.get("attention_mask"),
                inputs["labels"],
                num_items_in_batch,
                inputs.get("position_ids"),
            )
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes  # the count was summed over processes
            return (loss, {"loss": loss}) if return_outputs else loss

    return CompletionTrainer


def load_lora_model(cfg: TrainConfig, model_dir: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype(cfg))
    return apply_lora(cfg, base, model_dir.name), tokenizer


def torch_dtype(cfg: TrainConfig) -> Any:
    import torch

    if cfg.precision == "bf16" or (cfg.precision == "auto" and torch.cuda.is_available()):
        return torch.bfloat16
    return torch.float16 if cfg.precision == "fp16" else torch.float32


def apply_lora(cfg: TrainConfig, base: Any, model_name: str = "the model") -> Any:
    """The recipe's LoRA wrapping of a base model (benchmarks reuse it to compare like with like)."""
    from peft import LoraConfig, get_peft_model

    targets: str | list[str] = "all-linear" if cfg.target_modules == ("all-linear",) else list(cfg.target_modules)
    if isinstance(targets, list):
        names = {n.rsplit(".", 1)[-1] for n, _ in base.named_modules()}
        missing = [t for t in targets if t not in names]
        if missing:
            raise UserError(
                f"target module {missing[0]!r} is not in {model_name}; linear modules include "
                + ", ".join(sorted(n for n in names if n.endswith("proj")))
            )
    lora = LoraConfig(
        r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=targets, task_type="CAUSAL_LM"
    )
    return get_peft_model(base, lora)


def _run_training(
    cfg: TrainConfig,
    task_name: str,
    template: str,
    model_dir: Path,
    train_rows: tuple,
    val_rows: tuple,
    work: Path,
    progress: bool,
) -> dict[str, Any]:
    from transformers import set_seed

    set_seed(cfg.seed)
    model, tokenizer = load_lora_model(cfg, model_dir)
    task = get_task(task_name)
    train_ex = build_examples(task, template, train_rows, tokenizer, cfg.max_seq_len)
    val_ex = build_examples(task, template, val_rows, tokenizer, cfg.max_seq_len)
    if not train_ex:
        raise UserError(f"template {task_name}/{template} produced no training example with a completion")
    truncated = sum(1 for e in train_ex if len(e.input_ids) >= cfg.max_seq_len)
    label = f"train {task_name} n={len(train_ex)}"
    callback = progress_line.callback_class()(train_ex, work, enabled=progress, label=label)
    trainer = build_trainer(cfg, model, tokenizer, train_ex, val_ex, work, [callback])
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # the rich progress line replaces its raw dict prints
    checkpoints = sorted(work.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    fit(trainer, str(checkpoints[-1]) if checkpoints else None)
    wall = callback.total_wall()
    bad = [n for n, p in trainer.model.named_parameters() if p.requires_grad and not bool(p.detach().isfinite().all())]
    if bad:  # a diverged adapter must never be cached: every later run would serve garbage from it
        shutil.rmtree(work, ignore_errors=True)
        raise UserError(
            f"training diverged: {len(bad)} adapter tensors hold inf or nan after training with lr {cfg.lr:g}; "
            "lower the learning rate (nothing was cached)"
        )
    staging = work / "final"
    if staging.exists():
        shutil.rmtree(staging)
    try:
        trainer.model.save_pretrained(staging)
        cfg_file = staging / "adapter_config.json"
        cfg_file.write_text(json.dumps(canonical_config(json.loads(cfg_file.read_text())), indent=2, sort_keys=True))
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if exc.errno == errno.ENOSPC:
            raise UserError(f"no space left on device while saving the adapter under {work.parent}") from None
        raise
    history = trainer.state.log_history
    losses = [{"step": h["step"], "epoch": h.get("epoch"), "loss": h["loss"]} for h in history if "loss" in h]
    evals = [{"step": h["step"], "epoch": h.get("epoch"), "val_loss": h["eval_loss"]} for h in history if "eval_loss" in h]
    tokens = sum(len(e.input_ids) for e in train_ex) * cfg.epochs
    import torch

    return {
        "train_wall_s": round(wall, 3), "train_device_s": round(wall * device_count(), 3),
        "tokens_seen": int(tokens), "tokens_per_s": round(tokens / wall, 2) if wall > 0 else None,
        "final_train_loss": losses[-1]["loss"] if losses else None,
        "final_val_loss": evals[-1]["val_loss"] if evals else None,
        "loss_curve": losses, "val_curve": evals, "truncated_examples": truncated,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu x{os.cpu_count()}",
        "resumed_from": checkpoints[-1].name if checkpoints else None,
    }  # fmt: skip
