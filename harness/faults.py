"""Named crash points for the kill tests: HARNESS_FAULT=<name>[:<n>] SIGKILLs the process the
n-th time (default: first) it reaches that checkpoint.

A test sets it to prove that a crash at that exact moment loses nothing and leaves no file
that lies. Unset (always, for users) it costs one environment lookup.
"""

from __future__ import annotations

import os
import signal

_COUNTS: dict[str, int] = {}


def checkpoint(name: str) -> None:
    wanted = os.environ.get("HARNESS_FAULT")
    if not wanted:
        return
    target, _, nth = wanted.partition(":")
    if target != name:
        return
    _COUNTS[name] = _COUNTS.get(name, 0) + 1
    if _COUNTS[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
