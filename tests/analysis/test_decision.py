"""The decision rule and its thresholds on hand-computed numbers (harness.analysis.decision)."""

from __future__ import annotations

from harness.analysis import cost, decision
from harness.analysis.decision import NONE, WIN, Side

PROMPT = Side("p", once=0.0, per_request=0.001, error_rate=0.4, wait_s=0.5)
ADAPTER = Side("a", once=10.0, per_request=0.0005, error_rate=0.2, wait_s=0.1)
DIFF = ("+20.0 points", "20.0 points", "95% CI 10.0 to 30.0, exact McNemar p = 0.001")


def test_the_thresholds_that_flip_the_decision_by_hand():
    prices = cost.Prices(requests_per_month=1_000, months=12)
    said = decision.flips(PROMPT, ADAPTER, prices)
    # totals cross where 10 = 12 v (0.001 - 0.0005): v = 1,667 requests a month
    assert "the prompt costs less below 1,667 requests a month, the adapter above" in said
    # at 1,000 a month the adapter is $4 dearer over 12 months; 0.2 fewer wrong answers x 12,000 requests
    # pay that back at $4 / 2,400 = $0.0017 a wrong answer
    assert "at $0.0017 or more per wrong answer the adapter wins" in said
    priced = decision.flips(PROMPT, ADAPTER, cost.Prices(requests_per_month=1_000, months=12, usd_per_error=0.01))
    # at $0.01 a wrong answer: 10 / 12,000 - 0.0005 = 0.000333 a request, 3.3 points of error rate
    assert "the adapter costs less as long as its error rate is no more than 3.3 points below the prompt's" in priced
    assert "(it is 20.0 points below)" in priced
    # a crossing within the first request a month is not "below 0 requests"
    tiny = decision.flips(PROMPT, Side("a", 1e-6, 0.0005, 0.2, 0.1), prices)
    assert "at any volume of a request a month or more" in tiny and "below 0 requests" not in tiny


def test_quality_then_cost_at_the_plans_volume():
    low, high = cost.Prices(requests_per_month=1_000), cost.Prices(requests_per_month=10_000)
    assert decision.decide(WIN, DIFF, PROMPT, ADAPTER, low, None).headline.startswith(
        "Fine-tuning wins on quality but costs more: a beats p by +20.0 points"
    )
    d = decision.decide(WIN, DIFF, PROMPT, ADAPTER, high, cost.BreakEven(20_000.0, "adapter"))
    assert d.action == "adapter" and d.cheaper == "adapter"
    assert (
        d.headline.startswith("Fine-tuning pays off: a beats p by +20.0 points") and "paid back in 2.0 months" in d.headline
    )
    none = decision.decide(NONE, DIFF, PROMPT, ADAPTER, high, cost.BreakEven(20_000.0, "adapter"), "6.0 points")
    assert (
        none.headline.startswith("Choose the adapter: no detectable quality difference") and "5.0x faster" in none.headline
    )
    kept = decision.decide(NONE, DIFF, PROMPT, ADAPTER, low, None, "6.0 points")
    assert kept.action == "prompt" and kept.headline.startswith("Keep the prompt: no detectable quality difference")
    # a loss is kept on the prompt unless wrong answers are priced and the adapter still costs less
    worse = Side("a", 10.0, 0.0005, 0.5, 0.1)
    loss = decision.decide(decision.LOSS, DIFF, PROMPT, worse, high, None)
    assert loss.action == "prompt" and loss.headline.startswith("Keep the prompt: a is 20.0 points behind p")
    cheap = decision.decide(
        decision.LOSS, DIFF, PROMPT, worse, cost.Prices(requests_per_month=10_000, usd_per_error=0.001), None
    )
    assert cheap.action == "adapter" and cheap.headline.startswith("Choose the adapter on cost")
