"""What the machine is, for every manifest and benchmark: figures from machines of one kind differ
(AVX-512 or only AVX2, bf16 instructions or none), so each figure says where it came from."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

from harness.core.allocator import in_use
from harness.engines.chat import cuda_available

# The instruction-set flags that decide CPU speed here: vector width and bf16/int8 support.
FLAGS_OF_INTEREST = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx512_vnni",
                     "amx_bf16", "amx_tile", "amx_int8")  # fmt: skip
# Settings that cap the instruction set torch's kernels, oneDNN and MKL use below what the CPU has
# (how an AVX2-only machine's kernels are tried on an AVX-512 one): a figure taken under one says so.
ISA_CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def cpu_model_and_flags(cpuinfo: str) -> tuple[str, list[str]]:
    """The model name and the flags of interest from /proc/cpuinfo's text (first processor)."""
    model, flags = "", set[str]()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return model, [f for f in FLAGS_OF_INTEREST if f in flags]


def describe() -> dict[str, Any]:
    info: dict[str, Any] = {"machine": platform.machine(), "processor": platform.processor(), "cpus": os.cpu_count()}
    try:
        model, flags = cpu_model_and_flags(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
        info.update(cpu_model=model, cpu_flags=flags, bf16_instructions=any("bf16" in f for f in flags))
    except OSError:  # not Linux: the platform's words are all there is
        pass

    info["allocator"] = in_use()  # tcmalloc (preloaded by the entry point where the machine has it) or not
    caps = {k: os.environ[k] for k in ISA_CAPS if os.environ.get(k)}
    if caps:
        info["isa_caps"] = caps
    with contextlib.suppress(AttributeError):
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    with contextlib.suppress(OSError):
        info["load_1min"] = round(os.getloadavg()[0], 2)  # others' work on the machine while it ran
    return info


def fingerprint() -> str:
    """What decides how fast a request runs on this machine, not what varies by the minute (its
    load): the CPU, its instruction sets and usable cores, any instruction-set cap, the allocator
    (tcmalloc's ~5% would otherwise favour whichever arm an earlier run timed on it), and the GPU."""

    info = describe()
    keys = ("machine", "cpu_model", "cpu_flags", "cpus", "cpus_usable", "isa_caps", "allocator")
    stable = {k: info.get(k) for k in keys}
    if cuda_available():
        import torch

        stable["gpu"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:16]
