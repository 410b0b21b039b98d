"""`harness compare`, the recipe: check everything, train what the plan needs, evaluate every arm on
the same items, and leave a run folder a report is built from (the CLI renders it; compare never
does). Read top to bottom:

1. preflight: every check that needs no model, one bundle per task (harness.experiment.preflight);
2. the model, the data checks, the prompts against the context, the prompt search's candidates;
3. the adapter side: sweeps, then one adapter per size and seed (harness.experiment.training);
4. the manifest, written once the backend is built (harness.experiment.manifest);
5. the prompt side per task: search, evaluate on validation and test, select on validation,
   latency probe, noise floor, format spread;
6. the adapter side per adapter: its arms on validation and test, latency probe, retention.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from harness.core.console import make_console
from harness.core.errors import UserError
from harness.core.files import read_json
from harness.core.identity import check_same
from harness.engines import engine_log, hardware
from harness.engines.backends.base import Backend
from harness.engines.backends.factory import make_backend
from harness.engines.chat import encode_chat
from harness.engines.models import content_hash, resolve
from harness.engines.response_cache import CachedBackend, LatencyCache, ResponseCache, default_cache
from harness.engines.tokenizer import counting_tokenizer
from harness.experiment import many_shot
from harness.experiment import prompt_search as ps
from harness.experiment.arms import (
    RetentionJob,
    adapter_arms,
    noise_anchor,
    retention_jobs,
    same_prompt,
    select_prompt,
    selectable,
)
from harness.experiment.checks import DEFAULT_CONTEXT, check_context, check_trainable, context_fits, data_check
from harness.experiment.evaluator import Evaluator
from harness.experiment.format_spread import describe, spread_variants
from harness.experiment.latency import probe
from harness.experiment.manifest import (
    Arm,
    ManifestFile,
    RunManifest,
    carried_over,
    run_manifest,
    task_entry,
    validation_facts,
)
from harness.experiment.plan import Plan, TaskPlan, without_scored_defaults
from harness.experiment.preflight import Preflight, TaskBundle, preflight
from harness.experiment.training import run_sweeps, train_adapters
from harness.experiment.variant import Variant, seeded_prompts
from harness.runlog.folder import MANIFEST, locked

console = make_console(stderr=True)


@dataclass(frozen=True)
class Engines:
    """How the arms are evaluated: through the response cache; the noise floor and the latency probe
    reach the engine itself (a cached answer would repeat the first one, and takes no time)."""

    raw: Backend
    evaluate: Evaluator
    noise: Evaluator
    known: LatencyCache | None  # the probe's times from earlier runs on this machine


def compare(
    plan: Plan,
    results_root: Path,
    backend_kind: str = "vllm",
    run_id: str | None = None,
    backend_options: dict[str, Any] | None = None,
    use_cache: bool = True,
    batch_size: int = 128,
) -> tuple[Path, dict[str, Any]]:
    """Run (or resume) the plan's comparison; returns the run folder and this session's timings."""
    options = backend_options or {}
    if backend_kind == "openai":
        plan = without_scored_defaults(plan)
    pre = preflight(plan, results_root, backend_kind, run_id, options)
    timings: dict[str, Any] = {}
    # Nothing in the run folder is written until every input is known good: a refused rerun of a
    # finished run leaves it byte for byte as it was (the lock writes nothing there either).
    responses = default_cache() if use_cache else None
    with locked(pre.run_dir), engine_log.logging_to(pre.run_dir / engine_log.ENGINE_LOG):
        previous = _previous(pre)
        start = time.perf_counter()
        model_dir = resolve(plan.model)
        timings["model_s"] = round(time.perf_counter() - start, 1)
        if previous is not None and previous.get("model_hash") not in (None, content_hash(model_dir)):
            raise UserError(
                f"{pre.run_dir} was evaluated with other weights for {plan.model} (hash {previous['model_hash']}, "
                f"now {content_hash(model_dir)}); omit --run-id or pass a new one"
            )
        checks = {b.name: data_check(b.task, model_dir, b.plan.train if b.plan.train_sizes else None) for b in pre.bundles}
        for b in pre.bundles:
            if b.plan.train_sizes:
                check_trainable(b.task, checks[b.name], b.plan.train)
        max_len = int(options.get("max_model_len", DEFAULT_CONTEXT))
        plan = _prompts_fit(plan, pre, model_dir, max_len, options.get("overflow", "error") == "error")
        points = {  # every point checked against the context before any training
            b.name: ps.search_points(
                b.task, b.space, b.validation, b.pool, model_dir, max_len, strict=bool(b.plan.prompt_search.get("space"))
            )
            for b in pre.bundles
            if b.space is not None
        }
        tuned, sweeps = run_sweeps(plan, results_root, timings)
        trained = train_adapters(tuned, timings)
        manifest = _manifest(plan, pre, model_dir, backend_kind, trained, checks, sweeps)
        start = time.perf_counter()
        raw = make_backend(backend_kind, model_dir, **options)
        file = ManifestFile(pre.run_dir / MANIFEST, carried_over(previous, manifest) if previous else manifest)
        file.write()  # the first write of this session: its inputs are all known good
        engines = _engines(raw, responses, file.manifest, trained, pre.run_dir, plan, batch_size)
        try:
            # The base model's work first (search, prompt arms, retention baselines), then each
            # adapter's arms together: the fewest engine starts.
            chosen = {
                b.name: _prompt_side(b, tp, tuned, file, engines, results_root, model_dir, max_len, points.get(b.name))
                for b, tp in zip(pre.bundles, tuned.tasks, strict=True)
            }
            for job in retention_jobs(tuned, trained, base=True):
                engines.evaluate(*job)
            retention = retention_jobs(tuned, trained, base=False)
            for b, tp in zip(pre.bundles, tuned.tasks, strict=True):
                searched = chosen[b.name] if tp.prompt_search else None
                scores = backend_kind != "openai"
                arms = [adapter_arms(b.task, v, f, searched, scores) for v, f in trained[b.name]]
                _adapter_side(b, arms, retention, file, engines, tuned)
        finally:
            engines.evaluate.backend.close()
        # engines started by this session (0 when every answer was cached) and their start-up time
        timings["engine_starts"] = int(raw.engine_starts)
        timings["engine_start_s"] = round(float(raw.engine_start_s), 1)
        if raw.served_url:  # base-model requests went to a running `harness serve`
            timings["served_by"] = raw.served_url
        timings["eval_s"] = round(time.perf_counter() - start, 1)
        file.finish(timings, previous)
    return pre.run_dir, timings


def _previous(pre: Preflight) -> dict[str, Any] | None:
    """The run folder's manifest from an earlier session, made under these very conditions."""
    existing = pre.run_dir / MANIFEST
    previous = read_json(existing) if existing.is_file() else None
    if previous is None:
        return None
    if not isinstance(previous, dict):
        raise UserError(f"{existing} is not a run manifest (a JSON object); delete the run or pass another --run-id")
    check_same(str(pre.run_dir), previous.get("identity"), pre.identity)
    return previous


