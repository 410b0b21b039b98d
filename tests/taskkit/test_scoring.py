from __future__ import annotations

import pytest

from harness.core.types import Sample
from harness.taskkit import metrics, scoring

LABELS = ("card_arrival", "card_linking", "lost_or_stolen_card", "Refund_not_showing_up")


@pytest.mark.parametrize(
    "output,expected",
    [
        ("card_arrival", "card_arrival"),
        ("Card arrival.", "card_arrival"),
        ("  CARD_ARRIVAL\n", "card_arrival"),
        ("The intent is lost or stolen card.", "lost_or_stolen_card"),
        ("Intent: refund not showing up", "Refund_not_showing_up"),
        ("The answer is card_linking", "card_linking"),
        ("I am not sure", None),
        ("", None),
    ],
)
def test_extract_label(output, expected):
    assert scoring.extract_label(output, LABELS) == expected


def test_extract_label_prefers_longest_at_same_position():
    labels = ("card", "card_arrival")
    assert scoring.extract_label("my card arrival is late", labels) == "card_arrival"


@pytest.mark.parametrize(
    "output,expected",
    [
        ("B", "B"),
        ("(C)", "C"),
        ("D. Liver", "D"),
        ("The answer is (B).", "B"),
        ("answer: a", "A"),
        ("I think option c is right", "C"),
        ("Liver", "D"),
        ("nothing", None),
        ("A patient with fever... The answer is D.", "D"),
    ],
)
def test_extract_letter(output, expected):
    choices = ("Pancreas", "Spleen", "Gall bladder", "Liver")
    assert scoring.extract_letter(output, ("A", "B", "C", "D"), choices) == expected


@pytest.mark.parametrize(
    "output,expected",
    [
        ("18", "18"),
        ("$1,200", "1200"),
        ("The answer is 1,234.", "1234"),
        ("3 apples and 5 pears, so 8", "8"),
        ("Janet makes 9 * 2 = $18 a day.\nThe answer is $18.00.", "18"),
        ("#### 72", "72"),
        ("-5 degrees", "-5"),
        ("0.5 of it", "0.5"),
        ("It weighs 12 kg", "12"),
        ("no number", None),
        ("The answer is 7 pens, not 12", "7"),
    ],
)
def test_extract_number(output, expected):
    assert scoring.extract_number(output) == expected


def test_numeric_score_normalises_gold():
    from harness.taskkit.registry import get_task

    task = get_task("gsm8k")
    s = Sample("g", {}, "1,200")
    assert scoring.score(task, scoring.extract_number("The answer is $1200."), s) == {"correct": 1.0}
    assert scoring.score(task, None, s) == {"correct": 0.0}


def test_rouge_takes_best_reference():
    refs = ("a cat sat on the mat", "dogs bark loudly at night")
    scores = scoring.rouge("dogs bark loudly at night", refs)
    assert scores["rougeL"] == pytest.approx(1.0)
    assert 0 < scoring.rouge("a cat sat", refs)["rouge1"] < 1


def test_macro_f1_matches_sklearn():
    from sklearn.metrics import f1_score

    golds = ["a", "a", "b", "b", "b"]
    preds = ["a", "b", "b", "b", None]
    items = [metrics.Scored(p, g, {"correct": float(p == g)}) for p, g in zip(preds, golds, strict=True)]
    expected = f1_score(golds, [p or "<none>" for p in preds], labels=["a", "b"], average="macro", zero_division=0)
    assert metrics.METRICS["macro_f1"](items, ("a", "b")) == pytest.approx(expected)
    assert metrics.METRICS["accuracy"](items, ()) == pytest.approx(0.6)


def test_unknown_metric():
    from harness.core.errors import UserError

    with pytest.raises(UserError, match="unknown metric"):
        metrics.metric_fn("acuracy")
