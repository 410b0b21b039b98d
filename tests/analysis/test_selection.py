"""Fair verdicts: every choice on validation, the prompt search, the effort curve, the combined arm."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from harness.analysis import effort, selection
from harness.core.errors import UserError
from harness.core.types import Request, Sample
from harness.engines.backends.fake import FakeBackend
from harness.experiment import prompt_search as ps
from harness.experiment.runner import evaluate
from harness.experiment.variant import Variant
from harness.runlog.folder import MANIFEST
from harness.taskkit import data
from harness.taskkit.registry import get_task, registry
from tests.experiment.test_kill import _rows

TWITTER = "twitter_fin_sentiment"


def _twitter_rows(tmp_path, monkeypatch, n_train: int, n_test: int):
    """A twitter-shaped task on synthetic rows (its test split is the file validation.jsonl)."""
    root = tmp_path / "data" / TWITTER
    root.mkdir(parents=True)
    (root / "train.jsonl").write_text(_rows("tr", n_train))
    (root / "validation.jsonl").write_text(_rows("te", n_test))
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "data"))
    return get_task(TWITTER)


@pytest.fixture
def rows_task(tmp_path, monkeypatch):
    """200 training rows (carve-out: 20) and 12 test rows."""
    return _twitter_rows(tmp_path, monkeypatch, 200, 12)


# --- the validation carve-out -------------------------------------------------------------


def _labelled(n_per_label: dict[str, int]) -> list[Sample]:
    out = []
    for label, n in sorted(n_per_label.items()):  # sorted by label, as banking77's file is
        out += [Sample(f"{label}-{i}", {"text": f"{label} text number {i}"}, label) for i in range(n)]
    return out


def test_validation_prefix_covers_labels_in_proportion():
    task = get_task("banking77")
    labels = task.labels[:40]
    pool = _labelled(dict.fromkeys(labels, 25))  # 1,000 rows sorted by label
    _, val = data.carve_validation(task, pool)
    assert len(val) == 100
    assert {s.target for s in val[:40]} == set(labels)  # the first 40 hold every label once
    # In file order, the first 100 rows would hold 4 labels.
    assert len({s.target for s in pool[:100]}) == 4
    assert data.label_coverage(task, val[:40]) == (40, 77)
    counts = {lab: sum(s.target == lab for s in val) for lab in labels}
    assert set(counts.values()) <= {2, 3}
    assert data.carve_validation(task, pool) == data.carve_validation(task, pool)  # fixed, seed-free


def test_stratified_order_keeps_shares_and_is_seeded():
    pool = _labelled({"a": 60, "b": 30, "c": 10})
    order = data.stratified_order(pool, seed=3)
    assert sorted(s.id for s in order) == sorted(s.id for s in pool)
    first = order[:10]
    assert [sum(s.target == x for s in first) for x in "abc"] == [6, 3, 1]
    assert order == data.stratified_order(pool, seed=3) and order != data.stratified_order(pool, seed=4)


def test_empty_validation_is_a_user_error(tmp_path, monkeypatch):
    task = _twitter_rows(tmp_path, monkeypatch, 6, 4)
    with pytest.raises(UserError, match="no validation rows to select on"):
        data.validation_items(task, 100)


# --- selection: only validation decides -----------------------------------------------------


def _script(golds: dict[str, str], val_texts: set[str], good_on_val: str, good_on_test: str):
    """Answers right for one wording on validation items and for another on test items."""
    wrong = {"Bullish": "Bearish", "Bearish": "Neutral", "Neutral": "Bullish"}

    def answer(request: Request) -> str:
        item = request.messages[-1].content
        text = next(t for t in golds if t in item)
        favoured = good_on_val if text in val_texts else good_on_test
        return golds[text] if favoured in request.messages[0].content else wrong[golds[text]]

    return answer


def _manifest(run: Path, task) -> None:
    info = {"metrics": list(task.metrics), "labels": list(task.labels), "kind": task.kind, "adapters": {}}
    run.mkdir(parents=True, exist_ok=True)
    run.joinpath(MANIFEST).write_text(
        json.dumps({"run_id": run.name, "backend": "fake", "seed": 0, "prices": {}, "tasks": {TWITTER: info}})
    )


@pytest.mark.parametrize("test_favours", ["financial analyst", "as in the examples"])
def test_test_answers_never_flip_the_selection(rows_task, tmp_path, test_favours):
    """zero_shot (system prompt 'You are a financial analyst ...') is right on validation; whatever
    the test answers say, it stays the selected prompt, and its test rank is reported honestly."""
    from harness.analysis.runs import summarise

    task = rows_task
    val = data.validation_items(task, 20)
    test = data.test_items(task)
    pool = data.shot_pool(task)
    variants = [Variant("zero_shot", "zero_shot"), Variant("few_shot", "few_shot")]
    golds = {str(x.fields["text"]): x.target for x in (*val, *test)}
    backend = FakeBackend(_script(golds, {str(x.fields["text"]) for x in val}, "financial analyst", test_favours))
    run = tmp_path / f"run-{len(test_favours)}"
    _manifest(run, task)
    evaluate(task, variants, val, pool, backend, run, split="validation")
    evaluate(task, variants, test, pool, backend, run)
    [s] = summarise([run])[0]
    assert s.selection is not None and s.selection.on == "validation" and s.selection.n_val_items == 20
    assert s.best_prompt == "zero_shot"
    zero = s.selection.arm("zero_shot")
    assert zero.val == 1.0
    if test_favours == "financial analyst":
        assert zero.test == 1.0 and zero.test_rank == 1
    else:  # the test set prefers the other wording: the winner's test rank shows the optimism
        assert zero.test == 0.0 and zero.test_rank == 2
    assert "Chosen on 20 validation items, never on test" in s.selection_note


def test_selection_falls_back_to_test_only_for_old_runs_and_says_so():
    sel = selection.select({"a": "prompt", "b": "prompt"}, {"a": 0.2, "b": 0.4}, {}, 0)
    assert sel.on == "test" and sel.prompt == "b"
    assert "no validation records" in selection.describe(sel)


def test_selection_ties_go_to_the_cheaper_arm_then_the_name():
    sides = {"long": "prompt", "short": "prompt", "z": "prompt"}
    val = {"long": (0.5, 900.0), "short": (0.5, 100.0), "z": (0.4, 10.0)}
    assert selection.select(sides, dict.fromkeys(sides, 0.0), val, 10).prompt == "short"
    # two adapters tie on validation with the same prompt: the one trained on fewer rows, not the
    # one whose name sorts first ("lora_n1000" < "lora_n256")
    sides = {"p": "prompt", "lora_n1000": "adapter", "lora_n256": "adapter"}
    val = {"p": (0.4, 100.0), "lora_n1000": (0.6, 50.0), "lora_n256": (0.6, 50.0)}
    rows = {"lora_n1000": 1000, "lora_n256": 256}
    assert selection.select(sides, dict.fromkeys(sides, 0.0), val, 10, rows=rows).adapter == "lora_n256"
    assert selection.best_per_side(sides, val, rows)["adapter"] == "lora_n256"


def test_combined_arm_is_built_on_the_selected_adapter():
    from harness.experiment.arms import adapter_arms

    task = get_task(TWITTER)
    prompt = Variant("searched", "few_shot", shots=4, selection="balanced", cue="Answer:", label_order="reversed")
    facts = {"train_size": 64, "seed": 0, "train_device_s": 10.0}
    arms = adapter_arms(task, Variant("lora_n64", "short", adapter="/a", train_size=64), facts, prompt)
    by = {v.name: (v, f) for v, f in arms}
    scored = {"lora_n64+loglik", "lora_n64+loglik_contextual", "lora_n64+loglik_batch"}  # a small label set's
    assert set(by) == {"lora_n64", "lora_n64+constrained", "lora_n64+searched"} | scored
    ll, ll_facts = by["lora_n64+loglik_batch"]
    assert (ll.scoring, ll.calibration, ll.adapter, ll_facts["decoding"]) == ("loglik", "batch", "/a", "loglik_batch")
    no_scores = adapter_arms(task, Variant("lora_n64", "short", adapter="/a"), facts, None, scores_labels=False)
    assert {v.name for v, _ in no_scores} == {"lora_n64", "lora_n64+constrained"}  # an OpenAI-compatible server
    twin, twin_facts = by["lora_n64+constrained"]
    assert twin.constrained and twin.adapter == "/a" and twin.template == "short" and twin_facts["built_on"] == "lora_n64"
    combo, combo_facts = by["lora_n64+searched"]
    assert (combo.template, combo.shots, combo.selection, combo.cue, combo.label_order) == (
        "few_shot", 4, "balanced", "Answer:", "reversed"
    )  # fmt: skip
    assert combo.adapter == "/a" and combo_facts["side"] == "combined" and combo_facts["built_on"] == "lora_n64"
    # Selection: the adapter side picks its best arm on validation; the combined arm follows it.
    sides = {"zero_shot": "prompt", "lora_n64": "adapter", "lora_n64+constrained": "adapter",
             "lora_n64+searched": "combined", "lora_n8": "adapter", "lora_n8+searched": "combined"}  # fmt: skip
    built = {"lora_n64+constrained": "lora_n64", "lora_n64+searched": "lora_n64", "lora_n8+searched": "lora_n8"}
    val = {"zero_shot": (0.3, 50.0), "lora_n64": (0.5, 20.0), "lora_n64+constrained": (0.6, 20.0),
           "lora_n64+searched": (0.4, 200.0), "lora_n8": (0.2, 20.0), "lora_n8+searched": (0.9, 200.0)}  # fmt: skip
    sel = selection.select(sides, {v: 0.5 for v in sides}, val, 30, built)
    assert (sel.prompt, sel.adapter, sel.combined) == ("zero_shot", "lora_n64+constrained", "lora_n64+searched")


def test_constrained_adapter_arm_in_a_verdict():
    from harness.analysis.cost import Prices
    from tests.helpers import summarise_task

    def rec(item, variant, ok, split_gold="a"):
        return {"task": "t", "item": item, "variant": variant, "prediction": split_gold if ok else "b",
                "gold": split_gold, "scores": {"correct": float(ok)}, "prompt_tokens": 50, "completion_tokens": 1,
                "latency_s": 0.01}  # fmt: skip

    test = [rec(f"t{i}", "zero_shot", i < 10) for i in range(40)]
    test += [rec(f"t{i}", "lora", i < 20) for i in range(40)] + [rec(f"t{i}", "lora+constrained", i < 36) for i in range(40)]
    val = [rec(f"v{i}", "zero_shot", i < 5) for i in range(20)]
    val += [rec(f"v{i}", "lora", i < 15) for i in range(20)] + [rec(f"v{i}", "lora+constrained", i < 8) for i in range(20)]
    twin = {"train_size": 8, "train_device_s": 1.0, "constrained": True, "built_on": "lora"}
    adapters = {"lora": {"train_size": 8, "train_device_s": 1.0}, "lora+constrained": twin}
    info = {"metrics": ["accuracy"], "labels": ["a", "b"], "kind": "classification"}
    s = summarise_task("t", info, test, adapters, Prices(), val_records=val)
    # On test the constrained twin is far better (90% vs 50%), but validation chose the free arm.
    assert s.best_adapter == "lora" and s.selection is not None
    assert s.selection.arm("lora").test_rank == 2
    assert s.verdict.startswith("Fine-tuning wins on quality but costs more: lora beats zero_shot by +25.0 points")
    assert [c[0] for c in s.learning_curve] == [8] and s.learning_curve[0][1] == pytest.approx(0.5)


# --- the effort curve -----------------------------------------------------------------------


def test_expected_max_against_a_hand_computation():
    values = [0.1, 0.5, 0.3]
    # n=2: subsets {.1,.5} -> .5, {.1,.3} -> .3, {.5,.3} -> .5; mean 1.3 / 3
    assert effort.expected_max(values, 2) == pytest.approx(1.3 / 3)
    assert effort.expected_max(values, 1) == pytest.approx(0.3)
    assert effort.expected_max(values, 3) == pytest.approx(0.5)
    # ties: [.2, .2, .6], n=2 -> (.2 + .6 + .6) / 3
    assert effort.expected_max([0.2, 0.6, 0.2], 2) == pytest.approx(1.4 / 3)
    with pytest.raises(ValueError):
        effort.expected_max(values, 4)
    e = effort.effort("prompt", "prompt search", "random", [{"metric": m, "device_s": 10.0} for m in values])
    assert e is not None and e.trials == 3 and e.device_s == 30.0 and e.best == 0.5
    assert e.curve[1] == (2, pytest.approx(1.3 / 3), pytest.approx(20.0))
    a = effort.effort("adapter", "adapter sweep", "grid", [{"metric": 0.7, "device_s": 1900.0}])
    assert a is not None
    assert effort.budget_sentence([e, a], {}) == (
        "Tuning budget: prompt search 3 trials, 30 device-s; adapter sweep 1 trial, 1,900 device-s."
    )
    assert effort.budget_sentence([e], {"adapter": 2}) == (
        "Tuning budget: prompt search 3 trials, 30 device-s; adapter side untuned (2 arms compared on validation)."
    )
    # a run without validation records chose its arms on test, and the sentence must not say otherwise
    assert (
        effort.budget_sentence([], {"prompt": 1}, on="test")
        == "Tuning budget: prompt side untuned (1 arm compared on test)."
    )


# --- the prompt search ----------------------------------------------------------------------


def test_prompt_space_parsing_and_bad_values():
    task = get_task(TWITTER)
    space = ps.parse_space(task, {"template": "zero_shot,short", "shots": "0,4,4", "cue": "|Answer:"}, 100)
    assert space.params == (("template", ("zero_shot", "short")), ("shots", (0, 4)), ("cue", ("", "Answer:")))
    assert ps.parse_space(task, {"constrained": ["true", False]}, 10).params == (("constrained", (True, False)),)
    cases = [
        ({"templat": ["zero_shot"]}, "did you mean template"),
        ({"template": ["zero_shoot"]}, "did you mean zero_shot"),
        ({"shots": [0, 101]}, "outside 0..100"),
        ({"shots": ["many"]}, "whole numbers"),
        ({"selection": ["nearest"]}, "unknown selection"),
        ({"label_order": ["upside"]}, "unknown label order"),
        ({"constrained": ["maybe"]}, "true or false"),
        ({"shots": []}, "non-empty list"),
        ({}, "space is empty"),
    ]
    for raw, message in cases:
        with pytest.raises(UserError, match=message):
            ps.parse_space(task, raw, 100)
    with pytest.raises(UserError, match="needs a label set"):
        ps.parse_space(get_task("gsm8k"), {"constrained": [True]}, 10)


def test_candidates_dedupe_and_respect_the_context():
    task = get_task(TWITTER)
    pool = [Sample(f"p{i}", {"text": "word " * 50}, "Neutral") for i in range(10)]
    val = [Sample("v", {"text": "short tweet"}, "Bullish")]
    space = ps.parse_space(task, {"shots": [0, 8], "selection": ["random", "similar"]}, 10)
    words = lambda messages: sum(len(m.content.split()) for m in messages)  # noqa: E731
    points = ps.candidates(task, space, val, pool, words, max_len=10_000)
    assert len(points) == 3  # selection means nothing at k = 0: one candidate, not two
    with pytest.raises(UserError, match=r"with 8 shots needs up to .* over the model's context of 300"):
        ps.candidates(task, space, val, pool, words, max_len=300, strict=True)
    kept = ps.candidates(task, space, val, pool, words, max_len=300, strict=False)
    assert [p["shots"] for p in kept] == [0]
    # Label order is a candidate only for templates that show the label list.
    orders = ps.parse_space(task, {"template": ["zero_shot", "short"], "label_order": ["given", "reversed"]}, 10)
    points = ps.candidates(task, orders, val, pool)
    assert sorted((p["template"], p["label_order"]) for p in points) == [
        ("short", "given"), ("zero_shot", "given"), ("zero_shot", "reversed")
    ]  # fmt: skip


def test_prompt_search_picks_its_best_validation_trial_and_resumes(rows_task, tmp_path):
    task = rows_task
    val, pool = data.validation_items(task, 20), data.shot_pool(task)
    # Right only with the "Answer:" cue: the search must find that setting.
    backend = FakeBackend(
        lambda r: "Bullish" if r.messages[-1].content.endswith("Answer:") and "rises" in r.messages[-1].content else "x"
    )
    space = ps.parse_space(task, {"template": ["zero_shot", "short"], "cue": ["", "Answer:"]}, len(pool))
    logged = []
    _, s = ps.run(
        task, space, ps.PromptTrialRunner(task, val, pool, backend), method="grid", budget=4, out_root=tmp_path,
        on_trial=lambda t: logged.append(len((next(tmp_path.glob("prompt-*")) / "trials.jsonl").read_text().splitlines())),
    )  # fmt: skip
    assert logged == [1, 2, 3, 4] and len(s.trials) == 4
    assert s.best.params["cue"] == "Answer:" and s.best.metric == max(t.metric for t in s.trials) > 0
    assert all(t.metric == 0 for t in s.trials if t.params["cue"] == "")
    calls = len(backend.calls)
    _, again = ps.run(task, space, ps.PromptTrialRunner(task, val, pool, backend), method="grid", budget=4,
                      out_root=tmp_path)  # fmt: skip
    assert len(backend.calls) == calls and [t.metric for t in again.trials] == [t.metric for t in s.trials]
    assert ps.variant_of(s.best.params).cue == "Answer:"


def test_prompt_search_device_budget_and_tpe(rows_task, tmp_path):
    task = rows_task
    val, pool = data.validation_items(task, 20), data.shot_pool(task)
    slow = FakeBackend(seconds_per_request=0.0)
    runner = ps.PromptTrialRunner(task, val, pool, slow)

    def costly(number, params):
        return ps.Trial(**{**runner(number, params).__dict__, "device_s": 50.0})

    space = ps.parse_space(task, {"shots": [0, 1, 2, 3]}, len(pool))
    _, s = ps.run(task, space, costly, method="grid", budget=4, max_device_s=120, out_root=tmp_path / "a")
    assert len(s.trials) == 3  # 50 + 50 < 120 starts a third; 150 stops the fourth
    _, t = ps.run(task, space, runner, method="tpe", budget=3, seed=1, out_root=tmp_path / "b")
    assert len(t.trials) == 3 and len({json.dumps(x.params) for x in t.trials}) == 3
    for method, budget, cap, message in [("bayes", 2, None, "unknown search method"), ("grid", 0, None, "at least 1"),
                                         ("grid", 2, 0.0, "must be positive")]:  # fmt: skip
        with pytest.raises(UserError, match=message):
            ps.run(task, space, runner, method=method, budget=budget, max_device_s=cap, out_root=tmp_path / "c")
    assert not (tmp_path / "c").exists()  # refused before anything was written


def test_plan_prompt_search_sections(tmp_path, fixture_data):
    from harness.experiment.plan import load_plan

    def plan(body: str) -> Path:
        p = tmp_path / "p.toml"
        p.write_text(f'name = "x"\n[[task]]\nname = "{TWITTER}"\ntrain_sizes = [8]\n{body}')
        return p

    matched = load_plan(plan("[task.sweep]\nlr = [1e-3, 3e-3]\nmethod = 'grid'\ntrials = 2\n")).tasks[0]
    assert matched.prompt_search == {"space": {}, "method": "grid", "trials": 2}  # equal effort by default
    own = load_plan(plan("[task.prompt_search]\nshots = [0, 4]\ntrials = 3\nmax_device_s = 60\n")).tasks[0]
    assert own.prompt_search == {"space": {"shots": [0, 4]}, "method": "random", "trials": 3, "max_device_s": 60.0}
    assert load_plan(plan("")).tasks[0].prompt_search == {}
    for body, message in [
        ("[task.prompt_search]\nshot = [1]\n", "did you mean shots"),
        ("[task.prompt_search]\ntrials = 0\n", r"prompt_search.trials: input should be greater than 0"),
        ("[task.prompt_search]\nmax_device_s = -5\n", r"prompt_search.max_device_s: input should be greater than 0"),
        ("[task.prompt_search]\ntemplate = ['nope']\n", "no template 'nope'"),
        ("prompt_serach = {}\n", r"unknown setting 'prompt_serach' in task\[1\]; did you mean prompt_search"),
        (
            "variants = [{template = 'zero_shot', label_order = 'upside'}]\n",
            r"variants\[1\].label_order: input should be 'given', 'reversed', 'sorted' or 'shuffled', got 'upside'",
        ),
    ]:
        with pytest.raises(UserError, match=message):
            load_plan(plan(body))
    bad = tmp_path / "v.toml"
    bad.write_text(f'name = "x"\nval_limit = 0\n[[task]]\nname = "{TWITTER}"\n')
    with pytest.raises(UserError, match="val_limit: input should be greater than 0, got 0"):
        load_plan(bad)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--shots", "0,500"], "outside 0..180"),
        (["--template", "zero_shoot"], "did you mean zero_shot"),
        (["--trials", "0"], "--trials must be positive"),
        (["--max-device-s", "0"], "must be positive"),
        (["--side", "prompts"], "--side must be adapter or prompt"),
        (["--val-limit", "0"], "--val-limit must be positive"),
    ],
)
def test_prompt_sweep_cli_bad_input(rows_task, tmp_path, capsys, monkeypatch, args, message):
    from harness import cli

    monkeypatch.setattr(
        sys, "argv", ["harness", "sweep", TWITTER, "--side", "prompt", *args, "--results", str(tmp_path / "r")]
    )
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    registry.cache_clear()
    with pytest.raises(SystemExit) as exc:
        cli.main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists() and not (tmp_path / "cache" / "models").exists()  # nothing written, no model pulled


def test_counts_in_sentences_agree_with_their_number():
    from harness.core.words import counted, verb

    assert (counted(1, "trial"), counted(0, "trial"), counted(1234, "row")) == ("1 trial", "0 trials", "1,234 rows")
    assert (verb(1, "appear"), verb(12, "appear")) == ("appears", "appear")


def test_a_prompt_search_scored_by_another_backend_setting_is_not_reused(rows_task, tmp_path):
    """The search folder is named by the backend as the response cache keys it: trials scored in
    bfloat16 (or by another server) are searched again in float32, not handed out as this run's;
    the same setting again, cached or not, reuses them."""
    from harness.engines.response_cache import CachedBackend, ResponseCache
    from harness.experiment.prompt_search import search as prompt_search
    from harness.experiment.prompt_search import search_identity

    task = rows_task
    val, pool = data.validation_items(task, 20), data.shot_pool(task)
    space = ps.parse_space(task, {"cue": ["", "Answer:"]}, len(pool))
    cfg = {"method": "grid", "trials": 2}

    def search(backend) -> str:
        identity = search_identity("m", backend, task)
        _, facts, _ = prompt_search(task, cfg, space, ps.candidates(task, space, val, pool), val, pool, backend, 0,
                                    tmp_path, identity)  # fmt: skip
        return str(facts["folder"])

    fp32, bf16 = FakeBackend(), FakeBackend()
    fp32.cache_tag, bf16.cache_tag = "vllm/float32/merged", "vllm/bfloat16/merged"  # type: ignore[attr-defined]
    first = search(fp32)
    assert search(bf16) != first and len(bf16.calls) == 2  # both trials scored afresh
    cached = CachedBackend(fp32, ResponseCache(tmp_path / "c.sqlite"), "m", {None: "base"})
    calls = len(fp32.calls)
    assert search(cached) == first and len(fp32.calls) == calls  # the same setting: its trials are reused
