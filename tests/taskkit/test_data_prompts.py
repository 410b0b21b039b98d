from __future__ import annotations

import json

import pytest

from harness.core.errors import UserError
from harness.core.types import Sample
from harness.taskkit import data, prompts
from harness.taskkit.registry import get_task


def _write(root, task, split, lines):
    (root / task).mkdir(parents=True, exist_ok=True)
    (root / task / f"{split}.jsonl").write_text("\n".join(lines) + "\n")


def test_malformed_jsonl_names_line(fixture_data):
    _write(
        fixture_data,
        "twitter_fin_sentiment",
        "validation",
        [json.dumps({"id": "a", "text": "x", "label": "Bullish"}), "{not json"],
    )
    with pytest.raises(UserError, match="line 2 is not valid JSON"):
        data.load_split(get_task("twitter_fin_sentiment"), "validation")


def test_missing_field_names_task_split_line(fixture_data):
    _write(fixture_data, "twitter_fin_sentiment", "validation", [json.dumps({"id": "a", "label": "Bullish"})])
    with pytest.raises(UserError, match="twitter_fin_sentiment/validation line 1: missing field 'text'"):
        data.load_split(get_task("twitter_fin_sentiment"), "validation")


def test_label_outside_label_set(fixture_data):
    _write(fixture_data, "twitter_fin_sentiment", "validation", [json.dumps({"id": "a", "text": "x", "label": "Meh"})])
    with pytest.raises(UserError, match="line 1: label 'Meh' is not in the label set"):
        data.load_split(get_task("twitter_fin_sentiment"), "validation")


def test_empty_split(fixture_data):
    _write(fixture_data, "twitter_fin_sentiment", "validation", [""])
    with pytest.raises(UserError, match="is empty"):
        data.load_split(get_task("twitter_fin_sentiment"), "validation")


def test_a_split_is_read_once_until_its_file_changes_and_only_for_the_same_task(fixture_data, monkeypatch):
    import dataclasses
    import os

    task = get_task("twitter_fin_sentiment")
    rows = [
        json.dumps({"id": i, "text": t, "label": lab}) for i, t, lab in [("a", "up", "Bullish"), ("b", "flat", "Neutral")]
    ]
    _write(fixture_data, task.name, "validation", rows)
    reads: list[str] = []
    real = data.parse_jsonl
    monkeypatch.setattr(data, "parse_jsonl", lambda raw, path: reads.append(path.name) or real(raw, path))
    first = data.load_split(task, "validation")
    assert data.load_split(task, "validation") is first and len(reads) == 1
    path = fixture_data / task.name / "validation.jsonl"
    path.write_text("\n".join(rows[:1]) + "\n")  # edited between two reads: the new rows, not the old
    assert [s.id for s in data.load_split(task, "validation")] == ["a"] and len(reads) == 2
    stamp, size = path.stat().st_mtime_ns, path.stat().st_size
    path.write_text(rows[0].replace('"a"', '"z"') + "\n")  # same size, same mtime: still the new rows
    os.utime(path, ns=(stamp, stamp))
    assert path.stat().st_size == size
    assert [s.id for s in data.load_split(task, "validation")] == ["z"] and len(reads) == 3
    other = dataclasses.replace(task, labels=("Bullish", "Neutral", "Bearish", "Other"))  # same name, another task
    assert data.load_split(other, "validation")[0].id == "z" and len(reads) == 4


def test_missing_data_without_hub_source(tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    with pytest.raises(UserError, match="set HARNESS_DATA_DIR"):
        data.load_split(get_task("contract_nli"), "test")


def test_a_set_data_dir_never_falls_back_to_the_hub(tmp_path, monkeypatch):
    import datasets

    def hub(*args, **kwargs):
        raise AssertionError("the hub was asked")

    monkeypatch.setattr(datasets, "load_dataset", hub)
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))  # banking77 names a hub dataset, but not here
    with pytest.raises(UserError, match="HARNESS_DATA_DIR is set, so the hub is not used"):
        data.load_split(get_task("banking77"), "test")
    (tmp_path / "file").write_text("x")
    for value, word in [(tmp_path / "file", "is a file"), (tmp_path / "nope", "is missing")]:
        monkeypatch.setenv("HARNESS_DATA_DIR", str(value))
        with pytest.raises(UserError, match=word):
            data.load_split(get_task("banking77"), "test")


