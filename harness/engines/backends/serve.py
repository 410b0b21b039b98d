"""`harness serve`: a warm vLLM engine for the base model on a local port.

A cold evaluation pays the engine start (tens of seconds on CPU) before its first token, and a
prompt author pays it again on every template change. While `harness serve` runs, the vllm
backend hands its base-model requests to this server instead of starting an engine: same
model, dtype, context length, seed and prompt token ids, so the answers are the engine's own
and the response cache keeps them under the vllm backend's key. Adapters are not served here
(on CPU each is a merged model with an engine of its own).

The server announces itself in `<cache>/serve.json`; a state file whose process is gone, whose
model or settings differ, or whose port does not answer is ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from harness.core.allocator import opted_out, preloaded, tcmalloc
from harness.core.console import make_console
from harness.core.errors import UserError
from harness.core.files import cache_root
from harness.core.options import env_flag
from harness.engines.backends import kv_space
from harness.engines.backends.engine_settings import configure_cpu_env, kv_block_size, step_budget
from harness.engines.chat import cuda_available

STARTUP_S = 600.0  # an engine start on a loaded 2-core machine, with room to spare
DISABLE_ENV = "HARNESS_NO_SERVE"  # set to 1: never use a running `harness serve`


@dataclass(frozen=True)
class Served:
    url: str
    pid: int
    model_dir: str
    dtype: str
    max_model_len: int
    seed: int


def state_path() -> Path:
    return cache_root() / "serve.json"


def server_command(
    model_dir: Path,
    host: str,
    port: int,
    dtype: str,
    max_model_len: int,
    seed: int,
    eager: bool,
    block_size: int | None = None,
    budget: Mapping[str, int] | None = None,
    kv_bytes: int | None = None,
) -> list[str]:
    """vLLM's OpenAI-compatible server with the settings the vllm backend gives its own engine."""
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir), "--host", host, "--port", str(port),
        "--dtype", dtype, "--max-model-len", str(max_model_len), "--seed", str(seed),
        "--enable-prefix-caching", "--disable-uvicorn-access-log",
    ]  # fmt: skip
    if block_size:
        cmd += ["--block-size", str(block_size)]
    for name, value in (budget or {}).items():
        cmd += ["--" + name.replace("_", "-"), str(value)]
    if kv_bytes:
        cmd += ["--kv-cache-memory-bytes", str(kv_bytes)]
    return [*cmd, "--enforce-eager"] if eager else cmd


