"""The full cost of each side (every adapter and sweep trial, the prompt search, labelled rows) and
each arm at the user's traffic, on hand-made manifests; break-even recovers the whole one-off
difference; prices that cannot apply are refused."""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness.analysis import cost, fullcost
from tests.helpers import summarise_task

ADAPTERS = {
    "lora_n64_s0": {"train_size": 64, "seed": 0, "train_device_s": 100.0},
    "lora_n64_s0+constrained": {"train_size": 64, "seed": 0, "train_device_s": 100.0, "built_on": "lora_n64_s0",
                                "constrained": True},
    "lora_n256_s0": {"train_size": 256, "seed": 0, "train_device_s": 400.0},
}  # fmt: skip
INFO = {
    "metrics": ["accuracy"], "labels": ["x", "y"], "kind": "classification", "data_check": {"n_train": 9543},
    "variants": [{"name": "zero_shot", "shots": 0}, {"name": "few_shot_8", "shots": 8}],
    "search": {"adapter": {"method": "grid", "trials": [{"device_s": s, "metric": 0.5} for s in (50.0, 70.0)]},
               "prompt": {"method": "random", "trials": [{"device_s": s, "metric": 0.4} for s in (10.0, 26.0)]}},
}  # fmt: skip


def test_each_side_pays_for_everything_it_trained_searched_and_labelled():
    prices = cost.Prices(device_usd_per_hour=2.0, train_device_usd_per_hour=3.6, usd_per_labelled_row=0.1)
    a = fullcost.adapter_one_off(INFO, ADAPTERS, prices, n_val=60)
    # two adapters trained (the constrained twin serves one of them): 500 s, and two sweep trials: 120 s
    assert a.device_s == 620 and a.device_usd == pytest.approx(620 * 3.6 / 3600)
    assert a.rows == 256 + 60 and a.rows_usd == pytest.approx(31.6) and a.total == pytest.approx(0.62 + 31.6)
    assert a.parts == (
        "training 2 adapters",
        "2 sweep trials",
        "256 training rows (the largest size trained)",
        "60 validation rows",
    )
    p = fullcost.prompt_one_off(INFO, "few_shot_8", prices, n_val=60)
    assert p.device_s == 36 and p.device_usd == pytest.approx(0.02) and p.rows == 9543 + 60
    assert fullcost.prompt_one_off(INFO, "zero_shot", prices, 60).rows == 60  # no shots: no pool


def test_an_arm_at_the_users_volume():
    prices = cost.Prices(requests_per_month=100_000, months=12, usd_per_error=0.05)
    arm = cost.at_volume("lora", prices, one_off_usd=40.0, cost_per_request_usd=0.001, error_rate=0.3)
    assert arm.monthly_serving == pytest.approx(100.0) and arm.monthly_errors == pytest.approx(1500.0)
    assert arm.total == pytest.approx(40 + 12 * 1600)
    assert cost.at_volume("p", cost.Prices(), 1.0, 0.001, 0.3).monthly == 0  # no volume: no monthly figure
    assert cost.months_to_recover(50_000, prices) == pytest.approx(0.5) and cost.months_to_recover(None, prices) is None


def _rec(item: str, variant: str, right: bool, latency: float) -> dict:
    return {
        "task": "t", "item": item, "variant": variant, "prediction": "x" if right else "y", "gold": "x",
        "scores": {"correct": float(right)}, "prompt_tokens": 100, "completion_tokens": 2, "latency_s": latency,
    }  # fmt: skip


