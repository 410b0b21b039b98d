"""The engine watchdog kills an engine's processes when the harness dies without closing it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

HELPER = """
import os, signal, subprocess, sys
from harness.engines.backends import watchdog
engine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
watchdog.start([engine.pid])
print(engine.pid, flush=True)
if sys.argv[1] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_engine_is_killed_when_the_harness_is_killed():
    out = subprocess.run([sys.executable, "-c", HELPER, "kill"], capture_output=True, text=True, timeout=60)
    assert out.returncode == -9
    pid = int(out.stdout.split()[0])
    deadline = time.time() + 10
    while _alive(pid) and time.time() < deadline:
        time.sleep(0.2)
    assert not _alive(pid)


def test_stop_disarms_the_watchdog():
    from harness.engines.backends import watchdog

    engine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    dog = watchdog.start([engine.pid])
    watchdog.stop(dog)
    assert dog is not None and dog.poll() is not None
    time.sleep(1)
    assert _alive(engine.pid)
    engine.kill()
    engine.wait()
    assert watchdog.start([]) is None
    assert os.getpid() not in watchdog.engine_processes()
