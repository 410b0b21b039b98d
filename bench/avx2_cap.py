"""The demo's compare on this CPU as an AVX2-only CPU would run it, against the same CPU as it is.

Machines of this kind differ: some have AVX-512, some AVX2 only. Without an AVX2-only machine, the
nearest stand-in is this CPU kept to AVX2 in every kernel library a run uses: torch's own kernels
(ATEN_CPU_CAPABILITY=avx2), oneDNN (ONEDNN_MAX_CPU_ISA=AVX2), MKL (MKL_ENABLE_INSTRUCTIONS=AVX2),
and vLLM's CPU kernels, which it picks by what torch reports: the capped process tells vLLM the CPU
has no AVX-512, so vLLM loads its AVX2 build (`vllm._C_AVX2`; the bench checks which library a
capped process maps). What the stand-in cannot show is an older CPU's clock, caches and memory.

Each mode runs `harness compare --plan PLAN` from a fresh cache (the model linked in: training,
evaluation and report all happen), capped first (the first run pays cold file caches: a ratio that
errs against the capped mode), then as is; the answers of the two are compared. Writes
results/bench/avx2_cap.json.

    BENCH_PLAN=experiments/demo.toml BENCH_ORDER="avx2 native"
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
PLAN = Path(os.environ.get("BENCH_PLAN", str(ROOT / "experiments" / "demo.toml")))
ORDER = os.environ.get("BENCH_ORDER", "avx2 native").split()  # the first pays cold file caches: capped by default
CAPS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def as_avx2_only() -> None:
    """In this process: torch reports no AVX-512 (nor AMX), so vLLM picks its AVX2 kernels."""
    import torch

    torch.cpu._is_avx512_supported = lambda: False
    torch.cpu._is_avx512_bf16_supported = lambda: False
    torch.cpu._is_amx_tile_supported = lambda: False


def vllm_kernels(capped: bool) -> list[str]:
    """The vLLM kernel libraries a (capped) process maps once vLLM has loaded them."""
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); from bench.avx2_cap import as_avx2_only\n"
        f"{'as_avx2_only()' if capped else 'pass'}\n"
        "from vllm.platforms import current_platform; current_platform.import_kernels()\n"
        "print(json.dumps(sorted({l.split()[-1].rsplit('/', 1)[-1] for l in open('/proc/self/maps') if 'vllm/_C' in l})))"
    )
    env = {**os.environ, **(CAPS if capped else {})}
    out = subprocess.run([sys.executable, "-c", code, str(ROOT)], env=env, capture_output=True, text=True, check=True)
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def run(mode: str, work: Path) -> tuple[float, dict, dict]:
    """Wall time, the run's phases, and its answers by (task, item, variant)."""
    from harness.core.files import cache_root

    cache = work / mode / "cache"
    cache.mkdir(parents=True)
    (cache / "models").symlink_to(cache_root() / "models")
    capped = mode == "avx2"
    prelude = "from bench.avx2_cap import as_avx2_only; as_avx2_only(); " if capped else ""
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); {prelude}from harness.cli import main; main()"
    results = work / mode / "results"
    cmd = [sys.executable, "-c", code, "compare", "--plan", str(PLAN), "--results", str(results)]
    env = {**os.environ, **(CAPS if capped else {}), "HARNESS_CACHE": str(cache), "HARNESS_NO_SERVE": "1"}
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=ROOT)
    wall = time.perf_counter() - start
    if out.returncode:
        sys.exit(f"{mode}: compare failed ({out.returncode}):\n{out.stderr[-3000:]}")
    [run_dir] = [p.parent for p in results.glob("*/manifest.json")]
    timings = json.loads((run_dir / "manifest.json").read_text())["timings"]
    answers = {
        (r["task"], r["item"], r["variant"]): r["prediction"]
        for r in map(json.loads, (run_dir / "samples.jsonl").read_text().splitlines())
    }
    return wall, timings, answers


def main() -> None:
    from bench.common import write_result

    kernels = {"avx2": vllm_kernels(True), "native": vllm_kernels(False)}
    if kernels["avx2"] != ["_C_AVX2.abi3.so"]:
        sys.exit(f"the capped process did not load vLLM's AVX2 kernels: {kernels['avx2']}")
    work = Path(tempfile.mkdtemp(prefix="avx2_cap_"))
    try:
        got = {mode: run(mode, work) for mode in ORDER}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    native = got["native"][0]
    rows = [
        {"mode": mode, "wall_s": wall, "x_native": wall / native, "train_s": t.get("train_s"), "eval_s": t.get("eval_s"),
         "report_s": t.get("report_s"), "engine_starts": t.get("engine_starts"), "vllm_kernels": " ".join(kernels[mode])}
        for mode, (wall, t, _) in got.items()
    ]  # fmt: skip
    a, b = got["avx2"][2], got["native"][2]
    shared = a.keys() & b.keys()
    extra = {
        "plan": str(PLAN), "order": ORDER, "caps": CAPS, "phases": {m: g[1] for m, g in got.items()},
        "answers_compared": len(shared), "answers_differing": sum(a[k] != b[k] for k in shared),
    }  # fmt: skip
    write_result("avx2_cap", rows, extra)


if __name__ == "__main__":
    main()
