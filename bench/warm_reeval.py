"""A prompt author's loop: edit a template, run `harness compare` again; cold engine vs `harness serve`.

What the author waits for is the command's wall time, so each pass runs the CLI as they would:
`harness compare --plan plan.toml` on a prompt-only plan (one few-shot variant, `fixed` shots: one
set every request shares, which vLLM's prefix cache computes once; BENCH_N test items and 8
validation items; no format spread, no latency probe). Each round gives the template's instruction
a new wording (and with it every prompt, the shots' turns included), and both paths evaluate that
wording, each with a response cache of its own, so no answer is cached and both compute the same
tokens (wordings differ in length, and with it in how much of the shared prefix fills whole KV
blocks: comparing one wording's cold pass with another's warm pass measured the wordings too).

- cold: HARNESS_NO_SERVE=1, compare starts its own engine (in-process, as by default);
- warm: through a `harness serve` started once before the first pass (its start is reported
  on its own; a prompt author pays it once a session; tcmalloc preloaded where the machine has
  it, as `harness serve` does, and the JSON says which allocator served);
- cached: the last plan run again unchanged (no model call: start-up and report only; no server).

The task is the built-in twitter_fin_sentiment under another name with its templates copied (as a
researcher adds a task), its data linked; each path's response cache is a fresh one with the model
linked in. The path that goes first alternates over rounds; the best wall of each counts. Writes
results/bench/warm_reeval.json.

Each pass also records the prompt tokens the engine had to compute: vLLM's prefix cache keeps only
whole KV blocks (32 tokens on CPU), so the shared prefix's last partial block is computed again for
every request, 0-31 tokens depending on the wording's length, on top of each item's own ~33. And
for each warm pass, the CPU seconds the server's processes spent (near 2x the pass's evaluation
time: both cores busy, so a pass costs what its tokens cost), and those seconds per computed
prompt token (flat across wordings when a pass's time is its tokens).

    BENCH_N=400 BENCH_ROUNDS=2
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

N_ITEMS = int(os.environ.get("BENCH_N", "400"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
ROOT = Path(__file__).resolve().parents[1]
SOURCE = "twitter_fin_sentiment"
NAME = "author_tweets"
WORDINGS = (  # a new instruction for every pass: an author trying wordings
    "Label the market sentiment of finance news tweets as {listed}, as in the examples.",
    "Classify each finance tweet's sentiment for the market: {listed}.",
    "For each tweet about markets, answer with its sentiment: {listed}.",
    "Read the finance news tweet and say whether it is {listed}.",
    "Market sentiment of the tweet, one of {listed}:",
    "Decide if this finance tweet reads {listed} for the market.",
    "Tag the tweet's market sentiment ({listed}).",
    "Sentiment of a finance news tweet for investors: {listed}.",
)
TEMPLATE = '{{% set system = "{instruction}" | replace("{{listed}}", labels[:-1] | join(", ") ~ " or " ~ labels[-1]) %}}\nTweet: {{{{ text }}}}\n'  # noqa: E501


def setup(work: Path) -> dict[str, str]:
    """Task folder, prompts, data and cache for the bench; the environment its commands run in."""
    from harness.core.files import cache_root

    tasks = work / "tasks"
    tasks.mkdir()
    source = (ROOT / "tasks" / f"{SOURCE}.py").read_text()
    (tasks / f"{NAME}.py").write_text(source.replace(f'name="{SOURCE}"', f'name="{NAME}"'))
    shutil.copytree(ROOT / "prompts" / SOURCE, work / "prompts" / NAME)
    data = work / "data"
    data.mkdir()
    (data / NAME).symlink_to(Path(os.environ["HARNESS_DATA_DIR"]).resolve() / SOURCE)
    for name in ("cache", "cache_cold"):
        (work / name).mkdir()
        (work / name / "models").symlink_to(cache_root() / "models")
    plan = (
        f'name = "warm_reeval"\nlimit = {N_ITEMS}\nval_limit = 8\nlatency_probe = 0\n\n'
        f'[[task]]\nname = "{NAME}"\nformats = 0\nvariants = [\n'
        '  { name = "few_shot_6", template = "few_shot", shots = 6, selection = "fixed" },\n]\n'
    )
    (work / "plan.toml").write_text(plan)
    paths = {"HARNESS_CACHE": str(work / "cache"), "HARNESS_DATA_DIR": str(data), "HARNESS_TASKS_PATH": str(tasks)}
    return {**os.environ, **paths}


def edit(work: Path, n: int) -> None:
    (work / "prompts" / NAME / "few_shot.j2").write_text(TEMPLATE.format(instruction=WORDINGS[n % len(WORDINGS)]))


def compare(work: Path, env: dict[str, str], run: int) -> tuple[float, dict]:
    """The command's wall time, and the phases its manifest records."""
    cmd = [str(Path(sys.executable).parent / "harness"), "compare", "--plan", str(work / "plan.toml"),
           "--results", str(work / "results"), "--run-id", f"r{run}"]  # fmt: skip
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if out.returncode:
        sys.exit(f"compare failed ({out.returncode}):\n{out.stderr[-3000:]}{out.stdout[-2000:]}")
    return wall, json.loads((work / "results" / f"r{run}" / "manifest.json").read_text())["timings"]


