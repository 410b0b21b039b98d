"""Commands that train and evaluate: train, compare, sweep, check-adapter. compare composes the run,
its summary and its report (harness.experiment.compare never renders)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from harness.analysis.runs import summarise
from harness.cli.common import (
    ConnectTimeout,
    Model,
    OutputFormat,
    ReadTimeout,
    Retries,
    TasksDir,
    Url,
    app,
    err,
    more_tasks,
    out,
    output_format,
    print_json,
    remote,
)
from harness.core.console import warn
from harness.core.errors import UserError
from harness.core.faults import checkpoint
from harness.core.files import cache_root
from harness.core.words import counted
from harness.engines import engine_log
from harness.engines.adapters import check_files
from harness.experiment import check_adapter as adapter_check
from harness.experiment import sweep as sw
from harness.experiment.compare import compare as run_compare
from harness.experiment.plan import Plan, command_plan, load_plan, without_scored_defaults
from harness.experiment.preflight import Preflight, preflight
from harness.experiment.prompt_search import search_alone
from harness.experiment.search import search_settings
from harness.report.sweep_report import print_rich as print_sweep
from harness.report.sweep_report import write as write_sweep
from harness.report.terminal import print_rich
from harness.report.write import metrics_json, write_reports
from harness.taskkit.registry import get_task
from harness.train.config import TrainConfig, from_toml, with_overrides
from harness.train.recipe import train

PlanFile = Annotated[Path | None, typer.Option(help="Experiment plan (experiments/*.toml).")]
Backend = Annotated[str, typer.Option(help="vllm | hf | openai")]
AdapterMode = Annotated[str, typer.Option(help="auto | lora | merged")]
Results = Annotated[Path, typer.Option(help="Results folder.")]
RunId = Annotated[str | None, typer.Option(help="Run directory name (default: plan name + hash).")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Bypass the response cache.")]
BatchSize = Annotated[int, typer.Option(help="Requests per batch; results are saved after each.")]
Overflow = Annotated[str, typer.Option(help="Prompt over the context length: error | truncate (keep the end).")]
Retention = Annotated[str | None, typer.Option(help="Other tasks to score the adapters on, comma-separated ('' for none).")]
SearchTrials = Annotated[
    int, typer.Option(help="Without --plan: trials of the adapter sweep and of the prompt search each (0: none).")
]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Run every check that needs no model, say what would run, and stop.")
]
NoTrain = Annotated[bool, typer.Option("--no-train", help="Prompts only: no adapter, no adapter sweep, no retention.")]
Variants = Annotated[
    str | None,
    typer.Option(
        help="Only these prompt variants, comma-separated: the plan's names (zero_shot, few_shot_8, cot, "
        "constrained), a template name, or TEMPLATE_K for K shots."
    ),
]
Formats = Annotated[
    int | None,
    typer.Option(
        help="Meaning-preserving format perturbations of the selected prompt scored on test (default: the "
        "plan's, 5; 0: none)."
    ),
]
Volume = Annotated[float | None, typer.Option(help="Requests a month: each arm's monthly and total cost at that traffic.")]
LatencyProbe = Annotated[
    int | None, typer.Option(help="Requests per arm timed one at a time for the p50/p95 latency a user waits (0: none).")
]


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
    more_tasks(tasks_dir)
    get_task(task)
    cfg = from_toml(config, task) if config else TrainConfig(task=task)
    cfg = with_overrides(
        cfg, train_size=train_size, epochs=epochs, lr=lr, rank=rank, seed=seed, model=model, template=template,
        batch_size=batch_size,
    )  # fmt: skip
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
    plan: PlanFile = None,
    train_sizes: Annotated[str | None, typer.Option(help="Comma-separated sizes, e.g. 64,256,1024.")] = None,
    limit: Annotated[int | None, typer.Option(help="Test items per task.")] = None,
    backend: Backend = "vllm",
    adapter_mode: AdapterMode = "auto",
    url: Url = "http://127.0.0.1:8000",
    results: Results = Path("results"),
    run_id: RunId = None,
    no_cache: NoCache = False,
    batch_size: BatchSize = 128,
    overflow: Overflow = "error",
    retention: Retention = None,
    search_trials: SearchTrials = 4,
    connect_timeout: ConnectTimeout = 10.0,
    read_timeout: ReadTimeout = None,
    retries: Retries = 3,
    dry_run: DryRun = False,
    no_train: NoTrain = False,
    variants: Variants = None,
    formats: Formats = None,
    volume: Volume = None,
    latency_probe: LatencyProbe = None,
    tasks_dir: TasksDir = None,
    output: OutputFormat = "table",
) -> None:
    """Train what the plan needs, evaluate every variant on the same items, write the report."""
    more_tasks(tasks_dir)
    as_json = output_format(output) == "json"
    p = command_plan(
        plan, tasks or [], parse_sizes(train_sizes), no_train=no_train, search_trials=search_trials, formats=formats,
        volume=volume, latency_probe=latency_probe, variants=variants, retention=retention, limit=limit,
    )  # fmt: skip
    for tp in p.tasks:
        for other in tp.retention_skipped:
            warn(f"{tp.name}: retention on {other} skipped: its data is not in HARNESS_DATA_DIR (--retention names others)")
    options: dict[str, Any] = {"overflow": overflow}
    if backend in ("vllm", "hf"):
        options["adapter_mode"] = adapter_mode
    if backend == "openai":
        options.update(remote(url, connect_timeout, read_timeout, retries))
        p = without_scored_defaults(p)  # before the server is asked anything
    if dry_run:
        show_dry_run(p, preflight(p, results, backend, run_id, options))
        return
    run_dir, timings = run_compare(p, results, backend, run_id, options, use_cache=not no_cache, batch_size=batch_size)
    checkpoint("before-report")
    start = time.perf_counter()
    summaries, manifests = summarise([run_dir])
    write_reports(run_dir, summaries, manifests)
    timings["report_s"] = round(time.perf_counter() - start, 1)
    if not as_json:  # the table and verdicts on stdout; `--format json` prints the metrics instead
        print_rich(summaries)
    err.print(f"phases: {timings}")
    if as_json:
        print_json({"run": str(run_dir), "tasks": metrics_json(summaries)})
        return
    out.print(f"report: {run_dir / 'report.html'} and {run_dir / 'report.md'}")


def parse_sizes(text: str | None) -> tuple[int, ...] | None:
    """`--train-sizes 64,256`: distinct positive sizes."""
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


def show_dry_run(p: Plan, pre: Preflight) -> None:
    for tp, b in zip(p.tasks, pre.bundles, strict=True):
        adapters = len(tp.train_sizes) * len(tp.seeds)
        out.print(
            f"{tp.name}: {len(b.items)} test items, {len(b.validation)} validation items, "
            f"{len(tp.variants)} prompt variants, {adapters} adapter(s) to train"
            + (f", prompt search {counted(tp.prompt_search['trials'], 'trial')}" if tp.prompt_search else "")
            + (f", adapter sweep {counted(tp.sweep['trials'], 'trial')}" if tp.sweep else "")
            + (f", format spread over {tp.formats} formats" if tp.formats else ""),
            soft_wrap=True,
        )
    out.print(f"checks passed; the run would go to {pre.run_dir}", soft_wrap=True)


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
    scoring: Annotated[str | None, typer.Option(help="Prompt side: generate,loglik,loglik_norm.")] = None,
    calibration: Annotated[str | None, typer.Option(help="Prompt side: none,contextual,batch.")] = None,
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
    url: Url = "http://127.0.0.1:8000",
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
    more_tasks(tasks_dir)
    t = get_task(task)
    adapter_values = {"lr": lr, "epochs": epochs, "batch_size": batch_size, "rank": rank, "train_size": train_size}
    prompt_values = {
        "template": template, "shots": shots, "selection": selection, "cue": cue, "label_order": label_order,
        "constrained": constrained, "scoring": scoring, "calibration": calibration,
    }  # fmt: skip
    loaded = load_plan(plan) if plan is not None else None
    s = search_settings(side, loaded, str(plan), task, method, trials, max_device_s, adapter_values, prompt_values)
    if s.side == "prompt":
        budget = {"method": s.method, "trials": s.trials, "max_device_s": s.max_device_s}
        where = remote(url, connect_timeout, read_timeout, retries)
        folder, summary = search_alone(t, s.space, budget, seed, val_limit, backend, where, model or s.model, results)
    else:
        folder, summary = sw.run(
            task, sw.parse_space(s.space), method=s.method, budget=s.trials, seed=seed, base=s.base, val_limit=val_limit,
            executor=executor, backend=backend, out_root=results,
            on_trial=lambda t: err.print(f"trial {t.number} {t.params}: {t.metric:.4f}", markup=False),
        )  # fmt: skip
    write_sweep(folder, summary, task, usd_per_hour)
    print_sweep(summary, usd_per_hour)
    log = results / engine_log.ENGINE_LOG  # where both sides send the engines' own lines
    logged = f"; engine log: {log}" if log.is_file() else ""  # no engine started when every answer was cached
    out.print(f"sweep: {folder / 'sweep.html'}{logged}", markup=False, highlight=False, soft_wrap=True)


@app.command("check-adapter")
def check_adapter(
    adapter: Path,
    task: Annotated[str, typer.Option()],
    n: Annotated[int, typer.Option("-n")] = 50,
    model: Model = "smollm2-135m-instruct",
    template: str | None = None,
    modes: Annotated[str, typer.Option(help="vLLM adapter modes to check.")] = "lora,merged",
    tasks_dir: TasksDir = None,
) -> None:
    """Greedy outputs of vLLM (lora, merged) agree with transformers+peft and differ from the base model."""
    more_tasks(tasks_dir)
    check_files(adapter)
    # the engines' own lines (vLLM's warnings, weight-loading bars) go to a log, as a run's do
    with engine_log.logging_to(cache_root() / "check-adapter" / "engine.log") as log:
        result = adapter_check.check(adapter, task, n, model, template, tuple(m for m in modes.split(",") if m))
    out.print(
        f"adapter changes {result.differ:.0%} of greedy outputs vs the base model (need ≥ {adapter_check.DIFFER_MIN:.0%})"
    )
    for mode, agree in result.agree.items():
        out.print(
            f"vllm {mode} agrees with transformers+peft on {agree:.0%} of {result.n_items} items "
            f"(need ≥ {adapter_check.AGREE_MIN:.0%})"
        )
    out.print("[green]adapter check passed[/green]" if result.ok else "[red]adapter check FAILED[/red]")
    if log.is_file():
        out.print(f"engine log: {log}", markup=False, highlight=False, soft_wrap=True)
    if not result.ok:
        raise typer.Exit(1)