@pytest.mark.parametrize(
    "content, message",
    [
        (
            b'{"id": "a", "text": "x", "label": "Bullish"}\n{"id": "a", "text": "y", "label": "Bearish"}\n',
            "line 2: id 'a' repeats line 1",
        ),
        (b'{"id": "a", "text": "caf\xe9", "label": "Bullish"}\n', "line 1 is not valid UTF-8 \\(byte 25\\)"),
        (b'\xef\xbb\xbf{"id": "a", "text": "x", "label": "Bullish"}\n', "byte-order mark"),
        (b'{"id": "a", "text": "x\x00", "label": "Bullish"}\n', "line 1 contains a NUL byte"),
        (b'{"id": "a", "text": "' + b"x" * (1 << 20) + b'", "label": "Bullish"}\n', "over the limit of 1,048,576"),
    ],
    ids=["duplicate-id", "bad-utf8", "bom", "nul", "oversized"],
)
def test_broken_data_files_are_user_errors(tmp_path, monkeypatch, content, message):
    (tmp_path / "twitter_fin_sentiment").mkdir()
    (tmp_path / "twitter_fin_sentiment" / "validation.jsonl").write_bytes(content)
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    with pytest.raises(UserError, match=message):
        data.load_split(get_task("twitter_fin_sentiment"), "validation")


def _samples(labels):
    return [Sample(f"s{i}", {"text": f"text number {i} about {lab}"}, lab) for i, lab in enumerate(labels)]


def test_subset_is_seeded_and_keeps_file_order():
    s = _samples(["a"] * 50)
    one, two = data.subset(s, 10, seed=3), data.subset(s, 10, seed=3)
    assert one == two and len(one) == 10
    assert [x.id for x in one] == sorted((x.id for x in one), key=lambda i: int(i[1:]))
    assert data.subset(s, 10, seed=4) != one


def test_stratified_keeps_label_shares_and_rejects_oversize():
    s = _samples(["a"] * 60 + ["b"] * 30 + ["c"] * 10)
    picked = data.stratified(s, 20, seed=0)
    counts = {lab: sum(1 for x in picked if x.target == lab) for lab in "abc"}
    assert counts == {"a": 12, "b": 6, "c": 2}
    assert data.stratified(s, 20, seed=0) == picked and data.stratified(s, 20, seed=1) != picked
    with pytest.raises(UserError, match="larger than the training split"):
        data.stratified(s, 101)


def test_stratified_with_fewer_slots_than_labels_covers_distinct_labels():
    s = _samples([f"l{i}" for i in range(10)] * 3)
    picked = data.stratified(s, 6, seed=0)
    assert len(picked) == 6 and len({x.target for x in picked}) == 6


def test_overlap_after_normalisation():
    task = get_task("twitter_fin_sentiment")
    train = [Sample("t1", {"text": "$ACME  Rallies!"}, "Bullish"), Sample("t2", {"text": "other"}, "Neutral")]
    test = [Sample("v1", {"text": "acme rallies"}, "Bullish")]
    assert data.overlap(task, train, test, ("train", "test")).duplicates == (("t1", "v1"),)


def test_selection_random_seeded_and_excludes_item():
    task = get_task("twitter_fin_sentiment")
    pool = _samples(["Bullish", "Bearish", "Neutral"] * 5)
    sel = prompts.ShotSelector(task, pool, 4, "random", seed=1)
    assert sel.select(pool[0]) == sel.select(pool[0])
    assert pool[0] not in sel.select(pool[0])