def parse_state(raw: Mapping[str, Any]) -> Served | None:
    """A state file as written by `serve`, or None for anything else (an older or hand-edited file)."""
    try:
        return Served(
            url=str(raw["url"]),
            pid=int(raw["pid"]),
            model_dir=str(raw["model_dir"]),
            dtype=str(raw["dtype"]),
            max_model_len=int(raw["max_model_len"]),
            seed=int(raw["seed"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def matches(served: Served, model_dir: Path, dtype: str, max_model_len: int, seed: int) -> bool:
    """Whether the server's answers are the ones this backend's own engine would give."""
    return (
        Path(served.model_dir) == model_dir.resolve()
        and served.dtype == dtype
        and served.max_model_len == max_model_len
        and served.seed == seed
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:  # gone, or another user's process: not ours to use
        return False
    return True


def _answers(url: str) -> bool:

    try:
        return httpx.get(url + "/v1/models", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def running(model_dir: Path, dtype: str, max_model_len: int, seed: int) -> Served | None:
    """The running server this backend may use, or None."""

    if env_flag(DISABLE_ENV):
        return None
    try:
        served = parse_state(json.loads(state_path().read_text()))
    except (OSError, ValueError):
        return None
    if served is None or not matches(served, model_dir, dtype, max_model_len, seed) or not _alive(served.pid):
        return None
    return served if _answers(served.url) else None


def check_address(host: str, port: int) -> None:
    """Refuse, before an engine start, an address this machine cannot listen on or a port in use."""

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise UserError(f"--host {host!r} is not an address of this machine ({exc})") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no conflict
        try:
            probe.bind(address)
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def serve(model_dir: Path, host: str, port: int, dtype: str, max_model_len: int, seed: int, log: Path) -> None:
    """Run the server until interrupted; announce it while it answers. Blocks."""

    current = running(model_dir, dtype, max_model_len, seed)
    if current is not None:
        raise UserError(f"harness serve already runs at {current.url} (process {current.pid})")
    check_address(host, port)
    cpu = not cuda_available()
    if cpu:
        configure_cpu_env()
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    kv_bytes = kv_space.kv_cache_bytes(model_dir, dtype, max_model_len) if cpu else None
    # Eager on CPU even for a long-lived server: compiled (torch.compile), the same four 400-item
    # passes through it took 24.4-25.9 s of evaluation against 25.0-26.5 s eager (2 AMD EPYC cores,
    # warm_reeval's plan), ~0.5 s a pass for ~55 s more start: a hundred edits to break even.
    cmd = server_command(
        model_dir, host, port, dtype, max_model_len, seed, eager=cpu, block_size=kv_block_size(), budget=step_budget(),
        kv_bytes=kv_bytes,
    )  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as sink:
        wanted = cpu and not opted_out(os.environ)  # HARNESS_NO_TCMALLOC=1 holds for the server too
        env = server_env(os.environ, tcmalloc() if wanted else None)
        server = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    served = Served(url, server.pid, str(model_dir.resolve()), dtype, max_model_len, seed)
    state = state_path()
    try:
        deadline = time.monotonic() + STARTUP_S
        while not _answers(url):
            if server.poll() is not None:
                raise UserError(f"the vLLM server stopped while starting (exit status {server.returncode}); see {log}")
            if time.monotonic() > deadline:
                raise UserError(f"the vLLM server did not answer within {STARTUP_S:.0f} s; see {log}")
            time.sleep(1.0)
        tmp = state.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(served)))
        os.replace(tmp, state)
        announce(served, log, env.get("LD_PRELOAD", "") if wanted else None)
        server.wait()
        raise UserError(f"the vLLM server stopped (exit status {server.returncode}); see {log}")
    finally:
        with contextlib.suppress(OSError, ValueError):  # only this server's announcement is taken back
            if parse_state(json.loads(state.read_text())) == served:
                state.unlink()
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)


def server_env(environ: Mapping[str, str], allocator: str | None) -> dict[str, str]:
    """The server's environment: its engine in a process of its own whatever this process's engines
    do, and tcmalloc preloaded where the machine has it and no allocator is preloaded already.
    Measured on 2 AMD EPYC cores, a changed template re-evaluated on 400 prompts through the server
    (bench/warm_reeval.py's setup, three wordings twice, servers with and without it interleaved):
    evaluation 27.0 -> 25.5 s on average, the command 29.8 -> 28.3 s, its slowest 31.8 -> 28.9 s.
    Intel's OpenMP preloaded as well gained nothing."""
    return preloaded({k: v for k, v in environ.items() if k != "VLLM_ENABLE_V1_MULTIPROCESSING"}, allocator)


def announce(served: Served, log: Path, preload: str | None = None) -> None:
    """`preload`: the server's LD_PRELOAD on CPU (None on CUDA or where the user opted out of
    tcmalloc), to say whether tcmalloc serves it."""

    allocator = ", tcmalloc" if preload and "tcmalloc" in preload else ""
    hint = ""
    if preload is not None and "malloc" not in preload:
        hint = " With tcmalloc it would be ~5% faster (Debian: apt install libgoogle-perftools4)."
    make_console().print(
        f"serving {Path(served.model_dir).name} at {served.url} ({served.dtype}{allocator}); compare uses it for "
        f"base-model requests while it runs. Engine log: {log}. Ctrl-C stops it.{hint}",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
