"""The flat training config. Every field is part of the adapter's cache key."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from harness.core.errors import UserError
from harness.core.options import SEED
from harness.core.schema import TrainTable, read_toml, validate


@dataclass(frozen=True)
class TrainConfig:
    task: str
    model: str = "smollm2-135m-instruct"
    template: str | None = None  # None: the task's adapter_template
    train_size: int = 256
    val_fraction: float = 0.1
    epochs: float = 1.0
    lr: float = 1e-3
    schedule: str = "linear"
    warmup_ratio: float = 0.1
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("all-linear",)
    batch_size: int = 8
    grad_accum: int = 1
    max_seq_len: int = 512
    seed: int = 0
    precision: str = "auto"  # auto: bf16 on CUDA, fp32 on CPU (bf16 measured slower on this CPU)
    early_stopping_patience: int | None = None  # epochs without validation-loss improvement
    pack: bool = False  # each micro-batch as one unpadded row, attention kept within each example

    def __post_init__(self) -> None:
        for name in ("val_fraction", "epochs", "lr", "warmup_ratio", "dropout"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                raise UserError(f"training setting {name} must be a finite number, got {value!r}")
        checks = [
            (self.train_size > 0, f"train size must be positive, got {self.train_size}"),
            (self.epochs > 0, f"epochs must be positive, got {self.epochs}"),
            (self.lr > 0, f"learning rate must be positive, got {self.lr}"),
            (self.rank > 0, f"LoRA rank must be positive, got {self.rank}"),
            (SEED.holds(self.seed), f"seed must be {SEED.describe()}, got {self.seed}"),
            (self.batch_size > 0 and self.grad_accum > 0, "batch size and gradient accumulation must be positive"),
            (0 <= self.val_fraction < 0.9, f"validation fraction must be in [0, 0.9), got {self.val_fraction}"),
            (0 <= self.warmup_ratio <= 1, f"warmup ratio must be in [0, 1], got {self.warmup_ratio}"),
            (0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}"),
            # an epoch count in the millions is a typo, and turns into an overflow deep in training
            (self.epochs <= 1000, f"epochs must be at most 1000, got {self.epochs}"),
            (self.precision in ("auto", "fp32", "bf16", "fp16"), f"unknown precision {self.precision!r}"),
            (self.schedule in ("linear", "cosine", "constant", "constant_with_warmup"),
             f"unknown schedule {self.schedule!r}"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    def key(self, data_hash: str, template_hash: str, model_hash: str) -> str:
        settings = asdict(self)
        if not self.pack:  # added later: adapters trained before it keep their keys
            del settings["pack"]
        payload = {**settings, "data": data_hash, "template": template_hash, "model": model_hash, "recipe": 1}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=list).encode()).hexdigest()[:16]


FIELDS = {f.name for f in fields(TrainConfig)}


def from_mapping(values: dict[str, Any], where: str = "training settings") -> TrainConfig:
    """TrainConfig from a mapping (a plan's [task.train] plus what compare or a sweep sets),
    type-checked by the schema: a wrong type or an unknown key is one clear line."""

    rest = {k: v for k, v in values.items() if k != "task"}
    if isinstance(rest.get("target_modules"), tuple):
        rest["target_modules"] = list(rest["target_modules"])
    settings = validate(TrainTable, rest, where).settings()
    if "target_modules" in settings:
        settings["target_modules"] = tuple(settings["target_modules"])
    return TrainConfig(task=str(values.get("task", "")), **settings)


def from_toml(path: Path, task: str) -> TrainConfig:
    data = read_toml(path, "training config")
    train = data.get("train", {})
    if not isinstance(train, dict):
        raise UserError(f"{path}: [train] must be a table")
    return from_mapping({"task": task, **train}, f"{path} [train]")


def with_overrides(cfg: TrainConfig, **overrides: Any) -> TrainConfig:
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
