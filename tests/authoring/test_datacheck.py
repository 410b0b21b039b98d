from __future__ import annotations

from harness.authoring.datacheck import check, near_duplicate_pairs
from harness.core.types import Sample
from harness.taskkit.registry import get_task


def test_data_check_finds_duplicates_conflicts_overlap_and_long_rows():
    task = get_task("twitter_fin_sentiment")
    train = [
        Sample("a", {"text": "Stocks rally on jobs data"}, "Bullish"),
        Sample("b", {"text": "stocks rally on jobs data!"}, "Bearish"),  # duplicate input, other label
        Sample("c", {"text": "Oil prices slump as global supply rises sharply across markets in March"}, "Bearish"),
        Sample("d", {"text": "Oil prices slump as global supply rises sharply across markets in May"}, "Bearish"),
        Sample("e", {"text": "Company schedules its annual meeting"}, "Neutral"),
    ]
    test = [Sample("t", {"text": "Company schedules its annual meeting."}, "Neutral")]
    r = check(task, train, test, lengths=[10, 20, 30, 600, 40], max_seq_len=512)
    assert r.label_counts == {"Bearish": 3, "Bullish": 1, "Neutral": 1}
    assert r.exact_duplicates == 1
    assert r.conflicts == (("stocks rally on jobs data", ("Bearish", "Bullish")),)
    assert r.train_test_overlap == 1
    assert r.near_duplicates == 1
    assert r.over_max_len == 1 and r.token_lengths["max"] == 600 and r.token_lengths["median"] == 30
    assert any("leakage" in w for w in r.warnings) and any("conflicting" in w for w in r.warnings)


def test_near_duplicates_pair_distinct_inputs_never_an_input_with_itself():
    """Word order does not change character n-grams within words: these two share one vector, and
    each is the other's nearest neighbour (one pair), never its own."""
    texts = ["card payment fee charged why", "why card payment fee charged", "exchange rate wrong abroad"]
    assert near_duplicate_pairs(texts) == 1
    triple = ["fee card top up", "top up card fee", "card fee up top", "where is my new card"]
    assert near_duplicate_pairs(triple) == 2  # 0-1, and 2's nearest of the tied 0 and 1: a pair each
    # chunk edges: the same answer whether rows are compared 1 or 1024 at a time
    many = [f"transfer {i} pending since {i % 7} days" for i in range(40)] + texts
    assert near_duplicate_pairs(many, chunk=1) == near_duplicate_pairs(many, chunk=3) == near_duplicate_pairs(many)


def test_near_duplicates_ignore_distinct_texts():
    assert near_duplicate_pairs(["alpha beta", "gamma delta", "epsilon zeta"]) == 0
    assert near_duplicate_pairs(["one"]) == 0


def test_compare_keeps_the_data_check_until_what_it_read_changes(fixture_data, cache_dir, tmp_path, monkeypatch):
    import json

    import harness.authoring.datacheck
    from harness.experiment.checks import data_check
    from tests.tiny_model import make_model_dir

    model = make_model_dir(tmp_path / "tiny")
    first = data_check(get_task("twitter_fin_sentiment"), model, {})
    calls = []
    real = harness.authoring.datacheck.check
    monkeypatch.setattr(harness.authoring.datacheck, "check", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert data_check(get_task("twitter_fin_sentiment"), model, {}) == json.loads(json.dumps(first)) and not calls
    train = fixture_data / "twitter_fin_sentiment" / "train.jsonl"
    rows = train.read_text().splitlines()
    train.write_text("\n".join([*rows, rows[0].replace('"id": "', '"id": "copy-')]) + "\n")
    again = data_check(get_task("twitter_fin_sentiment"), model, {})
    assert (
        calls == [1]
        and again["n_train"] == first["n_train"] + 1
        and again["exact_duplicates"] == 1 + first["exact_duplicates"]
    )
    assert data_check(get_task("twitter_fin_sentiment"), model, None) and calls == [1, 1]  # no lengths: its own entry


def test_the_data_check_is_kept_while_an_author_edits_a_prompt_template(fixture_data, cache_dir, tmp_path, monkeypatch):
    """Only the adapter template goes into training examples: editing another one (as a prompt author
    does between runs) must not redo the near-duplicate search; editing the adapter's must, when it trains."""
    import dataclasses
    import shutil

    import harness.authoring.datacheck
    from harness.experiment.checks import data_check
    from harness.taskkit.registry import get_task
    from tests.tiny_model import make_model_dir

    model = make_model_dir(tmp_path / "tiny")
    task = get_task("twitter_fin_sentiment")
    assert task.prompts_dir is not None and task.adapter_template != "few_shot"
    prompts = tmp_path / "prompts"
    shutil.copytree(task.prompts_dir, prompts)
    task = dataclasses.replace(task, prompts_dir=prompts)
    calls = []
    real = harness.authoring.datacheck.check
    monkeypatch.setattr(harness.authoring.datacheck, "check", lambda *a, **k: calls.append(1) or real(*a, **k))
    data_check(task, model, None)
    data_check(task, model, {})
    assert calls == [1, 1]
    (prompts / "few_shot.j2").write_text((prompts / "few_shot.j2").read_text() + "{# a new wording #}\n")
    data_check(task, model, None)
    data_check(task, model, {})
    assert calls == [1, 1]  # both kept
    adapter = prompts / f"{task.adapter_template}.j2"
    adapter.write_text(adapter.read_text() + "{# a new wording #}\n")
    data_check(task, model, None)
    assert calls == [1, 1]  # a prompt-only run reads no template
    data_check(task, model, {})
    assert calls == [1, 1, 1]  # the training examples' lengths are measured again


def test_a_prompt_longer_than_max_seq_len_is_refused_before_any_training(fixture_data, cache_dir, tmp_path):
    """A 151-label prompt of hundreds of tokens left every example without its answer: the recipe
    stopped after the sweeps with 'no training example with a completion'. Now the data check says
    so before any training, with the lengths, against the plan's own max_seq_len."""
    from harness.authoring.datacheck import untrainable
    from harness.experiment.checks import data_check
    from harness.taskkit.registry import get_task
    from tests.tiny_model import make_model_dir

    model = make_model_dir(tmp_path / "tiny")
    task = get_task("banking77")  # its zero_shot prompt lists 77 intents
    short = data_check(task, model, {"template": "zero_shot", "max_seq_len": 64})
    why = untrainable(task, short, "zero_shot")
    assert why is not None and "no training example fits max_seq_len 64" in why
    assert "set [task.train] max_seq_len = " in why and "adapter_template" in why
    assert short["no_room"] == short["n_measured"] > 0 and short["max_seq_len"] == 64
    roomy = data_check(task, model, {"template": "zero_shot", "max_seq_len": 4096})
    assert untrainable(task, roomy, "zero_shot") is None and roomy["max_seq_len"] == 4096  # the plan's, not 512
