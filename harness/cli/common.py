"""What every command module shares: the typer apps, the consoles, the options several commands
take, and the small helpers of parsing and printing."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from harness.core.console import make_console
from harness.core.errors import UserError
from harness.engines.backends.openai import limits_from
from harness.engines.models import is_complete, models_dir, parse_spec
from harness.engines.tokenizer import counting_tokenizer
from harness.taskkit.registry import add_extra_dirs

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

TasksDir = Annotated[
    list[str] | None,
    typer.Option("--tasks-dir", help="Extra folder of task files (prompts in DIR/../prompts); may repeat."),
]
OutputFormat = Annotated[
    str, typer.Option("--format", help="table (for people) | json (one JSON document on stdout, for programs).")
]
FORMATS = ("table", "json")
Url = Annotated[str, typer.Option(help="Server URL for the openai backend.")]
ConnectTimeout = Annotated[float, typer.Option(help="openai backend: seconds to wait for a connection.")]
ReadTimeout = Annotated[
    float | None,
    typer.Option(help="openai backend: seconds to wait for an answer (default: 30 + 0.25 a token the call asks for)."),
]
Retries = Annotated[int, typer.Option(help="openai backend: further tries after 429/5xx or a dropped connection.")]
Model = Annotated[str, typer.Option(help="Alias, hub id, .gguf file or model directory.")]


def output_format(value: str) -> str:
    if value not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {value!r}")
    return value


def print_json(value: Any) -> None:
    # plain stdout, never rich: a JSON document is not folded, highlighted or cut at any width
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def more_tasks(tasks_dir: list[str] | None) -> None:
    """`--tasks-dir` after the subcommand: added to any given before it."""
    if tasks_dir:
        add_extra_dirs(tasks_dir)


def remote(url: str, connect_timeout: float, read_timeout: float | None, retries: int) -> dict[str, Any]:
    """The openai backend's options, refused now rather than when the first request goes out."""
    options: dict[str, Any] = {"url": url, "connect_timeout_s": connect_timeout, "retries": retries}
    if read_timeout is not None:
        options["read_timeout_s"] = read_timeout
    limits_from(options)
    return options


def local_tokenizer(model: str) -> Any:
    """The model's tokenizer when it is cached locally (None, said, when not): previews and data
    checks count tokens without ever downloading a model."""
    spec = parse_spec(model)
    path = Path(spec.value) if spec.kind == "dir" else models_dir() / model
    if not is_complete(path) and spec.kind != "dir":
        err.print(f"[dim]({model} not pulled yet: run `harness models pull` for token counts)[/dim]", soft_wrap=True)
        return None
    return counting_tokenizer(path)
