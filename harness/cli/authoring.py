"""Commands for the people who write tasks and prompts: tasks, preview, data-check, check-task,
new-task, import-lm-eval."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from harness.authoring import lmeval_import, scaffold
from harness.authoring.datacheck import check, example_lengths
from harness.authoring.taskcheck import run_checks
from harness.cli.common import (
    OutputFormat,
    TasksDir,
    app,
    err,
    local_tokenizer,
    more_tasks,
    out,
    output_format,
    print_json,
)
from harness.core.console import heading
from harness.engines.chat import encode_chat
from harness.taskkit import data, prompts
from harness.taskkit.data import count_rows
from harness.taskkit.registry import all_tasks, get_task

ModelForTokens = Annotated[str, typer.Option(help="Tokenizer for token counts (skipped when not pulled).")]
WritesTo = Annotated[Path, typer.Option("--out", help="Writes OUT/tasks/NAME.py and OUT/prompts/NAME/.")]


@app.command("tasks")
def tasks_cmd(tasks_dir: TasksDir = None, output: OutputFormat = "table") -> None:
    """List registered tasks (split sizes when HARNESS_DATA_DIR holds them)."""
    more_tasks(tasks_dir)
    if output_format(output) == "json":
        print_json([
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
    model: ModelForTokens = "smollm2-135m-instruct",
    cue: Annotated[str, typer.Option(help="A line appended to every user turn, e.g. 'Answer:'.")] = "",
    label_order: Annotated[str, typer.Option(help="given | reversed | sorted | shuffled")] = "given",
    tasks_dir: TasksDir = None,
) -> None:
    """Show exactly the messages a model will see, with token counts."""
    more_tasks(tasks_dir)
    t = get_task(task)
    prompts.load_template(t, template)
    items = data.test_items(t, n, seed)
    pool = data.shot_pool(t) if shots else ()
    selector = prompts.ShotSelector(t, pool, shots, selection, seed) if shots else None
    fmt = prompts.PromptFormat(cue, label_order, seed)
    fmt.labels(t.labels)  # an unknown order is refused before anything renders
    rendered = [(s, prompts.render(t, template, s, selector.select(s) if selector else (), fmt)) for s in items]
    tokenizer = local_tokenizer(model)
    for s, messages in rendered:
        heading(out, f"{t.name} / {template} / item {s.id} (gold: {s.target})")
        for m in messages:
            out.print(f"[bold cyan]{m.role}[/bold cyan]", markup=True)
            out.print(m.content, markup=False, highlight=False)
        if tokenizer is not None:
            out.print(f"[dim]{len(encode_chat(tokenizer, messages))} prompt tokens with {model}'s chat template[/dim]")


@app.command("data-check")
def data_check_cmd(
    task: str,
    max_seq_len: Annotated[int, typer.Option(help="Training max sequence length to check against.")] = 512,
    model: ModelForTokens = "smollm2-135m-instruct",
    tasks_dir: TasksDir = None,
) -> None:
    """Label balance, duplicates, conflicting labels, lengths in tokens and train/test overlap."""
    more_tasks(tasks_dir)
    t = get_task(task)
    train_rows, test_rows = data.load_split(t, t.train_split), data.load_split(t, t.test_split)
    tokenizer = local_tokenizer(model)
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
    more_tasks(tasks_dir)
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
    out_dir: WritesTo = Path("."),
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
    out_dir: WritesTo = Path("."),
    name: Annotated[str | None, typer.Option(help="Task name (default: the YAML's task).")] = None,
) -> None:
    """Convert an lm-evaluation-harness task YAML (its common subset) into a task file and template;
    what cannot be converted (!function, include, per-document choices, other metrics) is refused by name."""
    c = lmeval_import.convert(yaml_file, name)
    task_file, template = lmeval_import.write(c, out_dir)
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