def shared_prefix(ids: list[list[int]]) -> int:
    """Tokens every prompt starts with."""
    first, shortest = ids[0], min(len(x) for x in ids)
    return next((k for k in range(shortest) if any(x[k] != first[k] for x in ids)), shortest)


def prompt_work(ids: list[list[int]], block: int) -> dict[str, int]:
    """Prompt tokens a prefix-caching engine computes for these prompts, sent together after the
    shared prefix was cached by whole blocks: each prompt minus the shared prefix's whole blocks.
    `tail` is what each request computes again of the shared prefix (its partial last block)."""
    shared = shared_prefix(ids)
    cached = shared // block * block
    return {"shared_prefix": shared, "tail": shared - cached,
            "computed": sum(len(x) for x in ids) - cached * len(ids)}  # fmt: skip


def run_prompt_work(run_dir: Path) -> dict[str, int]:
    """prompt_work of a run's test prompts, tokenized as the engine tokenizes them."""
    from harness.core.types import Message
    from harness.engines.backends.engine_settings import CPU_KV_BLOCK
    from harness.engines.chat import encode_chat
    from harness.engines.models import resolve
    from harness.engines.tokenizer import counting_tokenizer
    from harness.runlog.folder import read_samples

    tok = counting_tokenizer(resolve())
    rows = read_samples(run_dir / "samples.jsonl")
    ids = [encode_chat(tok, [Message(m["role"], m["content"]) for m in r["messages"]]) for r in rows]
    return prompt_work(ids, CPU_KV_BLOCK)


def tree_cpu_s(root: int) -> float:
    """User + system CPU seconds of a process and all its descendants, those still running and
    those it has reaped."""
    import psutil

    top = psutil.Process(root)
    total = 0.0
    for proc in [top, *top.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):  # gone meanwhile: its parent reaped it, counted there
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, float]:
    from harness.engines.backends import serve
    from harness.engines.backends.vllm import VLLMBackend
    from harness.engines.models import resolve

    cmd = [str(Path(sys.executable).parent / "harness"), "serve", "--port", str(free_port())]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    os.environ["HARNESS_CACHE"] = env["HARNESS_CACHE"]  # serve.running reads the bench's own cache
    settings = VLLMBackend(resolve())
    while serve.running(settings.model_dir, settings.dtype, settings.max_model_len, settings.seed) is None:
        if proc.poll() is not None:
            sys.exit(f"harness serve exited ({proc.returncode}); see {log}")
        time.sleep(0.5)
    return proc, time.perf_counter() - start


def main() -> None:
    from bench.common import write_result

    work = Path(tempfile.mkdtemp(prefix="warm_reeval_"))
    server = None
    try:
        env = setup(work)
        cold_env = {**env, "HARNESS_NO_SERVE": "1", "HARNESS_CACHE": str(work / "cache_cold")}
        walls: dict[str, list[float]] = {"cold": [], "warm": [], "cached": []}
        phases: dict[str, list[dict]] = {"cold": [], "warm": [], "cached": []}
        server, server_start_s = start_server(env, work / "serve.log")
        run = 0
        for r in range(-1, ROUNDS):  # round -1, untimed: each cache's data check, once a session for an author
            edit(work, r)
            for path in ("cold", "warm") if r % 2 == 0 else ("warm", "cold"):
                server_cpu = tree_cpu_s(server.pid)
                wall, timings = compare(work, env if path == "warm" else cold_env, run)
                if path == "warm":
                    timings["server_cpu_s"] = round(tree_cpu_s(server.pid) - server_cpu, 1)
                timings["wording"] = r % len(WORDINGS)
                timings["prompt_tokens"] = run_prompt_work(work / "results" / f"r{run}")
                if path == "warm":  # what a computed prompt token costs the server: flat when only tokens differ
                    timings["server_cpu_ms_per_token"] = round(
                        1000 * timings["server_cpu_s"] / timings["prompt_tokens"]["computed"], 2
                    )
                run += 1
                if r >= 0:
                    walls[path].append(wall)
                    phases[path].append(timings)
        wall, timings = compare(work, {**env, "HARNESS_NO_SERVE": "1"}, run)  # the last template again: all cached
        timings["prompt_tokens"] = run_prompt_work(work / "results" / f"r{run}")
        walls["cached"].append(wall)
        phases["cached"].append(timings)
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
    cold = min(walls["cold"])
    rows = [
        {"path": p, "items": N_ITEMS, "best_wall_s": min(w), "x_cold": cold / min(w),
         "all_walls_s": " ".join(f"{x:.1f}" for x in w),
         "tails": " ".join(str(t["prompt_tokens"]["tail"]) for t in phases[p]),
         "server_cpu_ms_per_token": " ".join(f"{t['server_cpu_ms_per_token']:.2f}" for t in phases[p]
                                             if "server_cpu_ms_per_token" in t) or "-"}
        for p, w in walls.items()
    ]  # fmt: skip
    settings = {"items": N_ITEMS, "rounds": ROUNDS, "variant": "few_shot_6 fixed", "val_items": 8}
    from harness.core.allocator import tcmalloc

    # harness serve preloads tcmalloc where the machine has it: the warm path's figure depends on it
    settings["server_allocator"] = tcmalloc() or "glibc malloc"
    extra = {"settings": settings, "server_start_s": server_start_s,
             "ratio_cold_over_warm": cold / min(walls["warm"]), "phases": phases}  # fmt: skip
    write_result("warm_reeval", rows, extra)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
