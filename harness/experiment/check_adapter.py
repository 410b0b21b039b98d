"""`harness check-adapter`: guard against an adapter that is silently ignored.

Greedy outputs of the vLLM paths (lora, merged) must agree with transformers + peft on at
least 95% of items, and differ from the base model on a clear share of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.engines.adapters import MANIFEST, read_manifest, validate
from harness.engines.backends.factory import make_backend
from harness.engines.models import resolve
from harness.experiment.requests import build_requests
from harness.experiment.variant import Variant
from harness.taskkit import data as data_mod
from harness.taskkit.registry import get_task

AGREE_MIN = 0.95
DIFFER_MIN = 0.10


@dataclass(frozen=True)
class AdapterCheck:
    differ: float  # share of items whose greedy output the adapter changes from the base model's
    agree: dict[str, float]  # vLLM mode -> share of items it answers as transformers + peft does
    n_items: int

    @property
    def ok(self) -> bool:
        return self.differ >= DIFFER_MIN and all(a >= AGREE_MIN for a in self.agree.values())


def check(adapter: Path, task_name: str, n: int, model: str, template: str | None, modes: tuple[str, ...]) -> AdapterCheck:
    task = get_task(task_name)
    model_dir = resolve(model)
    validate(adapter, model_dir)
    if template is None and (adapter / MANIFEST).is_file():
        template = read_manifest(adapter).get("template")
    template = template or task.adapter_template
    items = data_mod.test_items(task, n)
    with_adapter = build_requests(task, Variant("adapter", template, adapter=str(adapter)), items, ())
    base_reqs = build_requests(task, Variant("base", template), items, ())
    outputs: dict[str, list[str]] = {}
    hf: Any = make_backend("hf", model_dir, adapter_mode="lora")  # peft's own layers: the reference
    outputs["hf+peft"] = [c.text for c in hf.generate(with_adapter)]
    outputs["hf base"] = [c.text for c in hf.generate(base_reqs)]
    hf.close()
    for mode in modes:
        backend = make_backend("vllm", model_dir, adapter_mode=mode)
        outputs[f"vllm {mode}"] = [c.text for c in backend.generate(with_adapter)]
        backend.close()
    ref = outputs["hf+peft"]

    def rate(xs: list[str], ys: list[str]) -> float:
        return sum(x.strip() == y.strip() for x, y in zip(xs, ys, strict=True)) / len(xs)

    return AdapterCheck(1 - rate(ref, outputs["hf base"]), {m: rate(outputs[f"vllm {m}"], ref) for m in modes}, len(items))
