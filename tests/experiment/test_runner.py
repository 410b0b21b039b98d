"""Runner, response cache, results store and analysis on the fake backend."""

from __future__ import annotations

import json
import math
import multiprocessing as mp

import pytest

from harness.analysis.cost import Prices
from harness.core.errors import UserError
from harness.core.types import Decoding, Message, Request, Sample
from harness.engines.backends.fake import FakeBackend
from harness.engines.response_cache import CachedBackend, ResponseCache, request_key
from harness.experiment.runner import evaluate
from harness.experiment.variant import Variant
from harness.report.cards import card
from harness.runlog.folder import SAMPLES, locked, read_samples, repair_tail
from harness.taskkit import data
from harness.taskkit.registry import get_task
from tests.helpers import summarise_task


def _oracle(task, items):
    gold = {s.fields["text"]: s.target for s in items}

    def script(req):
        text = req.messages[-1].content.split(": ", 1)[-1].split("\n")[0]
        return gold.get(text, "Neutral")

    return script


def test_evaluate_all_variants_same_items_and_resume(fixture_data, tmp_path):
    task = get_task("twitter_fin_sentiment")
    items = data.load_split(task, "validation")
    pool = data.load_split(task, "train")
    variants = [Variant("zero_shot", "zero_shot"), Variant("few_shot_2", "few_shot", shots=2, selection="balanced")]
    backend = FakeBackend()
    run = tmp_path / "run"
    records = evaluate(task, variants, items, pool, backend, run, batch_size=1)
    assert len(records) == 4 and backend.calls == [1, 1, 1, 1]
    batches = [json.loads(x) for x in (run / "batches.jsonl").read_text().splitlines()]
    assert len(batches) == 4 and all(b["requests"] == 1 and b["prompt_tokens"] > 0 for b in batches)
    assert {(r["item"], r["variant"]) for r in records} == {(s.id, v.name) for s in items for v in variants}
    progress: list[tuple[int, int]] = []
    again = evaluate(task, variants, items, pool, backend, run, on_batch=lambda *a: progress.append(a))
    assert backend.calls == [1, 1, 1, 1]  # nothing recomputed
    assert len(read_samples(run / SAMPLES)) == 4 and len(again) == 4
    assert progress == [(4, 4)]  # a finished run's bar shows it finished (it showed 0/? before)


def test_progress_counts_kept_records_then_each_batch(fixture_data, tmp_path):
    task = get_task("twitter_fin_sentiment")
    items = data.load_split(task, "validation")
    more = [Sample(f"{s.id}-{k}", s.fields, s.target) for k in range(3) for s in items]  # 6 items
    zero = Variant("zero_shot", "zero_shot")
    evaluate(task, [zero], more[:2], (), FakeBackend(), tmp_path / "run")  # an earlier, interrupted run
    progress: list[tuple[int, int]] = []
    evaluate(task, [zero], more, (), FakeBackend(), tmp_path / "run", batch_size=3, on_batch=lambda *a: progress.append(a))
    assert progress == [(2, 6), (5, 6), (6, 6)]


def test_a_batch_holds_one_variant_so_its_time_is_that_variants(fixture_data, tmp_path):
    task = get_task("twitter_fin_sentiment")
    items = data.load_split(task, "validation")
    pool = data.load_split(task, "train")
    more = [Sample(f"{s.id}-{k}", s.fields, s.target) for k in range(3) for s in items]  # 6 items
    variants = [Variant("zero_shot", "zero_shot"), Variant("few_shot_2", "few_shot", shots=2, selection="balanced")]
    backend = FakeBackend()
    evaluate(task, variants, more, pool, backend, tmp_path / "run", batch_size=4)
    batches = [json.loads(x) for x in (tmp_path / "run" / "batches.jsonl").read_text().splitlines()]
    assert [(b["variants"], b["requests"]) for b in batches] == [
        (["zero_shot"], 4), (["zero_shot"], 2), (["few_shot_2"], 4), (["few_shot_2"], 2)
    ]  # fmt: skip


