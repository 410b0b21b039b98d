"""The flat training config. Every field is part of the adapter's cache key."""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from harness.errors import UserError, closest


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
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("all-linear",)
    batch_size: int = 8
    grad_accum: int = 1
    max_seq_len: int = 512
    seed: int = 0
    precision: str = "auto"  # auto: bf16 on CUDA, fp32 on CPU (bf16 measured slower on this CPU)
    early_stopping_patience: int | None = None  # epochs without validation-loss improvement

    def __post_init__(self) -> None:
        checks = [
            (self.train_size > 0, f"train size must be positive, got {self.train_size}"),
            (self.epochs > 0, f"epochs must be positive, got {self.epochs}"),
            (self.lr > 0, f"learning rate must be positive, got {self.lr}"),
            (self.rank > 0, f"LoRA rank must be positive, got {self.rank}"),
            (self.batch_size > 0 and self.grad_accum > 0, "batch size and gradient accumulation must be positive"),
            (0 <= self.val_fraction < 0.9, f"validation fraction must be in [0, 0.9), got {self.val_fraction}"),
            (self.precision in ("auto", "fp32", "bf16", "fp16"), f"unknown precision {self.precision!r}"),
            (self.schedule in ("linear", "cosine", "constant", "constant_with_warmup"),
             f"unknown schedule {self.schedule!r}"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    def key(self, data_hash: str, template_hash: str, model_hash: str) -> str:
        payload = {**asdict(self), "data": data_hash, "template": template_hash, "model": model_hash, "recipe": 1}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=list).encode()).hexdigest()[:16]


FIELDS = {f.name for f in fields(TrainConfig)}


def from_mapping(values: dict[str, Any]) -> TrainConfig:
    unknown = sorted(set(values) - FIELDS)
    if unknown:
        raise UserError(f"unknown training setting {unknown[0]!r}{closest(unknown[0], sorted(FIELDS))}")
    if "target_modules" in values:
        values = {**values, "target_modules": tuple(values["target_modules"])}
    try:
        return TrainConfig(**values)
    except TypeError as exc:
        raise UserError(f"bad training settings: {exc}") from None


def from_toml(path: Path, task: str) -> TrainConfig:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    return from_mapping({"task": task, **data.get("train", {})})


def with_overrides(cfg: TrainConfig, **overrides: Any) -> TrainConfig:
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
