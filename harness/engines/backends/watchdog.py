"""Reap a vLLM engine's processes when the harness process dies without closing it.

vLLM's EngineCore process does not watch its parent: after a SIGKILL or an OOM kill of the
harness it would stay alive as an orphan, holding the model, the KV cache (and any pipes it
inherited). A detached watchdog polls the harness's pid and kills the engine's processes
once it is gone; a clean close stops the watchdog first.
"""

from __future__ import annotations

import os
import subprocess
import sys

import psutil

_SCRIPT = """
import os, signal, sys, time
parent, pids = int(sys.argv[1]), [int(p) for p in sys.argv[2:]]
while True:
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        break
    if os.getppid() != parent:  # re-parented: the harness is gone even if its pid was reused
        break
    time.sleep(0.5)
for pid in pids:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
"""


def engine_processes() -> list[int]:
    """Descendant processes of this one (vLLM's EngineCore and its workers)."""

    return [p.pid for p in psutil.Process().children(recursive=True)]


def start(pids: list[int]) -> subprocess.Popen[bytes] | None:
    if not pids:
        return None
    return subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, str(os.getpid()), *map(str, pids)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # survives a signal sent to the harness's process group
    )  # fmt: skip


def stop(watchdog: subprocess.Popen[bytes] | None) -> None:
    if watchdog is not None and watchdog.poll() is None:
        watchdog.terminate()
        watchdog.wait(10)
