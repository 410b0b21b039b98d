"""`harness import-lm-eval` on hand-written task files in lm-evaluation-harness's YAML format: the
written task renders doc_to_text byte for byte, reads and compares answers as lm-eval's regex filter
and exact_match do, and every key it cannot convert is refused by name in one line."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from harness.authoring import lmeval_import as lmeval
from harness.core.errors import UserError
from harness.taskkit import lmeval_docs, prompts, scoring
from harness.taskkit.registry import get_task, registry
from tests.helpers import run_cli

GSM = r"""task: gsm_toy
dataset_path: json
dataset_kwargs:
  data_files:
    train: DATA/train.jsonl
    test: DATA/test.jsonl
output_type: generate_until
training_split: train
test_split: test
doc_to_text: "Question: {{question}}\nAnswer:"
doc_to_target: "{{steps}}\n#### {{answer}}"
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
    ignore_punctuation: false
    regexes_to_ignore: [",", "\\$", "(?s).*#### ", "\\.$"]
generation_kwargs:
  until: ["Question:", "</s>"]
  do_sample: false
  max_gen_toks: 64
num_fewshot: 3
filter_list:
  - name: strict-match
    filter:
      - function: regex
        regex_pattern: "#### (\\-?[0-9\\.\\,]+)"
      - function: take_first
  - name: flexible-extract
    filter:
      - function: regex
        group_select: -1
        regex_pattern: "(-?[$0-9.,]{2,})|(-?[0-9]+)"
      - function: take_first
metadata:
  version: 2.0
"""

SST = """task: sst_toy
dataset_path: glue
dataset_name: sst2
output_type: multiple_choice
training_split: train
validation_split: validation
description: "Judge the sentence."
doc_to_text: "{{sentence}}\\nQuestion: Is this sentence positive or negative?\\nAnswer:"
doc_to_target: label
doc_to_choice: ["negative", "positive"]
metric_list:
  - metric: acc