def _prompts_fit(plan: Plan, pre: Preflight, model_dir: Path, max_len: int, strict: bool) -> Plan:
    """Each many-shot variant gets the shots the context holds for every test and validation item;
    then (unless the prompts may be cut) every prompt is checked against the context, with the
    model's own tokenizer, before any training."""
    tokenizer = counting_tokenizer(model_dir)
    tasks = []
    for b, tp in zip(pre.bundles, plan.tasks, strict=True):
        sets = (b.items, b.validation)
        if any(v.many_shot and not v.shots for v in tp.variants):
            filled = many_shot.resolve(
                b.task, tp.variants, sets, b.pool, lambda m: len(encode_chat(tokenizer, m)), max_len, plan.seed
            )
            for v in filled:
                if v.many_shot:
                    console.print(f"[bold]many-shot[/bold] {tp.name}: {v.name} shows {v.shots} similar examples per item")
            tp = replace(tp, variants=tuple(filled))
        if strict:
            check_context(b.task, seeded_prompts(tp.variants, tp.seeds), sets, b.pool, model_dir, max_len, plan.seed)
        tasks.append(tp)
    return replace(plan, tasks=tuple(tasks))


def _manifest(
    plan: Plan,
    pre: Preflight,
    model_dir: Path,
    backend_kind: str,
    trained: dict[str, list[Arm]],
    checks: Mapping[str, dict[str, Any]],
    sweeps: Mapping[str, dict[str, Any]],
) -> RunManifest:
    entries = {}
    for b, tp in zip(pre.bundles, plan.tasks, strict=True):
        entry = replace(
            task_entry(tp, b.items, b.pool, trained[b.name]), data_check=checks[b.name],
            validation=validation_facts(b.task, b.validation), test_items=tuple(s.id for s in b.items),
        )  # fmt: skip
        for w in checks[b.name]["warnings"]:
            console.print(f"[yellow]data warning[/yellow] {b.name}: {w}")
        field = b.task.cluster_field
        if field:  # items sharing a source: the report's intervals and tests resample sources
            entry = replace(entry, cluster_field=field, clusters={s.id: str(s.fields[field]) for s in b.items})
        if b.name in sweeps:
            found = sweeps[b.name]
            adapter = {"method": found["method"], "trials": found["trial_log"], "folder": found["folder"]}
            entry = replace(entry, sweep=found, search={**entry.search, "adapter": adapter})
        entries[b.name] = entry
    manifest = run_manifest(plan, pre.run_dir, model_dir, backend_kind, pre.identity, entries)
    return replace(manifest, retention={k: v for k, v in ((b.name, b.retention) for b in pre.bundles) if v})


