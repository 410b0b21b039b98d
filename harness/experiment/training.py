"""The adapter side of a comparison before evaluation: each task's sweep (its settings tuned on the
validation carve-out), then one adapter per training size and seed with the tuned settings."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.core.console import make_console
from harness.core.words import counted
from harness.engines.adapters import adapter_hash
from harness.experiment import sweep as sw
from harness.experiment.manifest import Arm
from harness.experiment.plan import Plan
from harness.experiment.variant import Variant
from harness.train.config import from_mapping
from harness.train.recipe import train, training_rows

console = make_console(stderr=True)


def run_sweeps(plan: Plan, results_root: Path, timings: dict[str, Any]) -> tuple[Plan, dict[str, Any]]:
    """Tune each task that has a [task.sweep] on its validation carve-out; the best configuration
    (all but the training size, which the learning curve varies) is what compare then trains."""
    start = time.perf_counter()
    found: dict[str, Any] = {}
    tasks = []
    for tp in plan.tasks:
        if not tp.sweep:
            tasks.append(tp)
            continue
        console.print(f"[bold]sweep[/bold] {tp.name}: {tp.sweep['method']}, {counted(tp.sweep['trials'], 'trial')}")
        base = {**tp.train, "model": plan.model}
        if tp.train_sizes and "train_size" not in tp.sweep["space"]:
            base["train_size"] = max(tp.train_sizes)  # tune at the size compare will train, not the default
        folder, summary = sw.run(
            tp.name,
            sw.parse_space(tp.sweep["space"]),
            method=tp.sweep["method"],
            budget=tp.sweep["trials"],
            seed=plan.seed,
            base=base,
            val_limit=plan.val_limit,
            out_root=results_root / "sweeps",
            on_trial=lambda t: console.print(f"  trial {t.number} {t.params}: {t.metric:.4f}"),
        )
        best = {k: v for k, v in summary.best.params.items() if k != "train_size"}
        found[tp.name] = {
            "folder": str(folder),
            "best": summary.best.params,
            "best_metric": summary.best.metric,
            "median": summary.median,
            "spread": summary.spread,
            "trials": len(summary.trials),
            "method": tp.sweep["method"],
            "trial_log": [
                {"number": t.number, "params": t.params, "metric": t.metric, "device_s": t.device_s, "adapter": t.adapter}
                for t in summary.trials
            ],
        }
        tasks.append(replace(tp, train={**tp.train, **best}))
    timings["sweep_s"] = round(time.perf_counter() - start, 1)
    return replace(plan, tasks=tuple(tasks)), found


def train_adapters(plan: Plan, timings: dict[str, Any]) -> dict[str, list[Arm]]:
    """One adapter per task, training size and seed (cached by everything that shapes it)."""
    out: dict[str, list[Arm]] = {}
    start = time.perf_counter()
    for tp in plan.tasks:
        out[tp.name] = []
        seen: set[str] = set()  # training rows some adapter of this task already learned from
        for size in tp.train_sizes:
            for seed in tp.seeds:
                cfg = from_mapping({**tp.train, "task": tp.name, "model": plan.model, "train_size": size, "seed": seed})
                console.print(
                    f"[bold]train[/bold] {tp.name}: LoRA r={cfg.rank}, n={size}, seed={seed}, "
                    f"epochs={cfg.epochs}, lr={cfg.lr}"
                )
                trained = train(cfg)
                m = trained.manifest
                console.print(
                    f"  {'cached' if trained.cached else 'trained'}: {trained.path.name} "
                    f"({m['train_wall_s']:.0f} s, {m.get('tokens_per_s') or 0:.0f} tok/s, "
                    f"final loss {m.get('final_train_loss') or float('nan'):.3f})"
                )
                name = f"lora_n{size}" + (f"_s{seed}" if len(tp.seeds) > 1 else "")
                variant = Variant(name, m["template"], adapter=str(trained.path), train_size=size, seed=seed)
                facts = {
                    "train_size": size, "seed": seed, "adapter": str(trained.path),
                    "adapter_hash": adapter_hash(trained.path), "train_device_s": m["train_device_s"],
                    "train_wall_s": m["train_wall_s"], "tokens_seen": m["tokens_seen"],
                    "final_train_loss": m.get("final_train_loss"), "final_val_loss": m.get("final_val_loss"),
                    "val_curve": m.get("val_curve", []), "loss_curve": m.get("loss_curve", []),
                    "config": m["config"], "template": m["template"],
                }  # fmt: skip
                facts["val_loss_rising"] = _val_rising(facts)
                # each seed trains on its own subset: the side's labelled rows are their union
                rows = {s.id for s in training_rows(cfg)}
                facts["new_rows"] = len(rows - seen)
                seen |= rows
                out[tp.name].append((variant, facts))
    timings["train_s"] = round(time.perf_counter() - start, 1)
    return out


def _val_rising(facts: dict[str, Any]) -> bool:
    curve = [e["val_loss"] for e in facts.get("val_curve", [])]
    return len(curve) >= 2 and curve[-1] > min(curve[:-1])
