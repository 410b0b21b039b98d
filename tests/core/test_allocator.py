"""tcmalloc for the computing commands: when the entry point relaunches, and that it really does."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness.core import allocator
from tests.helpers import run_cli

TCM = "libtcmalloc_minimal.so.4"
QUIET = {"TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": str(1 << 50)}


@pytest.mark.parametrize("command", ["compare", "train", "sweep", "check-adapter"])
def test_a_computing_command_relaunches_with_tcmalloc(command):
    env = allocator.relaunch_env({"PATH": "/bin"}, ["--debug", command, "--plan", "p.toml"], TCM, gpu=False)
    assert env == {"PATH": "/bin", "LD_PRELOAD": TCM, **QUIET}


def test_a_users_preload_is_kept_behind_tcmalloc_and_their_threshold_kept():
    env = allocator.relaunch_env(
        {"LD_PRELOAD": "libfoo.so", "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": "1"}, ["compare"], TCM, gpu=False
    )
    assert env == {"LD_PRELOAD": f"{TCM} libfoo.so", "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": "1"}


@pytest.mark.parametrize(
    ("environ", "args", "lib", "gpu"),
    [
        ({}, ["tasks"], TCM, False),  # a light command: a second interpreter start for nothing
        ({}, ["report", "results/compare"], TCM, False),
        ({}, ["compare", "--help"], TCM, False),
        ({}, ["compare"], None, False),  # the machine has no tcmalloc
        ({}, ["compare"], TCM, True),  # a GPU machine: not measured there
        ({"LD_PRELOAD": "/opt/libjemalloc.so.2"}, ["compare"], TCM, False),  # the user's allocator
        ({"LD_PRELOAD": TCM}, ["compare"], TCM, False),  # relaunched already
        ({"LD_PRELOAD": "/x/libother.so"}, ["compare"], "/x/libother.so", False),  # the guard is not the name
        ({"HARNESS_NO_TCMALLOC": "1"}, ["compare"], TCM, False),
        ({"HARNESS_NO_TCMALLOC": "maybe"}, ["compare"], TCM, False),  # refused by the CLI, not relaunched
    ],
)
def test_no_relaunch(environ, args, lib, gpu):
    assert allocator.relaunch_env(environ, args, lib, gpu) is None


@pytest.mark.parametrize("value", ["", "0", "no", "off", "false"])
def test_opting_out_is_read_as_a_yes_no(value):
    assert allocator.relaunch_env({"HARNESS_NO_TCMALLOC": value}, ["compare"], TCM, False) is not None


def test_only_linux_preloads(monkeypatch):
    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    assert allocator.tcmalloc() is None


def test_the_allocator_in_use_is_read_from_the_memory_map():
    glibc = "7f00-7f01 r-xp 00000000 fd:00 1 /usr/lib/x86_64-linux-gnu/libc.so.6\n"
    assert allocator.in_use(glibc) == "glibc malloc"
    assert allocator.in_use(glibc + "7f02-7f03 r-xp 0 fd:00 2 /usr/lib/libtcmalloc_minimal.so.4.5.10\n") == "tcmalloc"
    assert allocator.in_use(glibc + "7f02-7f03 r-xp 0 fd:00 2 /usr/lib/libjemalloc.so.2\n") == "jemalloc"


# Runs the real entry point in a child with the library swapped for one every Linux has (libm, which
# changes nothing) and the CLI swapped for a print of what the relaunched process got.
CHILD = """
import os, sys
import harness.core.allocator as a
a.tcmalloc = lambda: "libm.so.6"
a.gpu_machine = lambda: False
import harness.cli
harness.cli.main = lambda: print(os.getpid(), os.environ.get("LD_PRELOAD"), sys.argv[1:])
from harness.cli.launch import main
main()
"""


@pytest.mark.parametrize(("args", "preload"), [(["compare", "--plan", "a b.toml"], "libm.so.6"), (["tasks"], "None")])
def test_the_entry_point_relaunches_itself_in_the_same_process(args, preload):
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", allocator.DISABLE_ENV)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, *args], stdout=subprocess.PIPE, text=True, env=env)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    assert out.strip() == f"{child.pid} {preload} {args}"  # once (no loop), same pid, arguments intact


def test_an_opt_out_that_is_not_yes_or_no_is_refused_in_one_line(capsys, monkeypatch):
    monkeypatch.setenv(allocator.DISABLE_ENV, "maybe")
    code, out, err = run_cli(["tasks"], capsys, monkeypatch)
    assert code == 2 and out == ""
    assert err.strip() == "error: HARNESS_NO_TCMALLOC=maybe is not a yes/no value: set it to 1 or 0"