def test_cached_answers_time_is_not_the_arms_cost():
    def rec(i: int, variant: str, latency: float, cached: bool) -> dict:
        return {"task": "t", "item": f"i{i}", "variant": variant, "prediction": "x", "gold": "x",
                "scores": {"correct": 1.0}, "prompt_tokens": 10, "completion_tokens": 1, "latency_s": latency,
                "cached": cached}  # fmt: skip

    records = [rec(i, "zero_shot", 9.0 if i < 6 else 0.02, cached=i < 6) for i in range(10)]
    s = summarise_task("t", {"metrics": ["accuracy"], "labels": ["x"]}, records, {}, Prices())
    assert s.rows[0].latency_s == pytest.approx(0.02)  # the four fresh answers' time, not the cache's
    every = [rec(i, "zero_shot", 0.5, cached=True) for i in range(4)]
    assert summarise_task("t", {"metrics": ["accuracy"]}, every, {}, Prices()).rows[0].latency_s == 0.5


def test_torn_tail_is_repaired_and_resumed(fixture_data, tmp_path):
    task = get_task("twitter_fin_sentiment")
    items = data.load_split(task, "validation")
    run = tmp_path / "run"
    evaluate(task, [Variant("zero_shot", "zero_shot")], items, (), FakeBackend(), run)
    path = run / SAMPLES
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + lines[1][: len(lines[1]) // 2])  # crash mid-write of the second record
    assert len(read_samples(path)) == 1
    backend = FakeBackend()
    records = evaluate(task, [Variant("zero_shot", "zero_shot")], items, (), backend, run)
    assert backend.calls == [1] and len(records) == 2
    assert [json.loads(x)["item"] for x in path.read_text().splitlines()] == [s.id for s in items]
    assert repair_tail(path) == 0


def test_corrupt_middle_line_is_a_user_error(tmp_path):
    path = tmp_path / SAMPLES
    record = (
        '{"task": "t", "item": "a", "variant": "v", "scores": {"correct": 1}, "prediction": "x", "gold": "x", '
        '"prompt_tokens": 3, "completion_tokens": 1, "latency_s": 0.1}'
    )
    path.write_text(f"{record}\n{{broken\n{record}\n")
    with pytest.raises(UserError, match="line 2 is corrupt"):
        read_samples(path)
    path.write_text(f'{record}\n{record[:-1]}, "latency_s": "slow"}}\n')
    with pytest.raises(UserError, match=r"line 2: latency_s: input should be a valid number, got 'slow'"):
        read_samples(path)
    path.write_text(record.replace('"item": "a", ', "") + "\n")
    with pytest.raises(UserError, match="line 1: item is required"):
        read_samples(path)


def test_cache_makes_rerun_free_and_keys_on_everything(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    inner = FakeBackend(lambda r: "Bullish")
    backend = CachedBackend(inner, cache, "m1", {None: "base", "/ad": "h1"})
    reqs = [Request((Message("user", f"q{i}"),), Decoding(max_tokens=4)) for i in range(5)]
    first = backend.generate(reqs)
    second = backend.generate(reqs)
    assert inner.calls == [5] and [c.text for c in second] == [c.text for c in first]
    assert all(c.cached for c in second) and not any(c.cached for c in first)
    base = reqs[0]
    variants = [
        Request(base.messages, Decoding(max_tokens=5)),
        Request(base.messages, base.decoding, "/ad"),
        Request((Message("system", "s"), *base.messages), base.decoding),
        Request(base.messages, Decoding(max_tokens=4, choices=("a", "b"))),
    ]
    keys = {
        request_key("fake", "m1", None, base),
        request_key("fake", "m2", None, base),
        request_key("vllm", "m1", None, base),
    } | {request_key("fake", "m1", "h1" if v.adapter else None, v) for v in variants}
    assert len(keys) == 7


def test_noise_answers_are_reused_only_for_the_same_batch_on_the_same_machine(tmp_path):
    """The noise floor asks what batch composition alone changes: an answer may be reused only
    when this machine computed it in this very batch, never from an ordinary cached answer."""
    cache = ResponseCache(tmp_path / "c.sqlite")
    inner = FakeBackend(lambda r: "Bullish")
    reqs = [Request((Message("user", f"q{i}"),), Decoding(max_tokens=4)) for i in range(4)]
    CachedBackend(inner, cache, "m", {None: "base"}).generate(reqs)  # the ordinary answers, cached
    noise = CachedBackend(inner, cache, "m", {None: "base"}, per_batch="cpu-A")
    noise.generate(reqs)
    assert inner.calls == [4, 4]  # the ordinary cached answers were not handed to the noise floor
    assert all(c.cached for c in noise.generate(reqs)) and inner.calls == [4, 4]  # same batch, same machine
    noise.generate(reqs[::-1])
    noise.generate(reqs[:2])
    CachedBackend(inner, cache, "m", {None: "base"}, per_batch="cpu-B").generate(reqs)
    assert inner.calls == [4, 4, 4, 2, 4]  # another order, another batch, another machine: computed


def _hit_cache(path, n):
    cache = ResponseCache(path)
    backend = CachedBackend(FakeBackend(lambda r: r.messages[-1].content.upper()), cache, "m", {None: "base"})
    backend.generate([Request((Message("user", f"q{i}"),)) for i in range(n)])
    cache.close()


def test_cache_shared_by_two_processes(tmp_path):
    path = tmp_path / "shared.sqlite"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_hit_cache, args=(path, 200)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    hits = ResponseCache(path).get_many(
        [request_key("fake", "m", "base", Request((Message("user", f"q{i}"),))) for i in range(200)]
    )
    assert len(hits) == 200 and hits[next(iter(hits))].text.startswith("Q")


def test_lock_refuses_second_writer(tmp_path):
    with (
        locked(tmp_path / "run"),
        pytest.raises(UserError, match="in use by another harness process"),
        locked(tmp_path / "run"),
    ):
        pass


def _record(item, variant, correct, pt=100):
    return {
        "task": "t",
        "item": item,
        "variant": variant,
        "prediction": "a" if correct else "b",
        "gold": "a",
        "scores": {"correct": float(correct)},
        "prompt_tokens": pt,
        "completion_tokens": 2,
        "latency_s": 0.001 + pt / 10_000,
    }


def test_analysis_verdict_fine_tuning_pays_off():
    n = 100
    records = [_record(f"i{i}", "zero_shot", i < 20, pt=400) for i in range(n)]
    records += [_record(f"i{i}", "few_shot", i < 30, pt=900) for i in range(n)]
    records += [_record(f"i{i}", "lora_n256", i < 80, pt=50) for i in range(n)]
    info = {"metrics": ["accuracy"], "labels": ["a", "b"], "kind": "classification"}
    adapters = {"lora_n256": {"train_size": 256, "train_device_s": 3600.0}}
    s = summarise_task("t", info, records, adapters, Prices(device_usd_per_hour=2.0))
    assert s.best_prompt == "few_shot" and s.best_adapter == "lora_n256"
    assert s.verdict.startswith("Fine-tuning pays off: lora_n256 beats few_shot by +50.0 points")
    assert "lora_n256 sends 94% fewer prompt tokens a request than few_shot." in s.verdict
    row = next(r for r in s.rows if r.variant == "lora_n256")
    assert row.train_cost == pytest.approx(2.0)
    # few_shot costs 0.091 device-s a request (latency 0.001 + 900/10,000), the adapter 0.006: $2 of
    # training is recovered after 2 / ((0.091 - 0.006) x $2/3600) = 42,352.9 -> 42,353 requests
    assert row.break_even is not None and row.break_even.requests == 42_353
    assert "its extra one-off cost is recovered after 42,353 requests" in s.verdict
    assert s.learning_curve[0][0] == 256 and s.smallest_winning_size == 256
    from harness.report.markdown import to_markdown
    from harness.report.sections import sections

    md = to_markdown(sections([s], [{}]))
    assert "Smallest size at which most of its seeds' adapters significantly beat the best prompt (the curve" in md
    assert "the adapter chosen on validation): 256." in md
    assert len(s.disagreements) == 50


def test_analysis_no_detectable_difference():
    records = [_record(f"i{i}", "zero_shot", i % 2 == 0) for i in range(40)]
    records += [_record(f"i{i}", "lora_n64", i % 2 == 0 if i < 38 else i % 2 == 1) for i in range(40)]
    info = {"metrics": ["accuracy"], "labels": ["a", "b"], "kind": "classification"}
    s = summarise_task("t", info, records, {"lora_n64": {"train_size": 64, "train_device_s": 10.0}}, Prices())
    # as dear per request and dearer up front: with no difference detected, cost keeps the prompt
    assert s.verdict.startswith("Keep the prompt: no detectable quality difference (+0.0 points")
    assert s.verdict.split(". ")[0].endswith("and the prompt costs less at every volume")
    assert s.smallest_winning_size is None


def test_majority_baseline_and_the_headline_test_alone_in_verdict():
    records = [_record(f"i{i}", "zero_shot", i % 2 == 0) for i in range(40)]
    records += [_record(f"i{i}", "lora_n64", i % 2 == 0 if i < 38 else i % 2 == 1) for i in range(40)]
    info = {
        "metrics": ["accuracy"],
        "labels": ["a", "b"],
        "kind": "classification",
        "data_check": {"label_counts": {"b": 30, "a": 10}},
    }
    val = [_record(f"v{i}", v, i % 2 == 0) for v in ("zero_shot", "lora_n64") for i in range(10)]
    adapters = {"lora_n64": {"train_size": 64, "train_device_s": 10.0}}
    s = summarise_task("t", info, records, adapters, Prices(), val_records=val)
    assert s.majority == ("b", 0.0)  # every gold here is "a": always answering "b" scores nothing
    # the headline arm was chosen on validation: one confirmatory test, its p not Holm-adjusted
    assert "exact McNemar p = 1, one confirmatory test of the arms chosen on validation" in s.verdict
    assert "Holm" not in s.verdict


# 60 items, 40 with gold 'a', the commonest training label: always answering 'a' scores 40
PRIOR_INFO = {
    "metrics": ["accuracy"],
    "labels": ["a", "b"],
    "kind": "classification",
    "data_check": {"label_counts": {"a": 70, "b": 30}},
}


def _prior(i: int, variant: str, pred: str) -> dict:
    gold = "a" if i < 40 else "b"
    return {**_record(f"i{i}", variant, pred == gold), "prediction": pred, "gold": gold}


def test_the_verdict_says_when_a_winner_does_not_clear_the_majority_baseline():
    """60 items, 40 with gold 'a' (the commonest training label). The adapter learned the prior
    (always 'a': 40 right) and "pays off" against a prompt right on 20 only; the verdict must say
    that it does not beat always answering 'a', in its headline too (the decision card shows only that).
    An adapter right on 58 clears it: the headline is "pays off" and no word is said about the adapter."""

    prompt = [_prior(i, "zero_shot", "a" if i < 20 else "b" if i < 40 else "a") for i in range(60)]
    adapters = {"lora_n64": {"train_size": 64, "train_device_s": 10.0}}
    prior = prompt + [_prior(i, "lora_n64", "a") for i in range(60)]
    s = summarise_task("t", PRIOR_INFO, prior, adapters, Prices())
    assert s.verdict.startswith("Fine-tuning beats the prompt but not the majority-class baseline: lora_n64 beats")
    assert card(s).headline == "Fine-tuning beats the prompt but not the majority-class baseline"
    assert (
        "Neither chosen arm clears the majority-class baseline detectably: always answering 'a' scores 66.7% on "
        "these items; against it, zero_shot -33.3 points (95% CI" in s.verdict
    )
    # the same answers on every item: an interval around 0 that 60 items cannot narrow further (not [0, 0])
    assert "lora_n64 +0.0 points (95% CI -6.0 to 6.0, exact McNemar p = 1)." in s.verdict
    good = prompt + [_prior(i, "lora_n64", "a" if i < 40 else ("b" if i < 58 else "a")) for i in range(60)]
    s = summarise_task("t", PRIOR_INFO, good, adapters, Prices())
    assert card(s).headline == "Fine-tuning wins on quality but costs more"  # as dear a request, and trained
    assert "zero_shot does not clear the majority-class baseline" in s.verdict
    assert "lora_n64 +" not in s.verdict.split("majority-class baseline")[1]


def test_a_kept_prompt_that_does_not_clear_the_majority_baseline_says_so_in_its_headline():
    """The prompt (always 'a', 40 of 60 right) beats an adapter right on 20 only; "Keep the prompt"
    alone would read as an endorsement of a prompt that scores what the constant answer scores."""

    records = [_prior(i, "zero_shot", "a") for i in range(60)]
    records += [_prior(i, "lora_n64", "a" if i < 20 else "b" if i < 40 else "a") for i in range(60)]
    s = summarise_task("t", PRIOR_INFO, records, {"lora_n64": {"train_size": 64, "train_device_s": 10.0}}, Prices())
    assert card(s).headline == "Keep the prompt, though it does not clear the majority-class baseline"
    assert "Neither chosen arm clears the majority-class baseline detectably" in s.verdict


def test_no_difference_between_two_arms_that_both_score_the_constant_answer_says_so_first():
    """Both arms answer 'a' on 40 of 60 (what always answering 'a' scores): "No detectable
    difference" alone reads as "either will do"; the headline says neither learned the task."""

    records = [_prior(i, "zero_shot", "a") for i in range(60)] + [_prior(i, "lora_n64", "a") for i in range(60)]
    s = summarise_task("t", PRIOR_INFO, records, {"lora_n64": {"train_size": 64, "train_device_s": 10.0}}, Prices())
    assert card(s).headline == "Neither chosen arm clears the majority-class baseline"
    assert s.verdict.startswith(
        "Neither chosen arm clears the majority-class baseline: no detectable difference between lora_n64 and zero_shot"
    )


def test_retention_sentences():
    from harness.analysis.verdict import summarise_retention

    info = {"metrics": ["accuracy"], "labels": ["a", "b"]}
    base = [{**_record(f"i{i}", "retention[src]:base", i < 30), "task": "other"} for i in range(40)]
    worse = [{**_record(f"i{i}", "retention[src]:lora_n64", i < 10), "task": "other"} for i in range(40)]
    same = [{**_record(f"i{i}", "retention[src]:lora_n8", i < 30), "task": "other"} for i in range(40)]
    rows = {r.adapter: r for r in summarise_retention("src", "other", info, base + worse + same)}
    assert rows["lora_n64"].sentence.startswith("The src adapter lora_n64 loses 50.0 points (95% CI -")
    assert rows["lora_n8"].sentence.startswith("The src adapter lora_n8 shows no detectable change (+0.0 points, 95% CI")
    assert rows["lora_n64"].base.value == 0.75 and rows["lora_n64"].tuned.value == 0.25
    floor = [{**_record(f"i{i}", f"retention[src]:{v}", False), "task": "other"} for i in range(10) for v in ("base", "a")]
    [row] = summarise_retention("src", "other", info, floor)
    assert "is uninformative" in row.sentence


def test_cache_keeps_answers_served_in_other_dtypes_apart(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    reqs = [Request((Message("user", f"q{i}"),), Decoding(max_tokens=4)) for i in range(3)]
    cpu, gpu = FakeBackend(lambda r: "fp32"), FakeBackend(lambda r: "bf16")
    cpu.cache_tag, gpu.cache_tag = "vllm/float32/merged", "vllm/bfloat16/lora"  # type: ignore[attr-defined]
    assert [c.text for c in CachedBackend(cpu, cache, "m", {None: "base"}).generate(reqs)] == ["fp32"] * 3
    assert [c.text for c in CachedBackend(gpu, cache, "m", {None: "base"}).generate(reqs)] == ["bf16"] * 3
    again = CachedBackend(FakeBackend(lambda r: "never"), cache, "m", {None: "base"})
    again.cache_tag = "vllm/float32/merged"
    assert [c.text for c in again.generate(reqs)] == ["fp32"] * 3 and again.misses == 0


def test_every_prompt_is_checked_against_the_context_before_training(fixture_data, tmp_path):
    from harness.experiment.checks import check_context
    from tests.tiny_model import make_model_dir

    task = get_task("twitter_fin_sentiment")
    items, pool = data.load_split(task, "validation"), data.load_split(task, "train")
    model = make_model_dir(tmp_path / "tiny")
    zero, few = Variant("zero_shot", "zero_shot"), Variant("few", "few_shot", shots=4, selection="balanced")
    check_context(task, [zero, few], (items,), pool, model, 4096, 0)  # fits
    with pytest.raises(UserError, match=r"variant few of twitter_fin_sentiment, item t-va-1: request 0 needs \d+ prompt"):
        check_context(task, [zero, few], (items,), pool, model, 100, 0)  # zero-shot needs 69 of them


def test_disagreements_show_what_the_model_said_when_it_gave_no_answer():
    from harness.analysis.evidence import shown_answer

    records = [_record(f"i{i}", "few_shot", True) for i in range(3)]
    records += [_record(f"i{i}", "lora_n8", False) for i in range(3)]
    records[0] = {**records[0], "prediction": None, "output": "convert_to_euro\n"}
    records[1] = {**records[1], "prediction": None, "output": ""}
    info = {"metrics": ["accuracy"], "labels": ["a", "b"], "kind": "classification"}
    s = summarise_task("t", info, records, {"lora_n8": {"train_size": 8}}, Prices())
    shown = {d["item"]: d["few_shot"] for d in s.disagreements}
    assert shown == {"i0": '(not an answer: "convert_to_euro")', "i1": "(no output)", "i2": "a"}
    assert shown_answer({"prediction": None, "output": "x" * 50}) == f'(not an answer: "{"x" * 40}…")'


def test_merged_runs_that_share_a_run_id_keep_apart_and_one_run_twice_is_refused(tmp_path):
    from harness.analysis.runs import load_runs, run_labels
    from tests.helpers import make_run

    assert run_labels(["r1", "r2"], [tmp_path / "a" / "r1", tmp_path / "a" / "r2"]) == ["r1", "r2"]
    a, b = make_run(tmp_path / "a", "r1"), make_run(tmp_path / "b", "r1")  # the same --run-id in two folders
    rows = (b / "samples.jsonl").read_text().replace('"prediction": "Bullish"', '"prediction": "Bearish"')
    (b / "samples.jsonl").write_text(rows.replace('"correct": 1.0', '"correct": 0.0'))
    manifests, records, _ = load_runs([a, b])
    assert [m["run_id"] for m in manifests] == ["a/r1", "b/r1"]
    scores = {(r["variant"], r["item"]): r["scores"]["correct"] for r in records["twitter_fin_sentiment"]}
    assert scores == {("a/r1:zero_shot", "i1"): 1.0, ("a/r1:zero_shot", "i2"): 1.0,
                      ("b/r1:zero_shot", "i1"): 0.0, ("b/r1:zero_shot", "i2"): 0.0}  # fmt: skip
    with pytest.raises(UserError, match=r"run .*a/r1 is given twice"):
        load_runs([a, tmp_path / "b" / ".." / "a" / "r1"])


def _prefer_first(request):
    """A model that likes the first label best everywhere, and the gold label a little more than usual."""
    user = request.messages[-1].content
    labels = request.decoding.choices
    gold = next((label for label in labels if f"[{label}]" in user), None)
    return [math.log(0.6 if j == 0 else 0.2) + (0.9 if label == gold else 0.0) for j, label in enumerate(labels)]


def _marked(items):
    """Items whose text names their gold label, as the scripted model above reads it."""
    return [Sample(s.id, {**s.fields, "text": f"{s.fields['text']} [{s.target}]"}, s.target) for s in items]


def test_a_loglik_arm_records_every_label_score_and_batch_calibration_reads_validation_only(fixture_data, tmp_path):
    task = get_task("twitter_fin_sentiment")
    test = _marked(data.load_split(task, task.test_split))
    val = _marked(data.load_split(task, "train"))  # standing in for the validation carve-out
    seen: list[str] = []

    def scores(request):
        seen.append(request.messages[-1].content)
        return _prefer_first(request)

    backend = FakeBackend(logprobs=scores)
    plain = Variant("ll", "zero_shot", scoring="loglik")
    batch = Variant("ll_batch", "zero_shot", scoring="loglik", calibration="batch")
    records = evaluate(task, [plain, batch], test, (), backend, tmp_path / "run", calibration_items=val)
    by = {(r["item"], r["variant"]): r for r in records}
    first = task.labels[0]
    for s in test:
        assert by[(s.id, "ll")]["prediction"] == first or s.target == first  # the prior wins uncalibrated
        assert len(by[(s.id, "ll")]["choice_logprobs"]) == len(task.labels)
        assert by[(s.id, "ll_batch")]["prediction"] == s.target  # the prior divided out
        assert by[(s.id, "ll_batch")]["calibration"] == "batch"
    val_texts = {s.fields["text"] for s in val}
    assert any(t in u for u in seen for t in val_texts)  # the prior came from the validation items
    with pytest.raises(UserError, match="batch calibration is estimated on validation items"):
        evaluate(task, [batch], test, (), FakeBackend(logprobs=scores), tmp_path / "other")


def test_contextual_calibration_asks_the_model_about_content_free_inputs(fixture_data, tmp_path):
    task = get_task("twitter_fin_sentiment")
    prompts: list[str] = []

    def scores(request):
        prompts.append(request.messages[-1].content)
        return _prefer_first(request)

    ctx = Variant("ll_ctx", "zero_shot", scoring="loglik", calibration="contextual")
    items = _marked(data.load_split(task, task.test_split))
    records = evaluate(task, [ctx], items, (), FakeBackend(logprobs=scores), tmp_path / "run")
    assert sum("N/A" in p for p in prompts) == 1 and sum("[MASK]" in p for p in prompts) == 1
    assert all(r["prediction"] == r["gold"] for r in records)


@pytest.mark.parametrize(
    ("task_name", "variant", "message"),
    [
        ("gsm8k", Variant("v", "zero_shot", scoring="loglik"), "loglik scoring chooses among a label set"),
        ("gsm8k", Variant("v", "zero_shot", scoring="loglik", calibration="batch"), "has none"),
        ("twitter_fin_sentiment", Variant("v", "zero_shot", calibration="contextual"), 'add scoring = "loglik"'),
        ("twitter_fin_sentiment", Variant("v", "zero_shot", constrained=True, scoring="loglik"), "not both"),
        ("twitter_fin_sentiment", Variant("v", "zero_shot", scoring="logprob"), "unknown scoring"),
    ],
)
def test_a_choice_without_labels_or_with_two_rules_is_refused(fixture_data, tmp_path, task_name, variant, message):
    task = get_task(task_name)
    with pytest.raises(UserError, match=message):
        evaluate(task, [variant], data.load_split(task, task.test_split), (), FakeBackend(), tmp_path / "run")


def test_generate_requests_keep_the_cache_keys_they_had_before_loglik_existed():
    request = Request((Message("user", "hi"),), Decoding(max_tokens=4))
    old = {
        "backend": "vllm", "model": "m", "adapter": None, "messages": [{"role": "user", "content": "hi"}],
        "decoding": {"max_tokens": 4, "temperature": 0.0, "stop": [], "seed": 0, "choices": None},
    }  # fmt: skip
    import hashlib

    assert request_key("vllm", "m", None, request) == hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()
    scored = Request(request.messages, Decoding(choices=("a", "b"), scoring="loglik"))
    assert request_key("vllm", "m", None, scored) != request_key(
        "vllm", "m", None, Request(request.messages, Decoding(choices=("a", "b")))
    )


def test_scored_answers_come_back_from_the_cache_with_their_label_scores(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    inner = FakeBackend(logprobs=lambda r: [-1.0, -0.5])
    backend = CachedBackend(inner, cache, "m", {})
    request = Request((Message("user", "hi"),), Decoding(choices=("a", "b"), scoring="loglik"))
    first = backend.generate([request])[0]
    again = backend.generate([request])[0]
    assert inner.calls == [1] and again.cached
    assert again.choice_logprobs == first.choice_logprobs == (-1.0, -0.5) and again.text == "b"


def test_the_prompt_search_varies_scoring_and_calibration_where_labels_are_few():
    from harness.experiment.prompt_search import canonical, default_space, parse_space, variant_of

    twitter, banking = get_task("twitter_fin_sentiment"), get_task("banking77")
    space = default_space(twitter, 100)
    assert space["scoring"] == ["generate", "loglik"] and space["calibration"] == ["none", "contextual", "batch"]
    assert "scoring" not in default_space(banking, 100)  # 77 labels: a sequence each (bench/choice_scoring.py)
    # calibration means nothing to a decoded answer, constrained nothing to a scored one: one candidate each
    assert canonical({"scoring": "generate", "calibration": "batch"}) == canonical({})
    scored = variant_of({"scoring": "loglik", "calibration": "batch", "constrained": True})
    assert (scored.scoring, scored.calibration, scored.constrained) == ("loglik", "batch", False)
    assert canonical({"scoring": "loglik", "calibration": "batch"}) != canonical({"scoring": "loglik"})
    with pytest.raises(UserError, match="unknown scoring 'logprob'"):
        parse_space(twitter, {"scoring": ["logprob"]}, 100)
    with pytest.raises(UserError, match="chooses among a label set, and gsm8k has none"):
        parse_space(get_task("gsm8k"), {"scoring": ["loglik"]}, 100)


def test_default_plans_score_small_label_sets_both_ways_and_large_ones_constrained():
    from harness.experiment.plan import default_variants

    names = {v.name: v for v in default_variants(get_task("twitter_fin_sentiment"))}
    assert {"constrained", "loglik", "loglik_contextual", "loglik_batch"} <= set(names)
    assert names["loglik_batch"].calibration == "batch" and names["loglik_batch"].scoring == "loglik"
    banking = {v.name for v in default_variants(get_task("banking77"))}
    assert "constrained" in banking and not any(n.startswith("loglik") for n in banking)
    assert not any(v.scoring != "generate" for v in default_variants(get_task("gsm8k")))


def test_bootstrapped_shots_are_only_examples_the_base_model_answers_right(fixture_data, tmp_path):
    task = get_task("twitter_fin_sentiment")
    pool = data.load_split(task, "train")
    right = {s.fields["text"] for s in pool[::2]}  # the teacher gets every other pool row right
    gold = {s.fields["text"]: s.target for s in pool}
    wrong = {label: next(x for x in task.labels if x != label) for label in task.labels}

    def teacher(request):
        user = request.messages[-1].content
        text = next((t for t in gold if t in user), None)
        if text is None:  # a test item's request: answer anything
            return task.labels[0]
        return gold[text] if text in right else wrong[gold[text]]

    items = data.load_split(task, task.test_split)
    boot = Variant("boot_2", "few_shot", shots=2, selection="bootstrap")
    backend = FakeBackend(script=teacher, seconds_per_request=0.001)
    records = evaluate(task, [boot], items, pool, backend, tmp_path / "run")
    for r in records:
        shown = [m["content"] for m in r["messages"] if m["role"] == "user"][:-1]  # the shots' user turns
        assert shown and all(any(t in turn for t in right) for turn in shown)
        assert not any(any(t in turn for t in set(gold) - right) for turn in shown)
        assert r["bootstrap"]["calls"] == len(pool) and r["bootstrap"]["kept"] == len(right)
        assert r["bootstrap"]["device_s"] > 0
    with pytest.raises(UserError, match="bootstrapped shots are drawn from the training pool"):
        evaluate(task, [boot], items, (), FakeBackend(), tmp_path / "empty")


def test_bootstrapping_is_part_of_the_prompt_sides_one_off_cost():
    from harness.analysis.cost import Prices
    from harness.analysis.fullcost import prompt_one_off

    info = {"variants": [{"name": "boot", "shots": 4}], "data_check": {"n_pool": 100}}
    plain = prompt_one_off(info, "boot", Prices(device_usd_per_hour=3600.0), 0)
    booted = prompt_one_off(
        {**info, "bootstrap": {"boot": {"calls": 16, "kept": 9, "device_s": 2.5}}},
        "boot",
        Prices(device_usd_per_hour=3600.0),
        0,
    )
    assert booted.device_s == plain.device_s + 2.5 and booted.device_usd == pytest.approx(plain.device_usd + 2.5)
    assert "bootstrapping its shots (16 model calls)" in booted.parts
