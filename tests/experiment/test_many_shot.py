"""The many-shot arm: 'similar' examples, as many as the context holds for every item (the largest
such k, by the model's own token counts), named in plans and --variants, run end to end."""

from __future__ import annotations

import json

import pytest

from harness.core.errors import UserError
from harness.core.types import Message, Sample
from harness.experiment.many_shot import many_shot_k, resolve
from harness.experiment.plan import MANY_SHOT, default_variants, pick_variants
from harness.experiment.requests import build_requests
from harness.experiment.variant import Variant
from harness.taskkit.registry import get_task
from tests.experiment.test_sweep import synthetic_task  # noqa: F401 (a fixture)


def _count(messages) -> int:
    """A stand-in tokenizer: 4 characters a token, 3 tokens of framing per message."""
    return sum(len(m.content) // 4 + 3 for m in messages)


def _pool(n: int) -> list[Sample]:
    return [
        Sample(f"p{i}", {"text": f"$ACME shares {'up' if i % 2 else 'down'} {i} " * (1 + i % 3)}, "Bullish")
        for i in range(n)
    ]


def test_k_is_the_largest_that_fits_every_item():
    task = get_task("twitter_fin_sentiment")
    pool = _pool(60)
    items = [
        Sample("t1", {"text": "$ACME up on earnings"}, "Bullish"),
        Sample("t2", {"text": "market flat " * 30}, "Neutral"),
    ]
    v = Variant("many_shot", "few_shot", selection="similar", many_shot=True)
    max_len = 600
    k = many_shot_k(task, v, [items], pool, _count, max_len)
    assert 0 < k < 59

    def longest(shots: int) -> int:
        reqs = build_requests(task, Variant("m", "few_shot", shots=shots, selection="similar"), items, pool)
        return max(_count(r.messages) + r.decoding.max_tokens for r in reqs)

    assert longest(k) <= max_len < longest(k + 1)  # fits with k, not with one more
    [filled] = resolve(task, [v], [items], pool, _count, max_len)
    assert filled.shots == k and filled.selection == "similar" and filled.many_shot
    with pytest.raises(UserError, match="leaves no room for a single example"):
        many_shot_k(task, v, [items], pool, _count, 60)
    assert many_shot_k(task, v, [items], pool, lambda m: 0, 10**6, cap=7) == 7  # the cap bounds the work


def test_many_shot_is_a_default_arm_and_a_variant_name(fixture_data):
    task = get_task("twitter_fin_sentiment")
    assert MANY_SHOT in default_variants(task)
    from harness.experiment.plan import Plan, TaskPlan

    plan = pick_variants(Plan("p", (TaskPlan(task.name, (Variant("zero_shot", "zero_shot"),)),)), ("many_shot",))
    assert plan.tasks[0].variants == (MANY_SHOT,)


def test_a_plan_cannot_give_shots_and_many_shot(tmp_path, fixture_data):
    from harness.experiment.plan import load_plan

    plan = tmp_path / "p.toml"
    plan.write_text(
        '[[task]]\nname = "twitter_fin_sentiment"\nvariants = [{template = "few_shot", many_shot = true, shots = 4}]\n'
    )
    with pytest.raises(UserError, match="give shots or many_shot = true, not both"):
        load_plan(plan)
    plan.write_text('[[task]]\nname = "twitter_fin_sentiment"\nvariants = [{template = "few_shot", many_shot = true}]\n')
    [v] = load_plan(plan).tasks[0].variants
    assert (v.name, v.many_shot, v.selection, v.shots) == ("many_shot", True, "similar", 0)


def test_compare_fills_the_context_with_the_models_tokenizer(synthetic_task, tmp_path):  # noqa: F811
    from harness.experiment.compare import compare
    from harness.experiment.plan import load_plan

    plan_file = tmp_path / "plan.toml"
    plan_file.write_text(f"""name = "many"
model = "{synthetic_task}"
limit = 6
val_limit = 4
[[task]]
name = "twitter_fin_sentiment"
formats = 3
variants = [{{template = "few_shot", many_shot = true}}]
""")
    run_dir, _ = compare(
        load_plan(plan_file), tmp_path / "results", backend_kind="fake", backend_options={"max_model_len": 512}
    )
    manifest = json.loads((run_dir / "manifest.json").read_text())
    [many] = [v for v in manifest["tasks"]["twitter_fin_sentiment"]["variants"] if v["name"] == "many_shot"]
    k = many["shots"]
    assert k > 2
    records = [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines()]
    mine = [r for r in records if r["variant"] == "many_shot"]
    assert len(mine) == 6 and all(sum(m["role"] == "assistant" for m in r["messages"]) == k for r in mine)
    from transformers import AutoTokenizer

    from harness.engines.chat import encode_chat

    tok = AutoTokenizer.from_pretrained(synthetic_task)
    lengths = [len(encode_chat(tok, [Message(**m) for m in r["messages"]])) for r in mine]
    assert max(lengths) <= 512 - get_task("twitter_fin_sentiment").max_tokens
    # its format spread: a longer separator on each of k shots must not push a full context over
    spread = [json.loads(x) for x in (run_dir / "formats.jsonl").read_text().splitlines()]
    assert spread and {r["item"] for r in spread} == {r["item"] for r in mine}
    spread_lengths = [len(encode_chat(tok, [Message(**m) for m in r["messages"]])) for r in spread]
    assert max(spread_lengths) <= 512 - get_task("twitter_fin_sentiment").max_tokens