def test_selection_balanced_covers_labels():
    task = get_task("twitter_fin_sentiment")
    pool = _samples(["Neutral"] * 20 + ["Bullish"] * 3 + ["Bearish"] * 3)
    shots = prompts.ShotSelector(task, pool, 6, "balanced").select(Sample("q", {"text": "q"}, "Neutral"))
    assert sorted(s.target for s in shots) == ["Bearish", "Bearish", "Bullish", "Bullish", "Neutral", "Neutral"]
    assert len({s.id for s in shots}) == 6


def test_selection_fixed_is_one_balanced_set_for_every_item_never_the_item_itself():
    task = get_task("twitter_fin_sentiment")
    pool = _samples(["Neutral"] * 20 + ["Bullish"] * 3 + ["Bearish"] * 3)
    sel = prompts.ShotSelector(task, pool, 6, "fixed", seed=3)
    outside = [Sample(f"q{i}", {"text": f"q{i}"}, "Neutral") for i in range(5)]
    drawn = {tuple(s.id for s in sel.select(q)) for q in outside}
    assert len(drawn) == 1  # the same examples in the same order: a prefix every request shares
    common = sel.select(outside[0])
    assert sorted(s.target for s in common) == ["Bearish", "Bearish", "Bullish", "Bullish", "Neutral", "Neutral"]
    inside = common[2]  # an item of the pool that is in the set gets the set without itself
    own = [s.id for s in sel.select(inside)]
    assert inside.id not in own and len(own) == 6 and set(own) >= {s.id for s in common} - {inside.id}
    other = prompts.ShotSelector(task, pool, 6, "fixed", seed=4).select(outside[0])
    assert [s.id for s in other] != [s.id for s in common]  # a draw per seed
    first, second = (prompts.render(task, "few_shot", q, sel.select(q)) for q in outside[:2])
    assert first[:-1] == second[:-1] and first[-1] != second[-1]  # only the question differs


def test_selection_similar_puts_nearest_last():
    task = get_task("twitter_fin_sentiment")
    pool = [
        Sample("a", {"text": "oil prices fall sharply"}, "Bearish"),
        Sample("b", {"text": "tech stocks rally on earnings"}, "Bullish"),
        Sample("c", {"text": "company schedules meeting"}, "Neutral"),
    ]
    shots = prompts.ShotSelector(task, pool, 2, "similar").select(Sample("q", {"text": "tech earnings rally"}, "Bullish"))
    assert shots[-1].id == "b"


def test_too_many_shots_and_bad_selection():
    task = get_task("twitter_fin_sentiment")
    with pytest.raises(UserError, match="larger than the training pool"):
        prompts.ShotSelector(task, _samples(["Bullish"]), 5)
    with pytest.raises(UserError, match="unknown selection"):
        prompts.ShotSelector(task, _samples(["Bullish"] * 5), 1, "nearest")


def test_template_metadata_sets_style_and_budget():
    task = get_task("gsm8k")
    s = Sample("g", {"question": "1+1?"}, "2", rationale="1 + 1 = 2")
    assert prompts.render_turn(task, "cot", s).style == "cot"
    assert prompts.max_tokens_for(task, "cot", s) == task.cot_max_tokens
    assert prompts.max_tokens_for(task, "zero_shot", s) == task.max_tokens
    assert prompts.render(task, "cot", s)[0].role == "system"


