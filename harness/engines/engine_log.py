"""The engines' own output goes to `<run>/engine.log`; the terminal keeps progress, tables and verdicts.

Three kinds of writer, three routes:
- Python logging of vLLM, transformers, torch and `warnings`: a file handler on the log, set up
  before vLLM is imported (`VLLM_LOGGING_CONFIG_PATH`, which vLLM's engine processes inherit too);
- vLLM's engine-core and worker processes, whose native code prints to the descriptors they inherit:
  descriptors 1 and 2 point at the log while an engine starts (`captured`), so they keep it for life;
- anything native in this process during that window: the same descriptors.
The harness's own consoles resolve `sys.stdout`/`sys.stderr` when they print; inside the window those
are streams on copies of the original descriptors, so a progress bar still reaches the terminal.
Errors still surface: the exception propagates as before and the console names the log.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

ENGINE_LOG = "engine.log"
_ENGINE_LOGGERS = ("vllm", "transformers", "torch", "py.warnings", "ray", "datasets", "accelerate", "peft")
# (log, the environment it replaced, the logging config written for it)
_current: list[tuple[Path, dict[str, str | None], Path | None]] = []
_last: list[Path] = []
_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"


def current() -> Path | None:
    return _current[-1][0] if _current else None


def last() -> Path | None:
    """The log of the latest run in this process, in use or released: an error names it."""
    return _last[-1] if _last else None


def _quiet_transformers() -> None:
    # transformers adds its own stderr handler when it is imported, and draws tqdm bars of its own
    # ("Loading weights"): only its file handler stays, and the harness's bars
    if "transformers" in sys.modules:
        with contextlib.suppress(Exception):
            sys.modules["transformers"].logging.disable_default_handler()
            sys.modules["transformers"].logging.disable_progress_bar()


def _logging_config(path: Path, level: str) -> dict[str, object]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"engine": {"format": _FORMAT}},
        "handlers": {
            "engine": {
                "class": "logging.FileHandler",
                "filename": str(path),
                "formatter": "engine",
                "encoding": "utf-8",
                "delay": True,
            }
        },
        "loggers": {"vllm": {"handlers": ["engine"], "level": level, "propagate": False}},
    }


def use(path: Path) -> None:
    """Send this process's engine output, and that of engines it starts from now on, to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    replaced = {k: os.environ.get(k) for k in ("VLLM_LOGGING_CONFIG_PATH", "HF_HUB_DISABLE_PROGRESS_BARS")}
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # read when transformers is imported later
    _last.append(path)
    config = None
    if os.environ.get("VLLM_CONFIGURE_LOGGING") != "0" and "VLLM_LOGGING_CONFIG_PATH" not in os.environ:
        # vLLM reads this when it is imported, here and in every engine process it starts; the log
        # keeps INFO (what a bug report needs) unless the user set VLLM_LOGGING_LEVEL.
        # one per process: two commands logging to one file (sweeps sharing --results) each remove their own
        config = path.with_name(f".{path.name}.{os.getpid()}.logging.json")
        level = os.environ.get("VLLM_LOGGING_LEVEL", "INFO").upper()
        config.write_text(json.dumps(_logging_config(path, level)), encoding="utf-8")
        os.environ["VLLM_LOGGING_CONFIG_PATH"] = str(config)
    _current.append((path, replaced, config))
    # opened at its first line: a run that starts no engine (all answers cached) leaves no empty log
    handler = logging.FileHandler(path, encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.set_name(f"harness-engine-log:{path}")
    logging.captureWarnings(True)
    for name in _ENGINE_LOGGERS:
        logger = logging.getLogger(name)
        if name == "vllm" and "vllm" in sys.modules:  # already configured by an earlier import
            for h in list(logger.handlers):
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                    logger.removeHandler(h)
        logger.addHandler(handler)
        logger.propagate = False
    _quiet_transformers()


def release() -> None:
    """Stop logging to the current file (a run in a long-lived process is over)."""
    if not _current:
        return
    path, env, config = _current.pop()
    for key, value in env.items():  # the generated logging config belongs to this run only
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if config is not None:  # read by engines at their start; a finished run leaves no stray file
        config.unlink(missing_ok=True)
    if not _current:
        logging.captureWarnings(False)
    for name in _ENGINE_LOGGERS:
        logger = logging.getLogger(name)
        for h in list(logger.handlers):
            if h.get_name() == f"harness-engine-log:{path}":
                logger.removeHandler(h)
                h.close()


def _terminal_stream(fd: int, like: object) -> io.TextIOWrapper:
    encoding = getattr(like, "encoding", None) or "utf-8"
    return io.TextIOWrapper(os.fdopen(fd, "wb", buffering=0, closefd=False), encoding=encoding, line_buffering=True)


@contextlib.contextmanager
def captured(keep_console: bool = True) -> Iterator[None]:
    """Descriptors 1 and 2 on the log for the block (engine start: its processes inherit them);
    the consoles keep the terminal through `sys.stdout`/`sys.stderr`, unless `keep_console` is
    False: an engine started in this process writes its bars through `sys.stderr` itself, and a
    progress bar redrawn during the start lands in the log once. A no-op without a log."""
    path = current()
    if path is None:
        yield
        return
    _quiet_transformers()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    streams = (sys.stdout, sys.stderr)
    swapped = []
    try:
        for fd, name in ((1, "stdout"), (2, "stderr")):
            stream = getattr(sys, name)
            # only the process's own streams write to the descriptors; a test's capture or an
            # embedding program's stream keeps getting what it got
            if keep_console and stream is getattr(sys, f"__{name}__") and stream is not None:
                setattr(sys, name, _terminal_stream(saved[fd], stream))
                swapped.append(name)
        for fd in (1, 2):
            os.dup2(log_fd, fd)
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            sys.stderr.write(f"(the engine's own output is in {path})\n")
        raise
    finally:
        for name in swapped:
            with contextlib.suppress(Exception):
                getattr(sys, name).flush()
        for fd in (1, 2):
            os.dup2(saved[fd], fd)
            os.close(saved[fd])
        os.close(log_fd)
        sys.stdout, sys.stderr = streams


@contextlib.contextmanager
def logging_to(path: Path) -> Iterator[Path]:
    """`use(path)` for the block, released after it."""
    use(path)
    try:
        yield path
    finally:
        release()
