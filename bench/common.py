"""Shared helpers for benchmarks: a results table and JSON under results/bench/."""

from __future__ import annotations

import json
import platform
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from harness.engines.hardware import describe

OUT_DIR = "results/bench"


def engine_log(name: str, out_dir: str = OUT_DIR) -> AbstractContextManager[Path]:
    """Send the in-process engines' own output to OUT_DIR/NAME.engine.log, as compare sends a run's to
    its engine.log: the console keeps the benchmark's table."""
    from harness.engines import engine_log as log

    return log.logging_to(Path(out_dir) / f"{name}.engine.log")


def write_result(name: str, rows: list[dict[str, Any]], extra: dict[str, Any] | None = None, out_dir: str = OUT_DIR) -> Path:
    from rich.table import Table

    from harness.core.console import make_console

    hardware = describe()  # CPU model, AVX/bf16 flags, usable cores, load average, any instruction-set cap
    if "isa_caps" in hardware:  # a capped run never overwrites the machine's own figures
        name += "_capped_" + "_".join(sorted({v.lower() for v in hardware["isa_caps"].values()}))
    table = Table(title=name)
    for col in rows[0]:
        table.add_column(col)
    for row in rows:
        table.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()])
    make_console().print(table)  # piped or logged: whole columns, nothing cut to '…'
    out = Path(out_dir) / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "name": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "hardware": hardware,
        "rows": rows,
        **(extra or {}),
    }
    out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {out}")
    return out
