"""Regression gate for prompt authors: is any variant significantly worse than the baseline run?"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from rich.console import Console

from harness.analysis import scored
from harness.errors import UserError
from harness.results import load_run
from harness.stats import paired_compare


def _load(run: Path) -> tuple[dict[str, Any], dict[tuple[str, str], dict[str, dict[str, Any]]]]:
    manifest, records = load_run(run)
    grouped: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in records:
        grouped[(r["task"], r["variant"])][r["item"]] = r
    return manifest, grouped


def run_gate(candidate: Path, baseline: Path, alpha: float, out: Console) -> list[str]:
    cand_manifest, cand = _load(candidate)
    _, base = _load(baseline)
    shared = sorted(set(cand) & set(base))
    if not shared:
        raise UserError(f"{candidate} and {baseline} share no (task, variant) to compare")
    failures = []
    compared = 0
    for task, variant in shared:
        items = sorted(set(cand[(task, variant)]) & set(base[(task, variant)]))
        if not items:
            out.print(f"{task}/{variant}: no shared items, skipped")
            continue
        compared += 1
        info = cand_manifest["tasks"][task]
        metric, labels = info["metrics"][0], info.get("labels") or ()
        a = [base[(task, variant)][i] for i in items]
        b = [cand[(task, variant)][i] for i in items]
        result = paired_compare(scored(a), scored(b), metric, labels)
        worse = result.diff.value < 0 and (result.p_value < alpha if result.p_value is not None else result.diff.high < 0)
        status = "[red]FAIL[/red]" if worse else "[green]ok[/green]"
        p = f"p={result.p_value:.3g}" if result.p_value is not None else ""
        out.print(
            f"{status} {task}/{variant}: {metric} Δ {result.diff.value:+.4f} "
            f"[{result.diff.low:+.4f}, {result.diff.high:+.4f}] {p} on {len(items)} shared items"
        )
        flipped = [
            i
            for i, x, y in zip(items, a, b, strict=True)
            if x["scores"].get("correct", 0) > 0.5 and y["scores"].get("correct", 0) <= 0.5
        ]
        if flipped and worse:
            out.print(
                f"  flipped to wrong ({len(flipped)}): " + ", ".join(flipped[:20]) + (" …" if len(flipped) > 20 else "")
            )
        if worse:
            failures.append(f"{task}/{variant}")
    if not compared:
        raise UserError(f"{candidate} and {baseline} share no test items: nothing to compare (were they run on other data?)")
    return failures
