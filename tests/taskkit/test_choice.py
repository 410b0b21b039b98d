"""Choosing a label by log-likelihood, and the two calibrations, on hand-computed numbers."""

from __future__ import annotations

import math

import pytest

from harness.taskkit.choice import pick, prior, probabilities, scores


def test_normalised_scores_divide_by_the_label_length_in_characters():
    assert scores([-6.0, -2.0], ["Bullish", "Up"], "loglik") == [-6.0, -2.0]
    assert scores([-7.0, -2.0], ["Bullish", "Up"], "loglik_norm") == [-1.0, -1.0]


def test_probabilities_are_a_softmax_over_the_labels_alone():
    p = probabilities([math.log(0.2), math.log(0.05), math.log(0.15)])  # mass on other tokens ignored
    assert p == pytest.approx([0.5, 0.125, 0.375])


def test_the_prior_is_the_log_of_each_labels_mean_probability():
    rows = [[0.9, 0.1], [0.7, 0.3]]
    assert prior(rows) == pytest.approx((math.log(0.8), math.log(0.2)))
    with pytest.raises(ValueError):
        prior([])


def test_a_prior_turns_a_label_the_model_always_prefers_into_a_fair_choice():
    # The model prefers "Bearish" (index 0) everywhere; item A only slightly less than usual.
    prefer = [math.log(0.7), math.log(0.2), math.log(0.1)]
    item_a = [math.log(0.5), math.log(0.4), math.log(0.1)]
    assert pick(item_a) == 0  # uncalibrated: the prior wins
    bias = prior([probabilities(prefer)])  # log(0.7), log(0.2), log(0.1)
    # calibrated: 0.5/0.7 = 0.71, 0.4/0.2 = 2.0, 0.1/0.1 = 1.0 -> the second label
    assert pick(item_a, bias) == 1


def test_ties_go_to_the_first_label_as_argmax_does():
    assert pick([-1.0, -1.0, -2.0]) == 0
    assert pick([-2.0, -1.0, -1.0]) == 1
