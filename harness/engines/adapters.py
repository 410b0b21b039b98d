"""LoRA adapter directories: content hash, validation against a base model, merged copies.

Validation reads only JSON and safetensors headers, so a mismatched adapter (another base
model, an impossible rank, a module the model lacks) is refused before any engine starts.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from harness.core import schema
from harness.core.console import warn
from harness.core.errors import UserError
from harness.core.files import cache_root, file_sha256, staged_dir
from harness.engines import merged_store
from harness.engines.models import content_hash, damaged_weights, safetensors_shapes

MANIFEST = "harness-adapter.json"


def canonical_config(cfg: dict) -> dict:
    """peft writes target_modules (a set) in hash-seed order: sort it so equal adapters compare equal."""
    if isinstance(cfg, dict) and isinstance(cfg.get("target_modules"), list):
        cfg = {**cfg, "target_modules": sorted(cfg["target_modules"])}
    return cfg


# Where the base model lay when the adapter was trained: not what the adapter is. Identical weights
# trained against two caches (or copied between machines) must hash alike.
LOCATION_KEYS = ("base_model_name_or_path",)


def adapter_hash(path: Path) -> str:
    """The adapter's weights and the settings that shape its output, not where any of it lives."""
    h = hashlib.sha256()
    cfg_file, weights = path / "adapter_config.json", path / "adapter_model.safetensors"
    if cfg_file.is_file():
        try:
            cfg = canonical_config(json.loads(cfg_file.read_text()))
            if isinstance(cfg, dict):
                cfg = {k: v for k, v in cfg.items() if k not in LOCATION_KEYS}
            h.update(json.dumps(cfg, sort_keys=True).encode())
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            h.update(file_sha256(cfg_file).encode())
    if weights.is_file():
        h.update(file_sha256(weights).encode())
    return h.hexdigest()[:16]


def _model_shapes(model_dir: Path) -> dict[str, list[int]]:
    shapes: dict[str, list[int]] = {}
    for f in sorted(model_dir.glob("*.safetensors")):
        shapes.update(safetensors_shapes(f))
    return shapes


def check_files(path: Path) -> dict:
    """The adapter's config, after checking the directory is a complete LoRA adapter."""
    if not path.is_dir():
        raise UserError(f"adapter directory not found: {path}")
    cfg_file, weights = path / "adapter_config.json", path / "adapter_model.safetensors"
    if not cfg_file.is_file() or not weights.is_file():
        raise UserError(f"{path} is not a LoRA adapter (needs adapter_config.json and adapter_model.safetensors)")
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise UserError(f"{cfg_file} is corrupt ({getattr(exc, 'msg', 'nested too deeply')})") from None
    schema.validate(schema.AdapterConfig, cfg, cfg_file)
    safetensors_shapes(weights)  # complete, not cut short: a truncated file fails here, not in an engine
    return dict(cfg)


_VALIDATED: dict[tuple[str, str, str, int | None], dict] = {}


def validate(path: Path, model_dir: Path, max_rank: int | None = None) -> dict:
    """The adapter's config, after checking it fits `model_dir`; UserError otherwise. Memoised on
    the adapter's content: backends call it on every batch."""
    cfg = check_files(path)
    key = (str(path.resolve()), adapter_hash(path), content_hash(model_dir), max_rank)
    if key not in _VALIDATED:
        _VALIDATED[key] = _validate(path, model_dir, cfg, max_rank)
    return dict(_VALIDATED[key])


def read_manifest(path: Path) -> dict:
    """The harness's own record next to an adapter it trained (MANIFEST)."""
    file = path / MANIFEST
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise UserError(f"{file} is corrupt ({getattr(exc, 'msg', exc)})") from None
    if not isinstance(manifest, dict):
        raise UserError(f"{file} is corrupt (not a JSON object)")
    return manifest


def _validate(path: Path, model_dir: Path, cfg: dict, max_rank: int | None) -> dict:
    rank = int(cfg["r"])
    weights = path / "adapter_model.safetensors"
    if max_rank is not None and rank > max_rank:
        raise UserError(f"adapter {path.name} has rank {rank}, over --max-lora-rank {max_rank}")
    manifest = path / MANIFEST
    if manifest.is_file():
        base = read_manifest(path).get("base_model_hash")
        if base and base != content_hash(model_dir):
            raise UserError(
                f"adapter {path} was trained for another base model (hash {base}, this one {content_hash(model_dir)})"
            )
    base_shapes = _model_shapes(model_dir)
    if not base_shapes:
        return dict(cfg)
    for name, shape in safetensors_shapes(weights).items():
        if "lora_A" not in name:
            continue
        # base_model.model.<module path>.lora_A.weight -> <module path>.weight in the base
        module = name.split("base_model.model.", 1)[-1].split(".lora_A")[0]
        base = base_shapes.get(f"{module}.weight")
        if base is None:
            raise UserError(
                f"adapter {path.name} targets {module}, which the base model does not have (trained for another model?)"
            )
        if len(base) == 2 and shape[1] != base[1]:
            raise UserError(
                f"adapter {path.name}: {module} expects input size {shape[1]}, the base model has "
                f"{base[1]} (trained for another model?)"
            )
    return dict(cfg)


def merged_model(adapter: Path, model_dir: Path) -> Path:
    """A cached copy of the base model with the adapter merged in (the fast path on CPU)."""
    key = f"{content_hash(model_dir)}-{adapter_hash(adapter)}-fp32"
    folder = cache_root() / "merged"
    target = folder / key
    merged_store.hold(folder, key)
    if (target / MANIFEST).is_file():
        damage = damaged_weights(target)
        if damage is None:
            _used(folder, target)
            return target

        warn(f"cached merged model damaged, merging it again: {damage}")
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with staged_dir(target) as staging:
        base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
        # Kept in float32: rounding W + BA to bf16 erases most of a small LoRA delta (measured: greedy
        # outputs agreed with transformers+peft on 65% of items in bf16).
        merged.save_pretrained(staging, safe_serialization=True)
        AutoTokenizer.from_pretrained(model_dir).save_pretrained(staging)
        (staging / MANIFEST).write_text(
            json.dumps(
                {"adapter": str(adapter), "adapter_hash": adapter_hash(adapter), "base_model_hash": content_hash(model_dir)}
            )
        )
    _used(folder, target)
    return target


def _used(folder: Path, copy: Path) -> None:
    merged_store.touch(copy)
    merged_store.trim(folder, merged_store.budget_bytes())