def _engines(
    raw: Backend,
    responses: ResponseCache | None,
    manifest: RunManifest,
    trained: dict[str, list[Arm]],
    run_dir: Path,
    plan: Plan,
    batch_size: int,
) -> Engines:
    half = max(1, batch_size // 2)
    if responses is None:
        return Engines(raw, Evaluator(run_dir, raw, plan.seed, batch_size), Evaluator(run_dir, raw, plan.seed, half), None)
    hashes: dict[str | None, str] = {None: "base"}
    hashes.update({v.adapter: f["adapter_hash"] for vs in trained.values() for v, f in vs})
    cached = CachedBackend(raw, responses, manifest.model_hash, hashes)
    machine = hardware.fingerprint()
    # the noise floor must reach the engine, except where this machine answered these very batches before
    noise = CachedBackend(raw, responses, manifest.model_hash, hashes, per_batch=machine)
    known = LatencyCache(cached, machine) if plan.latency_probe else None
    return Engines(raw, Evaluator(run_dir, cached, plan.seed, batch_size), Evaluator(run_dir, noise, plan.seed, half), known)


def _prompt_side(
    b: TaskBundle,
    tp: TaskPlan,
    plan: Plan,
    file: ManifestFile,
    engines: Engines,
    results_root: Path,
    model_dir: Path,
    max_len: int,
    points: list[dict[str, Any]] | None,
) -> Variant:
    """The task's prompt arms (with the searched one, and one few-shot draw per seed) on validation
    and test; returns the prompt validation selects, after probing its latency and, in other
    orders and formats, its noise floor and format spread."""
    variants, seed = list(tp.variants), plan.seed
    if b.space is not None and points is not None:
        identity = ps.search_identity(file.manifest.model_hash, engines.evaluate.backend, b.task)
        searched, facts, _ = ps.search(
            b.task, tp.prompt_search, b.space, points, b.validation, b.pool, engines.evaluate.backend, seed,
            results_root / "sweeps", identity,
        )  # fmt: skip
        file.update(b.name, search={**file.manifest.tasks[b.name].search, "prompt": facts})
        if not any(same_prompt(searched, v) for v in variants):
            variants.append(searched)
    variants = seeded_prompts(variants, tp.seeds)  # one few-shot draw per seed, as one adapter per seed
    file.update(b.name, variants=tuple(asdict(v) for v in variants))
    val_records = engines.evaluate(b.task, variants, b.validation, b.pool, "validation")
    test_records = engines.evaluate(b.task, variants, b.items, b.pool, "test", b.validation)
    if booted := bootstrap_costs([*val_records, *test_records]):
        file.update(b.name, bootstrap=booted)
    chosen = select_prompt(b.task, variants, val_records)
    file.update(b.name, selected_prompt=chosen.name)
    probe(b.task, [chosen], b.items, b.pool, engines.raw, file.path.parent, plan.latency_probe, seed, engines.known)
    anchor = noise_anchor(variants)
    if anchor is not None and plan.noise_items:  # same prompts, another order and batch composition
        shuffled = list(b.items)
        random.Random(f"noise:{seed}").shuffle(shuffled)
        sample = shuffled[: plan.noise_items]
        engines.noise(b.task, [replace(anchor, name=f"noise:{anchor.name}")], sample, b.pool, "noise", b.validation)
    if tp.formats:  # the selected prompt in other meaning-preserving formats, on the test items
        fits = context_fits(b.task, b.items, b.pool, model_dir, max_len, seed)
        spread = spread_variants(b.task, chosen, b.items, b.pool, tp.formats, seed, fits)
        described = [{**asdict(v), "describe": describe(v)} for v in spread]
        file.update(b.name, formats={"of": chosen.name, "asked": tp.formats, "variants": described})
        engines.evaluate(b.task, spread, b.items, b.pool, "formats", b.validation)
    return chosen


def bootstrap_costs(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each bootstrapped arm's teacher calls, once (its records on validation and test carry the same
    bootstrap: the second one's calls came from the response cache)."""
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        if "bootstrap" in r and r["variant"] not in out:
            out[r["variant"]] = dict(r["bootstrap"])
    return out


def _adapter_side(
    b: TaskBundle,
    arms_by_adapter: list[list[Arm]],
    retention: list[RetentionJob],
    file: ManifestFile,
    engines: Engines,
    plan: Plan,
) -> None:
    """Each adapter of the task with all its arms on validation and test, the selectable ones'
    latency, and its retention on other tasks while its engine is up."""
    for arms in arms_by_adapter:
        file.add_arms(b.name, arms)
        arm_val = engines.evaluate(b.task, [v for v, _ in arms], b.validation, b.pool, "validation")
        engines.evaluate(b.task, [v for v, _ in arms], b.items, b.pool, "test", b.validation)
        probe(b.task, selectable(b.task, arms, arm_val), b.items, b.pool, engines.raw, file.path.parent,
              plan.latency_probe, plan.seed, engines.known)  # fmt: skip
        for job in retention:  # while this adapter's engine is up
            if job[1][0].adapter == arms[0][0].adapter:
                engines.evaluate(*job)