"""

DOCS = [
    {"id": "q1", "question": "Ann has 2 boxes of 3 pens. How many pens?  ", "steps": "2 * 3 = 6", "answer": "6"},
    {"id": "q2", "question": "What is 1,000 + 234?", "steps": "1000 + 234 = 1234", "answer": "1,234"},
    {"id": "q3", "question": "Half of 10?", "steps": "10 / 2 = 5", "answer": "5"},
]


@pytest.fixture
def imported(tmp_path, monkeypatch):
    """Writes a YAML, imports it into tmp/out, and makes the task findable."""
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HARNESS_TASKS_PATH", str(tmp_path / "out" / "tasks"))
    data = tmp_path / "data"
    data.mkdir()
    for split, docs in (("train", DOCS[:2]), ("test", DOCS[2:])):
        (data / f"{split}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))

    def run(text: str, name: str = "task.yaml") -> lmeval.Converted:
        path = tmp_path / name
        path.write_text(text.replace("DATA", str(data)))
        converted = lmeval.convert(path)
        lmeval.write(converted, tmp_path / "out")
        registry.cache_clear()
        return converted

    yield run
    registry.cache_clear()


def test_generate_until_task_renders_and_scores_as_lm_eval(imported):
    converted = imported(GSM)
    assert converted.kind == "short_answer" and converted.num_fewshot == 3
    assert any("flexible-extract" in n for n in converted.notes)  # the second pipeline is said to be left out
    task = get_task("gsm_toy")
    assert (task.metrics, task.test_split, task.train_split, task.input_field) == (
        ("exact_match",), "test", "train", "question",
    )  # fmt: skip
    sample = task.to_sample(DOCS[0])
    assert sample.target == "2 * 3 = 6\n#### 6"
    # byte for byte: the trailing spaces of the question stay, no stripping, no trailing newline
    turn = prompts.render_turn(task, "zero_shot", sample)
    assert turn.user == "Question: Ann has 2 boxes of 3 pens. How many pens?  \nAnswer:"
    assert (turn.stop, turn.max_tokens, turn.temperature) == (("Question:", "</s>"), 64, 0.0)
    # gold completions (the shots lm-eval shows) score 1 through the regex filter and exact_match options
    for doc in DOCS:
        s = task.to_sample(doc)
        assert scoring.score(task, scoring.extract(task, s.target, s), s) == {"correct": 1.0}
    s = task.to_sample(DOCS[1])
    assert scoring.extract(task, "So 1,234.\n#### 1,234", s) == "1,234"
    assert scoring.score(task, "1,234", s) == {"correct": 1.0}  # "," ignored on both sides
    assert scoring.extract(task, "The answer is 1234", s) is None  # strict-match: no "####", no answer
    assert scoring.score(task, scoring.extract(task, "#### 1243", s), s) == {"correct": 0.0}


def test_local_data_files_load_through_datasets(imported):
    from harness.taskkit import data

    imported(GSM)
    task = get_task("gsm_toy")
    assert [s.id for s in data.load_split(task, "train")] == ["q1", "q2"]
    assert [s.id for s in data.load_split(task, "test")] == ["q3"]


def test_a_pinned_revision_is_kept_and_a_hub_split_is_asked_for_once_a_run(imported, monkeypatch):
    import datasets

    from harness.taskkit import data

    asked: list[dict] = []

    def hub(path, name, **kwargs):
        asked.append({"path": path, "name": name, **kwargs})
        return [{"sentence": "a fine film", "label": 1}, {"sentence": "dull", "label": 0}]

    monkeypatch.setattr(datasets, "load_dataset", hub)
    imported(SST.replace("dataset_name: sst2\n", "dataset_name: sst2\ndataset_kwargs:\n  revision: 9f1e2d3\n"))
    task = get_task("sst_toy")
    assert task.hub is not None and task.hub.revision == "9f1e2d3"
    first = data.load_split(task, "train")
    assert data.load_split(task, "train") == first and [s.target for s in first] == ["positive", "negative"]
    assert len(asked) == 1  # the split is read many times a run; the hub is asked once
    assert asked[0]["revision"] == "9f1e2d3" and (asked[0]["path"], asked[0]["name"]) == ("glue", "sst2")


def test_fixed_choices_become_a_labelled_task(imported):
    converted = imported(SST)
    task = get_task("sst_toy")
    assert (converted.kind, task.labels, task.metrics) == (
        "classification",
        ("negative", "positive"),
        ("accuracy", "macro_f1"),
    )
    assert task.test_split == "validation" and task.hub is not None and task.hub.config == "sst2"
    assert any("log-likelihood" in n for n in converted.notes)
    sample = task.to_sample({"idx": 7, "sentence": "a gorgeous film ", "label": 1})
    assert (sample.id, sample.target) == ("7", "positive")
    turn = prompts.render_turn(task, "zero_shot", sample)
    assert turn.user == "a gorgeous film \nQuestion: Is this sentence positive or negative?\nAnswer:"
    assert turn.system == "Judge the sentence."


def test_written_tasks_pass_their_own_checks(imported):
    from harness.authoring.taskcheck import run_checks

    for text, name in ((GSM, "gsm_toy"), (SST, "sst_toy")):
        imported(text, f"{name}.yaml")
        checks = run_checks(get_task(name), with_data=False)
        assert all(c.ok for c in checks if c.ok is not None), [(c.name, c.detail) for c in checks]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda t: t.replace(
                'doc_to_text: "Question: {{question}}\\nAnswer:"', "doc_to_text: !function utils.doc_to_text"
            ),
            "doc_to_text: !function utils.doc_to_text is Python code",
        ),
        (lambda t: "include: _default.yaml\n" + t, "include: an include chain"),
        (lambda t: t + "process_docs: !function utils.process\n", "process_docs: !function utils.process is Python code"),
        (lambda t: t.replace("metric: exact_match", "metric: bleu"), "metric_list[0].metric: 'bleu'"),
        (lambda t: t.replace("do_sample: false", "top_p: 0.9"), "generation_kwargs.top_p"),
        (lambda t: t.replace("function: take_first", "function: majority_vote"), "filter 'majority_vote'"),
        (lambda t: t + "doc_to_choicez: [a]\n", "doc_to_choicez: not a key the importer knows"),
        (lambda t: t.replace("ignore_case: true", "ignore_numbers: true"), "metric_list[0].ignore_numbers"),
        (lambda t: t.replace("output_type: generate_until", "output_type: loglikelihood"), "'loglikelihood'"),
        (lambda t: "task: [unclosed\n", "is not valid YAML"),
    ],
)
def test_what_cannot_convert_is_refused_by_name(tmp_path, capsys, monkeypatch, edit, message):
    path = tmp_path / "task.yaml"
    path.write_text(edit(GSM))
    code, _, err = run_cli(["import-lm-eval", str(path), "--out", str(tmp_path / "out")], capsys, monkeypatch)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_a_constant_target_outside_the_choices_is_refused_at_import(tmp_path, capsys, monkeypatch):
    path = tmp_path / "sst.yaml"
    path.write_text(SST.replace("doc_to_target: label", "doc_to_target: 5"))
    code, _, err = run_cli(["import-lm-eval", str(path), "--out", str(tmp_path / "out")], capsys, monkeypatch)
    assert code == 2 and "doc_to_target 5 is not an index of the 2 choices in doc_to_choice" in err, err
    assert not (tmp_path / "out").exists()


ARC = """task: arc_toy
dataset_path: json
dataset_kwargs:
  data_files:
    train: DATA/arc_train.jsonl
    test: DATA/arc_test.jsonl
