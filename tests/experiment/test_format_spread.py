"""Format spread: perturbations change only a template's own text (never a field's content or the
label set), a template that rewrites a field is refused, the spread draws distinct formats, and the
verdict says in how many formats it holds."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from harness.analysis.cost import Prices
from harness.analysis.verdict import format_sentence
from harness.core.errors import UserError
from harness.core.types import Sample
from harness.experiment.format_spread import check_perturbable, describe, spread_variants
from harness.experiment.requests import build_requests
from harness.experiment.variant import Variant
from harness.taskkit import formats, prompts
from harness.taskkit.registry import get_task, registry
from tests.fixtures import ROWS
from tests.helpers import summarise_task

BUILTIN = sorted(t for t in registry() if t in ROWS)


def _samples(task_name: str) -> list[Sample]:
    task = get_task(task_name)
    return [task.to_sample(r) for split in ROWS[task_name].values() for r in split]


def _strings(sample: Sample) -> list[str]:
    out = []
    for v in sample.fields.values():
        if isinstance(v, str) and v:
            out.append(v)
        elif isinstance(v, list | tuple):
            out += [x for x in v if isinstance(x, str) and x]
    return out


@pytest.mark.parametrize("task_name", BUILTIN)
def test_every_format_keeps_every_fields_text_and_the_label_set(task_name):
    task = get_task(task_name)
    grid = formats.candidates(0, list(prompts.LABEL_ORDERS))
    for template in task.templates:
        for sample in _samples(task_name):
            for f in grid[::7]:  # a seeded 1-in-7 slice of the whole grammar, every dimension represented
                same_order = prompts.PromptFormat(label_order=f.label_order)
                plain = prompts.render_turn(task, template, sample, same_order).user
                changed = prompts.render_turn(task, template, sample, replace(same_order, layout=f.layout)).user
                for text in _strings(sample):
                    assert changed.count(text.strip()) == plain.count(text.strip()), (template, f, text[:40])
                for label in task.labels:  # as a word: "Choices" holds the letter C, not the label C
                    word = re.compile(rf"\b{re.escape(label)}\b")
                    assert len(word.findall(changed)) == len(word.findall(plain)), (template, f, label)


def test_a_layout_edits_descriptors_separators_casing_and_spacing_only():
    text = "Tweet: \ue0000\ue001\nAnswer:"
    assert formats.apply(text, formats.Layout(separator=" - ", casing="upper")) == "TWEET - \ue0000\ue001\nANSWER -"
    assert formats.apply(text, formats.Layout(naming="alternative", spacing="double")) == (
        "Post: \ue0000\ue001\n\nResponse:"
    )
    assert formats.apply(text, formats.Layout(separator=":\n")) == "Tweet:\n\ue0000\ue001\nAnswer:"
    prose = "What is the sentiment? Answer Bearish or Bullish."  # no descriptor: nothing to change
    assert formats.apply(prose, formats.Layout(" = ", "lower", "double", "alternative")) == prose


def test_the_content_of_a_field_is_never_reformatted():
    task = get_task("scitldr")
    sample = Sample("s", {"title": "Seq2SQL: Queries", "abstract": "Method: we\n\nPropose X."}, ["x"])
    fmt = prompts.PromptFormat(layout=formats.Layout(separator=" - ", casing="upper", spacing="single"))
    user = prompts.render_turn(task, "zero_shot", sample, fmt).user
    assert "TITLE - Seq2SQL: Queries" in user and "ABSTRACT - Method: we\n\nPropose X." in user


@pytest.mark.parametrize(
    "template",
    ["Tweet: {{ text | upper }}", "Tweet: {{ text[:5] }}", "{% if text|length > 3 %}Tweet: {{ text }}{% endif %}"],
)
def test_a_template_that_rewrites_a_field_is_refused(tmp_path, template):
    task = replace(get_task("twitter_fin_sentiment"), prompts_dir=tmp_path)
    (tmp_path / "zero_shot.j2").write_text(template)
    sample = Sample("x", {"text": "$ACME up"}, "Bullish")
    with pytest.raises(UserError, match="changes a field's text as it prints it"):
        check_perturbable(task, [sample])
    assert prompts.render_turn(task, "zero_shot", sample).user  # unperturbed it renders as before


def test_layout_values_and_encoding_are_checked():
    with pytest.raises(UserError, match="unknown format casing 'shout'"):
        formats.Layout(casing="shout")
    layout = formats.Layout(separator=":\n", naming="alternative")
    assert formats.Layout.decode(layout.encode()) == layout and formats.Layout().encode() == ""
    with pytest.raises(UserError, match="not a format layout"):
        formats.Layout.decode('{"colour": "red"}')


def test_spread_draws_distinct_formats_seeded_and_never_pads_with_copies():
    task = get_task("twitter_fin_sentiment")
    items = _samples("twitter_fin_sentiment")
    chosen = Variant("zero_shot", "zero_shot")
    spread = spread_variants(task, chosen, items, items, 5, seed=0)
    assert [v.name for v in spread] == [f"format{i}:zero_shot" for i in range(1, 6)]
    rendered = {tuple(r.messages for r in build_requests(task, v, items, items)) for v in [chosen, *spread]}
    assert len(rendered) == 6  # each format changes what the model sees, and no two are the same
    assert spread == spread_variants(task, chosen, items, items, 5, seed=0)
    assert spread != spread_variants(task, chosen, items, items, 5, seed=1)
    assert all(describe(v) != "as written" or v.label_order != "given" for v in spread)
    # formats that would not fit the context are passed over, not counted
    narrow = spread_variants(task, chosen, items, items, 5, seed=0, fits=lambda v: '"upper"' not in v.layout)
    assert len(narrow) == 5 and not any('"upper"' in v.layout for v in narrow)
    # gsm8k's zero-shot template is the bare question: no descriptor, no line break, no labels
    gsm = get_task("gsm8k")
    bare = spread_variants(gsm, Variant("zero_shot", "zero_shot"), _samples("gsm8k"), _samples("gsm8k"), 5, 0)
    assert bare == []


def _rec(item: str, variant: str, gold: str, pred: str) -> dict:
    return {
        "task": "t", "item": item, "variant": variant, "prediction": pred, "gold": gold,
        "scores": {"correct": float(pred == gold)}, "prompt_tokens": 100, "completion_tokens": 2, "latency_s": 0.01,
    }  # fmt: skip


def _right(n_right: int, golds: list[str]) -> list[str]:
    return [g if i < n_right else ("B" if g == "N" else "N") for i, g in enumerate(golds)]


def test_verdict_says_in_how_many_formats_the_adapter_still_wins():
    golds = ["N", "B"] * 100  # 200 items
    records = [_rec(f"i{i}", "zero_shot", g, p) for i, (g, p) in enumerate(zip(golds, _right(100, golds), strict=True))]
    records += [_rec(f"i{i}", "lora", g, p) for i, (g, p) in enumerate(zip(golds, _right(150, golds), strict=True))]
    # five formats of zero_shot: 90, 110, 120 and 148 right of 200 (the adapter has 150), and 145
    format_records = []
    for k, right in enumerate((90, 110, 120, 148, 145), start=1):
        preds = _right(right, golds)
        format_records += [
            _rec(f"i{i}", f"format{k}:zero_shot", g, p) for i, (g, p) in enumerate(zip(golds, preds, strict=True))
        ]
    spec = {"of": "zero_shot", "variants": [{"name": f"format{k}:zero_shot", "describe": f"f{k}"} for k in range(1, 6)]}
    info = {"metrics": ["accuracy"], "labels": ["B", "N"], "kind": "classification", "formats": spec}
    adapters = {"lora": {"train_size": 8, "train_device_s": 1.0}}
    s = summarise_task("t", info, records, adapters, Prices(), format_records=format_records)
    assert s.formats is not None and [round(v * 200) for _, _, v in s.formats.values] == [90, 110, 120, 148, 145]
    # 150 vs 148 and 150 vs 145 right are not significant (McNemar on 2 and 5 discordant items)
    assert s.formats.holds == 3 and s.formats.claim == "the adapter beats the prompt"
    assert (
        "Format spread of zero_shot over 5 meaning-preserving formats (separators, casing, spacing, field names, "
        "label order): accuracy min 45.0, median 60.0, max 74.0 (as written 50.0); the adapter beats the prompt "
        "in 3 of 5 formats."
    ) in s.verdict
    # an unfinished format is left out, not scored on fewer items
    s2 = summarise_task("t", info, records, adapters, Prices(), format_records=format_records[:-1])
    assert s2.formats is not None and len(s2.formats.values) == 4
    # a spread of another prompt than the selected one (a stale manifest) is not reported
    other = {**info, "formats": {**spec, "of": "few_shot_8"}}
    assert summarise_task("t", other, records, adapters, Prices(), format_records=format_records).formats is None
    assert format_sentence(None, "accuracy") == ""


def test_bad_format_settings_exit_2_with_one_line(tmp_path, capsys, monkeypatch):
    from tests.helpers import run_cli
    from tests.taskkit.test_task_path import make_task

    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("HARNESS_TASKS_PATH", raising=False)
    folder = make_task(tmp_path, zero_shot="SMS: {{ sms | lower }}")
    base = ["compare", "spam", "--tasks-dir", folder, "--no-train", "--dry-run", "--search-trials", "0"]
    code, _, err = run_cli(base, capsys, monkeypatch)
    assert code == 2 and "spam/zero_shot.j2" in err and "(--formats 0)" in err and len(err.strip().splitlines()) == 1
    code, _, _ = run_cli([*base, "--formats", "0"], capsys, monkeypatch)
    assert code == 0  # without the spread, the template is fine
    code, _, err = run_cli([*base, "--formats", "-1"], capsys, monkeypatch)
    assert code == 2 and "--formats must be from 0 to 50, got -1" in err
    plan = tmp_path / "p.toml"
    plan.write_text('[[task]]\nname = "spam"\nformats = 51\n')
    code, _, err = run_cli(["compare", "--plan", str(plan), "--tasks-dir", folder, "--dry-run"], capsys, monkeypatch)
    assert code == 2 and "formats" in err and len(err.strip().splitlines()) == 1
    registry.cache_clear()
