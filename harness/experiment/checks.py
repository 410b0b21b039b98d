"""The checks a comparison makes before it trains or evaluates anything: every variant renders, every
prompt fits the model's context (exact token counts), every template renders on the data, the
training data is fit to learn from. Each refusal is one line naming the variant, task and item."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.authoring import datacheck
from harness.core.errors import UserError
from harness.core.files import cache_root, file_sha256, read_json, write_json
from harness.core.identity import digest
from harness.core.types import Sample
from harness.engines.backends.base import fit_context
from harness.engines.chat import encode_chat
from harness.engines.tokenizer import counting_tokenizer
from harness.experiment.requests import build_requests
from harness.experiment.variant import Variant
from harness.taskkit import data
from harness.taskkit.prompts import render_turn, template_hash
from harness.taskkit.registry import Task
from harness.train.config import TrainConfig

DEFAULT_CONTEXT = 4096  # the vLLM backend's max_model_len


def check_variants(
    task: Task,
    variants: Sequence[Variant],
    pool: Sequence[Sample],
    items: Sequence[Sample],
    greedy_only: bool = False,
    scores_labels: bool = True,
) -> None:
    """Each prompt variant renders for one item (template, shots against the pool, selection,
    label order, constrained choice, decoding settings): a mistake surfaces before any model work."""
    for v in variants:
        for r in build_requests(task, v, items[:1], pool):
            if greedy_only and r.decoding.temperature > 0:
                raise UserError(
                    f"variant {v.name} of {task.name} samples (temperature {r.decoding.temperature}); "
                    "the hf backend decodes greedily: use --backend vllm or openai"
                )
            if not scores_labels and r.decoding.scoring == "loglik":
                raise UserError(
                    f"variant {v.name} of {task.name} chooses its label by log-likelihood, which an "
                    "OpenAI-compatible server does not report: use --backend vllm or hf, or another variant"
                )


def check_templates(task: Task, splits: Sequence[Sequence[Sample]], rows: int = 3) -> None:
    """Every template of the task renders on the first rows of each split: a field a template uses
    and the data lacks is named now, not after training (the prompt search and the adapter may use
    templates no variant names)."""
    for template in task.templates:
        for samples in splits:
            for s in samples[:rows]:
                render_turn(task, template, s)


def context_fits(
    task: Task, items: Sequence[Sample], pool: Sequence[Sample], model_dir: Path, max_len: int, seed: int
) -> Callable[[Variant], bool]:
    """A test of whether every prompt a variant sends on `items` fits the context, by the model's
    tokenizer: for formats, which must not push a prompt that fits as written over the limit."""
    tokenizer = counting_tokenizer(model_dir)

    def fits(variant: Variant) -> bool:
        return all(
            len(encode_chat(tokenizer, r.messages)) + r.decoding.max_tokens <= max_len
            for r in build_requests(task, variant, items, pool, seed)
        )

    return fits


def check_context(
    task: Task,
    variants: Sequence[Variant],
    item_sets: Sequence[Sequence[Sample]],
    pool: Sequence[Sample],
    model_dir: Path,
    max_len: int,
    seed: int,
) -> None:
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


def data_check(task: Task, model_dir: Path, train: dict[str, Any] | None = None, sample: int = 500) -> dict[str, Any]:
    """Data checks recorded in the manifest; token lengths of training examples on a seeded sample of
    training rows, only when the run trains (`train`: the plan's training settings, whose template and
    max_seq_len the lengths are measured against; a prompt-only run is not warned about truncation).
    Kept in the cache under everything it reads (both splits, the adapter template when it trains,
    the tokenizer's files) and nothing else: near-duplicate search over 10,000 rows takes ~9 s that a
    prompt author, editing another template between runs, need not pay again."""
    trains = train is not None
    template = (train or {}).get("template") or task.adapter_template
    max_seq_len = int((train or {}).get("max_seq_len") or TrainConfig.max_seq_len)
    train_rows = data.load_split(task, task.train_split)
    test_rows = data.load_split(task, task.test_split)
    tokenizer_files = sorted(p for p in model_dir.glob("*") if p.name.startswith(("tokenizer", "chat_template")))
    key = digest({
        "task": task.name, "version": task.version, "train": data.samples_hash(train_rows),
        "test": data.samples_hash(test_rows), "sample": sample,
        "adapter_template": template_hash(task, template) if trains else None, "max_seq_len": max_seq_len,
        "trains": trains, "tokenizer": [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in tokenizer_files],
        "model": str(model_dir), "code": file_sha256(Path(datacheck.__file__)), "facts": 2,
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
        rows = data.subset(train_rows, min(sample, len(train_rows)))
        counts = datacheck.example_token_counts(task, rows, template, tokenizer)
    lengths, prompts = [full for _, full in counts], [p for p, _ in counts]
    out = asdict(datacheck.check(task, train_rows, test_rows, lengths, max_seq_len, prompts))
    out["n_pool"] = len(data.shot_pool(task))  # what few-shot examples are drawn from
    cached.parent.mkdir(parents=True, exist_ok=True)
    write_json(cached, out)
    return out


def check_trainable(task: Task, check: dict[str, Any], train: dict[str, Any]) -> None:
    """Before any sweep or training: an adapter whose examples leave no room for the answer cannot
    learn, and the recipe would say so only after the sweeps, without saying why."""
    why = datacheck.untrainable(task, check, train.get("template") or task.adapter_template)
    if why is not None:
        raise UserError(why)
