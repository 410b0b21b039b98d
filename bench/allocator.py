"""The `harness` command on tcmalloc (its default where the machine has it) against glibc's malloc.

The entry point relaunches a computing command with tcmalloc preloaded (harness.cli.launch);
HARNESS_NO_TCMALLOC=1 runs it on the allocator the process starts with. Both paths run the real
command as a user would, each with a fresh cache (the model linked in), so each computes everything:

- compare: bench/warm_reeval.py's plan with a cold engine (BENCH_N twitter test items + 8
  validation items, one few-shot wording, the in-process engine; no `harness serve`);
- train: `harness train` on the same task (twitter_fin_sentiment under another name),
  `--train-size BENCH_TRAIN --epochs 1`.

Paths alternate over rounds (which goes first swaps each round); the best wall of each counts, and
the peak RSS is the command's own (its process, relaunched or not, and what it waited for). For
train the adapter's own figures count too: its training steps' seconds and tokens/s (without the
command's start-up, data and model load), best and median over rounds. BENCH_COMMANDS=train runs
only the training pairs, for more rounds in the same time (the allocator column then says which
one was asked for: only compare's manifest records the one a run computed on). Writes
results/bench/allocator.json; skipped where the machine has no tcmalloc.

    BENCH_N=400 BENCH_TRAIN=96 BENCH_ROUNDS=2 BENCH_COMMANDS=compare,train
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

N_TRAIN = int(os.environ.get("BENCH_TRAIN", "96"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
COMMANDS = tuple(c for c in os.environ.get("BENCH_COMMANDS", "compare,train").split(",") if c)
PATHS = {"tcmalloc": {}, "glibc": {"HARNESS_NO_TCMALLOC": "1"}}


def fresh_cache(work: Path, name: str) -> str:
    from harness.core.files import cache_root

    cache = work / name
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir()
    (cache / "models").symlink_to(cache_root() / "models")
    return str(cache)


def timed(cmd: list[str], env: dict[str, str], log: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS in GB of one command (wait4: the child's own usage, not the bench's)."""
    with log.open("w") as sink:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{log.read_text()[-3000:]}")
    return wall, usage.ru_maxrss / 1e6


def trained(cache: str) -> dict[str, float]:
    """The training steps' own seconds and tokens/s, from the one adapter a fresh cache holds."""
    (manifest,) = Path(cache).glob("adapters/*/harness-adapter.json")
    meta = json.loads(manifest.read_text())
    return {"train_s": float(meta["train_wall_s"]), "tokens_per_s": float(meta["tokens_per_s"])}


def main() -> None:
    import statistics

    from bench.common import write_result
    from bench.warm_reeval import NAME, edit, setup
    from harness.core.allocator import tcmalloc

    if unknown := set(COMMANDS) - {"compare", "train"}:
        sys.exit(f"BENCH_COMMANDS: compare and/or train, got {sorted(unknown)}")
    if tcmalloc() is None:
        sys.exit("no tcmalloc on this machine (Debian: apt install libgoogle-perftools4): nothing to compare")
    harness = str(Path(sys.executable).parent / "harness")
    work = Path(tempfile.mkdtemp(prefix="allocator_"))
    env = {k: v for k, v in setup(work).items() if k not in ("LD_PRELOAD", "HARNESS_NO_TCMALLOC")}
    env["HARNESS_NO_SERVE"] = "1"
    edit(work, 0)
    runs: dict[str, dict[str, list[tuple[float, float]]]] = {p: {c: [] for c in COMMANDS} for p in PATHS}
    steps: dict[str, list[dict[str, float]]] = {p: [] for p in PATHS}
    allocators: dict[str, str] = {}
    n = 0
    for r in range(ROUNDS):
        order = list(PATHS) if r % 2 == 0 else list(reversed(PATHS))
        for command in COMMANDS:
            for path in order:
                penv = {**env, **PATHS[path], "HARNESS_CACHE": fresh_cache(work, "cache_run")}
                if command == "compare":
                    n += 1
                    cmd = [harness, "compare", "--plan", str(work / "plan.toml"), "--results", str(work / "results"),
                           "--run-id", f"r{n}"]  # fmt: skip
                else:
                    cmd = [harness, "train", NAME, "--train-size", str(N_TRAIN), "--epochs", "1"]
                runs[path][command].append(timed(cmd, penv, work / "command.log"))
                if command == "train":
                    steps[path].append(trained(penv["HARNESS_CACHE"]))
                if command == "compare":
                    manifest = json.loads((work / "results" / f"r{n}" / "manifest.json").read_text())
                    allocators[path] = manifest["hardware"]["allocator"]  # what the run really ran on
    rows = []
    for command in COMMANDS:
        base = min(w for w, _ in runs["glibc"][command])
        for path in PATHS:
            walls = [w for w, _ in runs[path][command]]
            row = {
                "command": command, "allocator": allocators.get(path, f"{path} (asked)"),
                "best_wall_s": min(walls), "x_glibc": base / min(walls),
                "peak_rss_gb": max(m for _, m in runs[path][command]), "all_walls_s": " ".join(f"{w:.1f}" for w in walls),
            }  # fmt: skip
            if command == "train":
                secs = [t["train_s"] for t in steps[path]]
                row |= {"best_steps_s": min(secs), "median_steps_s": statistics.median(secs),
                        "median_tokens_per_s": statistics.median(t["tokens_per_s"] for t in steps[path]),
                        "all_steps_s": " ".join(f"{x:.1f}" for x in secs)}  # fmt: skip
            rows.append(row)
    settings = {"compare_items": int(os.environ.get("BENCH_N", "400")), "val_items": 8, "train_size": N_TRAIN,
                "rounds": ROUNDS, "commands": list(COMMANDS), "tcmalloc": tcmalloc()}  # fmt: skip
    write_result("allocator", rows, {"settings": settings})
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
