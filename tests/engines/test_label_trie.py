"""The generation steps that score every label: one per node of the labels' token trie."""

from harness.engines.backends.vllm import cached_head, label_trie


def test_every_label_token_is_read_at_exactly_one_step():
    # "Bearish" and "Bullish" share their first token, "Neutral" does not (SmolLM2's ids)
    labels = [[50, 517, 621], [50, 1274, 621], [9042, 22728]]
    trie = label_trie(labels)
    assert trie == {(): [50, 9042], (50,): [517, 1274], (50, 517): [621], (50, 1274): [621], (9042,): [22728]}
    for ids in labels:  # each token is asked for at the step of its prefix
        assert all(ids[k] in trie[tuple(ids[:k])] for k in range(len(ids)))


def test_the_cached_head_stops_short_of_the_block_of_the_last_token():
    assert cached_head(608) == 576 and cached_head(609) == 608 and cached_head(32) == 0 and cached_head(33) == 32