def test_the_verdict_recovers_the_whole_one_off_difference_and_gives_the_traffic_figures():
    records = []
    for name, right, latency in (("few_shot_8", 120, 0.036), ("lora_n64_s0", 150, 0.018), ("lora_n256_s0", 170, 0.018)):
        records += [_rec(f"i{i:03d}", name, i < right, latency) for i in range(200)]
    adapters = {k: v for k, v in ADAPTERS.items() if "+" not in k}
    info = {**INFO, "variants": [{"name": "few_shot_8", "shots": 8}]}
    prices = cost.Prices(device_usd_per_hour=3.6, requests_per_month=100_000, usd_per_error=0.01)
    s = summarise_task("t", info, records, adapters, prices)
    assert s.best_adapter == "lora_n256_s0"
    # one-off difference: (500 + 120) s training at $3.6/h - 36 s search at $3.6/h = $0.584
    row = next(r for r in s.rows if r.variant == "lora_n256_s0")
    assert row.break_even is not None and row.break_even.requests == 232  # wrong answers priced: see below
    # serving alone: each adapter request saves (0.036 - 0.018) s at $3.6/h = $0.000018: 32,445 requests
    serving_only = summarise_task("t", info, records, adapters, replace(prices, usd_per_error=None))
    be = next(r for r in serving_only.rows if r.variant == "lora_n256_s0").break_even
    assert be is not None and be.requests == 32_445
    assert be.interval is None  # one batch timing per arm: nothing to resample, so no interval is claimed
    # with wrong answers at $0.01: 25 points fewer wrong answers save $0.0025 a request more: 232 requests,
    # and the items resampled put it between about 190 and 300
    assert row.break_even.interval is not None and row.break_even.interval[0] < 232 < (row.break_even.interval[1] or 0)
    assert "One-off costs: the adapter side $0.62 (training 2 adapters, 2 sweep trials, 256 training rows" in s.verdict
    assert "the prompt side $0.04 (prompt search 2 trials, a shot pool of 9,543 rows) at $0 a labelled row" in s.verdict
    # per month: serving 100,000 x $0.000018 = $1.80 and 15% wrong x $0.01 x 100,000 = $150 for the adapter
    assert "At 100,000 requests a month over 12 months, wrong answers at $0.01 each: lora_n256_s0 $1,822.22" in s.verdict
    assert "($0.62 once, $151.80 a month of which $150.00 wrong answers)" in s.verdict
    assert "Break-even: 2 hours of that traffic." in s.verdict  # 232 requests, 0.0023 months
    assert "the one-off cost is recovered after 232 requests (95% CI" in s.verdict
    assert [a.arm for a in s.at_volume] == ["few_shot_8", "lora_n256_s0"]
    from harness.report.markdown import to_markdown
    from harness.report.sections import sections

    md = to_markdown(sections([s], []))
    row = next(line for line in md.split("Cost at your traffic")[1].splitlines() if line.startswith("| lora_n256_s0"))
    assert [c.strip() for c in row.strip("|").split("|")] == ["lora_n256_s0", "0.62", "1.80", "150.00", "1,822.22"]


@pytest.mark.parametrize(
    ("prices", "text"),
    [
        ("usd_per_error = 0.5\n", "usd_per_error prices wrong answers, and scitldr's metrics (rougeL"),
        ("requests_per_month = -5\n", "requests_per_month"),
        ("months = 0\n", "months"),
        ("usd_per_labelled_row = 'a lot'\n", "usd_per_labelled_row"),
    ],
)
def test_prices_that_cannot_apply_exit_2(prices, text, tmp_path, capsys, monkeypatch, fixture_data):
    from tests.helpers import run_cli

    plan = tmp_path / "p.toml"
    plan.write_text(f'[prices]\n{prices}[[task]]\nname = "scitldr"\n')
    code, _, err = run_cli(["compare", "--plan", str(plan), "--dry-run"], capsys, monkeypatch)
    assert code == 2 and text in err and len(err.strip().splitlines()) == 1


def test_volume_option_is_checked(capsys, monkeypatch, fixture_data):
    from tests.helpers import run_cli

    code, _, err = run_cli(["compare", "twitter_fin_sentiment", "--volume", "0", "--dry-run"], capsys, monkeypatch)
    assert code == 2 and "--volume must be positive, got 0" in err
    code, _, err = run_cli(["report", "nowhere", "--volume", "-3"], capsys, monkeypatch)
    assert code == 2 and "--volume must be positive, got -3" in err


def test_break_even_interval_resamples_batches():
    # $1 a device-second; the prompt's two batches took 3 and 1 ms a request, the adapter's 1 ms:
    # resampled, the prompt costs 3 ms (a quarter of draws: 500 requests to recover $1), 2 ms (half:
    # 1,000) or 1 ms (a quarter: no saving, never)
    adapter = [(0.001, 50), (0.001, 50)]
    assert cost.break_even_interval(1.0, [(0.003, 50), (0.001, 50)], adapter, 0.0, 0.0, 3600.0) == (500, None)
    steady = cost.break_even_interval(1.0, [(0.002, 50), (0.002, 50)], adapter, 0.0, 0.0, 3600.0)
    assert steady == (1000, 1000)
    assert cost.break_even_interval(1.0, [(0.002, 100)], [(0.001, 100)], 0.0, 0.0, 3600.0) is None  # one batch each
    assert cost.break_even_interval(0.0, [(0.002, 5)], [(0.001, 5)], 0.0, 0.0, 3600.0) is None  # nothing to recover
    s = cost.BreakEven(1000, "after 1,000 requests", (500, None)).sentence
    assert s == "the one-off cost is recovered after 1,000 requests (95% CI 500 to never)"
