"""Whether a run holds every test answer its manifest says it evaluates. A run killed mid-way (or
still going) has fewer; its report then compares only the items every arm answered, on the tasks
that have answers at all, and must say so rather than pass for a finished run. Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from harness.core.words import counted

SHOWN = 4  # arms named per task; the rest are counted


def missing_answers(manifest: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """One phrase per task whose arms (its prompt variants and adapter arms, as the manifest lists
    them) lack some of its test items: "banking77: zero_shot 2 of 80, lora_n77 0 of 80"."""
    have: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in records:
        have[(r["task"], r["variant"])].add(r["item"])
    out = []
    for task, info in manifest.get("tasks", {}).items():
        expected = set(info.get("test_items") or ())
        if not expected:
            continue
        arms = [str(v["name"]) for v in info.get("variants", ())] + [str(a) for a in info.get("adapters", {})]
        short = [
            f"{arm} {n} of {len(expected)}"
            for arm in dict.fromkeys(arms)
            if (n := len(have[(task, arm)] & expected)) < len(expected)
        ]
        if short:
            more = f" and {counted(len(short) - SHOWN, 'more arm')}" if len(short) > SHOWN else ""
            out.append(f"{task}: {', '.join(short[:SHOWN])}{more}")
    return tuple(out)


def sentence(missing: Sequence[str]) -> str:
    """What the report says first about an incomplete run."""
    if not missing:
        return ""
    return (
        "Incomplete run: some arms lack test answers (" + "; ".join(missing) + "). The tables compare only the "
        "items every arm answered, on the tasks that have answers; rerun `harness compare` with the same plan "
        "to finish it (it resumes where it stopped)."
    )