def test_validation_carve_never_overlaps_test_and_is_seed_free():
    task = get_task("twitter_fin_sentiment")
    pool = [Sample(f"p{i}", {"text": f"pool text {i}"}, "Neutral") for i in range(100)]
    test = [Sample("t1", {"text": "Pool Text 3!"}, "Neutral")]  # duplicates p3 after normalisation
    rest, val = data.carve_validation(task, pool, test)
    # the duplicate of a test item is in neither: not chosen on, not trained on, never shown as a shot
    assert len(val) == 10 and len(rest) == 89 and data.leaked(task, pool, test) == 1
    assert not {s.id for s in val} & {s.id for s in rest}
    assert "p3" not in {s.id for s in val} | {s.id for s in rest}
    assert data.carve_validation(task, pool, test) == (rest, val)
    assert data.carve_validation(task, pool[5:10], test) == (tuple(pool[5:10]), ())  # too few to carve
    assert data.carve_validation(task, pool[:5], test) == (tuple(pool[:3] + pool[4:5]), ())


@pytest.mark.parametrize(("selection", "casing"), [("fixed", "given"), ("similar", "given"), ("fixed", "upper")])
def test_requests_render_each_shot_once_and_say_what_rendering_it_every_time_says(monkeypatch, selection, casing):
    from harness.experiment.requests import build_requests
    from harness.experiment.variant import Variant

    task = get_task("twitter_fin_sentiment")
    pool = tuple(Sample(f"p{i}", {"text": f"shares of firm {i} move {'up' * (i % 3)}"}, lab)
                 for i, lab in enumerate(["Neutral", "Bullish", "Bearish"] * 4))  # fmt: skip
    items = tuple(Sample(f"q{i}", {"text": f"question {i}"}, "Neutral") for i in range(5))
    layout = prompts.Layout(casing=casing)
    variant = Variant("f", "few_shot", shots=3, selection=selection, label_order="shuffled", layout=layout.encode())
    fmt = prompts.PromptFormat("", "shuffled", 0, layout)
    expected = [prompts.render(task, "few_shot", s, prompts.ShotSelector(task, pool, 3, selection).select(s), fmt)
                for s in items]  # fmt: skip
    calls: list[str] = []
    real = prompts.render_turn
    monkeypatch.setattr(prompts, "render_turn", lambda t, tm, s, f=prompts.PLAIN: calls.append(s.id) or real(t, tm, s, f))
    got = [r.messages for r in build_requests(task, variant, items, pool)]
    assert got == expected
    shots_rendered = [c for c in calls if c.startswith("p")]
    assert len(shots_rendered) == len(set(shots_rendered))  # each shot once, whatever the selection
    if selection == "fixed":
        assert len(shots_rendered) == 3  # not 3 for each of the 5 requests


def test_similar_selection_keeps_the_order_of_score_then_pool_position_and_fits_a_pool_once():
    task = get_task("twitter_fin_sentiment")
    texts = ["oil falls", "oil falls", "tech rally", "bank fees rise", "oil falls sharply", "zzz", "yyy", "oil"]
    pool = [Sample(f"p{i}", {"text": t}, "Neutral") for i, t in enumerate(texts)]
    sel = prompts.ShotSelector(task, pool, 4, "similar")
    assert prompts.ShotSelector(task, list(pool), 2, "similar")._matrix is sel._matrix  # one fit per pool
    for question in [Sample("q", {"text": "oil falls"}, "Neutral"), pool[1], Sample("r", {"text": "nothing alike"}, "x")]:
        scores = (sel._matrix @ sel._vectorizer.transform([question.fields["text"]]).T).toarray().ravel()
        order = sorted(range(len(pool)), key=lambda i: (-scores[i], i))  # the rule, written out
        expected = [pool[i] for i in order if pool[i].id != question.id][:4]
        assert sel.select(question) == tuple(reversed(expected))
    # ties at equal score go by pool order: p0 before p1 for "oil falls"; p1 never picks itself
    assert [s.id for s in sel.select(Sample("q", {"text": "oil falls"}, "Neutral"))][-2:] == ["p1", "p0"]
    assert "p1" not in [s.id for s in sel.select(pool[1])]
    assert [s.id for s in sel.select(Sample("r", {"text": "nothing alike"}, "x"))] == ["p3", "p2", "p1", "p0"]