output_type: multiple_choice
training_split: train
test_split: test
doc_to_text: "Question: {{question}}\\nAnswer:"
doc_to_target: "{{choices.label.index(answerKey)}}"
doc_to_choice: "{{choices.text}}"
metric_list:
  - metric: acc
  - metric: acc_norm
"""

ARC_DOCS = [  # written by hand, in ARC's shape
    {"id": "a1", "question": "Which is a liquid at room temperature?", "answerKey": "B",
     "choices": {"text": ["iron", "water", "salt"], "label": ["A", "B", "C"]}},
    {"id": "a2", "question": "What do plants need to make food?", "answerKey": "1",
     "choices": {"text": ["moonlight", "sunlight"], "label": ["0", "1"]}},
]  # fmt: skip


def test_per_document_choices_import_as_a_multiple_choice_task_scored_by_log_likelihood(tmp_path, monkeypatch):
    from harness.engines.backends.fake import FakeBackend
    from harness.experiment.plan import default_variants
    from harness.experiment.runner import evaluate

    monkeypatch.setenv("HARNESS_TASKS_PATH", str(tmp_path / "out" / "tasks"))
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "test"):
        (data / f"arc_{split}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in ARC_DOCS))
    path = tmp_path / "arc.yaml"
    path.write_text(ARC.replace("DATA", str(data)))
    converted = lmeval.convert(path)
    lmeval.write(converted, tmp_path / "out")
    registry.cache_clear()
    try:
        assert converted.kind == "multiple_choice" and any("log-likelihood" in n for n in converted.notes)
        task = get_task("arc_toy")
        assert task.labels == () and task.metrics == ("accuracy",)
        s1, s2 = (task.to_sample(d) for d in ARC_DOCS)
        assert (s1.target, s1.choices, s2.target, s2.choices) == (
            "water", ("iron", "water", "salt"), "sunlight", ("moonlight", "sunlight")
        )  # fmt: skip
        arms = {v.name: v for v in default_variants(task)}
        assert {"loglik", "loglik_norm"} <= set(arms)  # lm-eval's acc and acc_norm

        def scores(request):  # the summed log-probability lm-eval would compare: longer choices lose more
            return [-1.0 * len(c) for c in request.decoding.choices]

        records = evaluate(
            task, [arms["loglik"], arms["loglik_norm"]], [s1, s2], (), FakeBackend(logprobs=scores), tmp_path / "run"
        )
        by = {(r["item"], r["variant"]): r for r in records}
        # acc: the shortest choice wins ("salt" ties "iron": the first); acc_norm: all -1 a character, the first
        assert by[("a1", "loglik")]["prediction"] == "iron" and by[("a2", "loglik")]["prediction"] == "sunlight"
        assert by[("a1", "loglik_norm")]["prediction"] == "iron" and by[("a2", "loglik_norm")]["prediction"] == "moonlight"
        assert by[("a2", "loglik")]["scores"] == {"correct": 1.0} and by[("a1", "loglik")]["scores"] == {"correct": 0.0}
        with pytest.raises(UserError, match="choices differ from item to item"):
            evaluate(task, [replace(arms["loglik"], calibration="batch")], [s1], (), FakeBackend(), tmp_path / "r2")
    finally:
        registry.cache_clear()


def test_same_prompt_as_lm_eval_when_installed(imported):
    lm_utils = pytest.importorskip("lm_eval.utils")
    imported(GSM)
    task = get_task("gsm_toy")
    for doc in DOCS:
        sample = task.to_sample(doc)
        assert prompts.render_turn(task, "zero_shot", sample).user == lm_utils.apply_template(
            "Question: {{question}}\nAnswer:", doc
        )
        assert sample.target == lm_utils.apply_template("{{steps}}\n#### {{answer}}", doc)


def test_lm_eval_semantics_of_doc_to_target_and_choice():
    doc = {"label": 1, "opts": ["x", "y"], "n": 2}
    assert lmeval_docs.doc_target("label", doc, True) == 1
    assert lmeval_docs.doc_target("{{n}}", doc, True) == 2  # digits become an index when there are choices
    assert lmeval_docs.doc_target("{{n}}", doc, False) == "2"
    assert lmeval_docs.doc_target("{{opts}}", doc, False) == ["x", "y"]
    assert lmeval_docs.doc_choices("opts", doc) == ["x", "y"]
    assert lmeval_docs.doc_choices("{{opts}}", doc) == ["x", "y"]
    assert lmeval_docs.apply_template("{{ 'a-b' | regex_replace('-', '+') }}", {}) == "a+b"
    with pytest.raises(ValueError, match="outside the 2 choices"):
        lmeval_docs.sample_from_doc({"label": 5}, "label", ["a", "b"])
