"""tcmalloc for the processes that compute on CPU, where the machine has it.

vLLM's CPU guide asks for tcmalloc (its engine warns when none is preloaded), and torch's CPU
kernels allocate and free large tensors at every step, which glibc's malloc hands back to the kernel
and faults in again. An allocator can only be preloaded before a process starts, so the `harness`
command re-executes itself with it (harness.cli.launch) for the commands that run a model, and
`harness serve` starts its server with it. Only the standard library here: the entry point imports
this module before anything else.
"""

from __future__ import annotations

import ctypes.util
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

DISABLE_ENV = "HARNESS_NO_TCMALLOC"  # set to 1: run on the allocator the process starts with
# The commands that run a model. Measured on 2 AMD EPYC cores (bench/allocator.py, alternating
# runs): a cold compare of 408 requests 1.04-1.05x faster; `harness train` no faster or slower
# beyond the noise (pairs 0.87-1.14x, training steps 33.9 against 33.1 s over six hand-run pairs)
# with peak RSS 7% lower (1.59 against 1.71 GB), and compare trains on it too. Light commands start
# in well under a second and would pay a second interpreter start for nothing.
COMPUTING = frozenset({"compare", "train", "sweep", "check-adapter"})
# tcmalloc reports every allocation over 1 GiB on stderr (the KV cache is one, 2 GiB on CPU): a line a
# person reading progress has no use for. A user's own setting is kept.
QUIET = {"TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": str(1 << 50)}


def tcmalloc() -> str | None:
    """tcmalloc's library where the machine has it (Debian: libgoogle-perftools4), else None. Linux
    only: LD_PRELOAD is the Linux loader's (macOS would find Homebrew's and relaunch for nothing)."""
    if not sys.platform.startswith("linux"):
        return None
    return ctypes.util.find_library("tcmalloc_minimal") or ctypes.util.find_library("tcmalloc")


def preloaded(environ: Mapping[str, str], allocator: str | None) -> dict[str, str]:
    """`environ` with `allocator` preloaded, unless an allocator is preloaded already (the user's
    jemalloc, or this one by an earlier start) or there is none to preload."""
    env = dict(environ)
    preload = env.get("LD_PRELOAD", "")
    if allocator and "malloc" not in preload:
        env["LD_PRELOAD"] = f"{allocator} {preload}".strip()
        for key, value in QUIET.items():
            env.setdefault(key, value)
    return env


def opted_out(environ: Mapping[str, str]) -> bool:
    """HARNESS_NO_TCMALLOC as a yes/no; a value that is neither counts as yes here, and the CLI then
    refuses it in one line (harness.core.options.env_flag) before any work."""
    return environ.get(DISABLE_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def gpu_machine() -> bool:
    """An NVIDIA driver is loaded. Cheap (no torch): the entry point asks before anything is imported.
    tcmalloc was measured on CPU only, and on CUDA the model's work is not the host allocator's."""
    return Path("/proc/driver/nvidia/version").exists()


def relaunch_env(environ: Mapping[str, str], args: Sequence[str], allocator: str | None, gpu: bool) -> dict[str, str] | None:
    """The environment to re-execute the command with, or None to run it as it is: a computing
    command on a CPU machine with tcmalloc, no allocator preloaded yet, and the user not opting out."""
    preload = environ.get("LD_PRELOAD", "")
    # an allocator in LD_PRELOAD already, the user's or this one's: also what ends the relaunch
    if allocator is None or gpu or opted_out(environ) or "malloc" in preload or allocator in preload:
        return None
    if not COMPUTING.intersection(args) or "--help" in args:
        return None
    return preloaded(environ, allocator)


def in_use(maps: str | None = None) -> str | None:
    """The allocator this process runs on, read from its memory map (None where there is no /proc):
    what a manifest records, since a figure taken on tcmalloc is ~5% faster than on glibc's malloc."""
    if maps is None:
        try:
            maps = Path("/proc/self/maps").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    for name in ("tcmalloc", "jemalloc", "mimalloc"):
        if f"lib{name}" in maps:
            return name
    return "glibc malloc" if sys.platform.startswith("linux") else None
