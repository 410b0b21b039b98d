from __future__ import annotations

from harness.datacheck import check, near_duplicate_pairs
from harness.tasks import get_task
from harness.types import Sample


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


def test_near_duplicates_ignore_distinct_texts():
    assert near_duplicate_pairs(["alpha beta", "gamma delta", "epsilon zeta"]) == 0
    assert near_duplicate_pairs(["one"]) == 0
