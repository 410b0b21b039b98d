"""Named crash points for the kill tests: HARNESS_FAULT=<name>[:<n>[:INT]] SIGKILLs the process
the n-th time (default: first) it reaches that checkpoint; with ':INT' it sends SIGINT instead,
as a user's Ctrl-C would.

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
    target, _, rest = wanted.partition(":")
    if target != name:
        return
    nth, _, how = rest.partition(":")
    _COUNTS[name] = _COUNTS.get(name, 0) + 1
    if _COUNTS[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGINT if how == "INT" else signal.SIGKILL)
