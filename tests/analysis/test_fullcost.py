"""The full cost of each side (every adapter and sweep trial, the prompt search, labelled rows) and
each arm at the user's traffic, on hand-made manifests; each arm's break-even recovers its own
one-off cost; prices that cannot apply are refused."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from harness.analysis import cost, fullcost
from tests.helpers import summarise_task

ADAPTERS = {
    "lora_n64_s0": {"train_size": 64, "seed": 0, "train_device_s": 100.0, "adapter": "/a/n64s0", "new_rows": 64},
    "lora_n64_s0+constrained": {"train_size": 64, "seed": 0, "train_device_s": 100.0, "built_on": "lora_n64_s0",
                                "constrained": True},
    "lora_n256_s0": {"train_size": 256, "seed": 0, "train_device_s": 400.0, "adapter": "/a/n256s0", "new_rows": 192},
}  # fmt: skip
INFO = {
    "metrics": ["accuracy"], "labels": ["x", "y"], "kind": "classification",
    "data_check": {"n_train": 9543, "n_pool": 9200},
    "variants": [{"name": "zero_shot", "shots": 0}, {"name": "few_shot_8", "shots": 8}],
    "search": {"adapter": {"method": "grid", "trials": [{"device_s": s, "metric": 0.5} for s in (50.0, 70.0)]},
               "prompt": {"method": "random", "trials": [{"device_s": s, "metric": 0.4} for s in (10.0, 26.0)]}},
}  # fmt: skip


def test_each_side_pays_for_everything_it_trained_searched_and_labelled():
    prices = cost.Prices(device_usd_per_hour=2.0, train_device_usd_per_hour=3.6, usd_per_labelled_row=0.1)
    a = fullcost.adapter_one_off(INFO, ADAPTERS, prices, n_val=60)
    # two adapters trained (the constrained twin serves one of them): 500 s, and two sweep trials: 120 s
    assert a.device_s == 620 and a.device_usd == pytest.approx(620 * 3.6 / 3600)
    # the 64 rows of n64 are among n256's 256 (one seed): 256 distinct rows, and 60 validation rows
    assert a.rows == 256 + 60 and a.rows_usd == pytest.approx(31.6) and a.total == pytest.approx(0.62 + 31.6)
    assert a.parts == (
        "training 2 adapters",
        "2 sweep trials",
        "256 distinct training rows (every size and seed)",
        "60 validation rows",
    )
    # the shot pool is the split less the carve-out and leaked rows (9,200), not the whole split (9,543)
    p = fullcost.prompt_one_off(INFO, "few_shot_8", prices, n_val=60)
    assert p.device_s == 36 and p.device_usd == pytest.approx(0.02) and p.rows == 9200 + 60
    assert fullcost.prompt_one_off(INFO, "zero_shot", prices, 60).rows == 60  # no shots: no pool


def test_seeds_count_their_own_rows_and_a_sweep_trial_that_is_the_served_adapter_counts_once():
    prices = cost.Prices(train_device_usd_per_hour=3.6)
    seeded = {**ADAPTERS, "lora_n256_s1": {"train_size": 256, "seed": 1, "train_device_s": 400.0, "adapter": "/a/s1",
                                           "new_rows": 150}}  # fmt: skip
    # the sweep's second trial trained /a/n256s0 (400 s) and scored it (20 s): compare reused that cache entry
    trials = [
        {"device_s": 50.0, "metric": 0.5, "adapter": "/a/t0"},
        {"device_s": 420.0, "metric": 0.6, "adapter": "/a/n256s0"},
    ]
    info = {**INFO, "search": {"adapter": {"trials": trials}}}
    a = fullcost.adapter_one_off(info, seeded, prices, n_val=0)
    assert a.device_s == 100 + 400 + 400 + 50 + 20  # not + 400 a second time
    assert a.rows == 64 + 192 + 150 and "406 distinct training rows (every size and seed)" in a.parts
    # runs from before `new_rows` was recorded: each seed's largest size, said as an upper bound
    old = {k: {x: y for x, y in v.items() if x != "new_rows"} for k, v in seeded.items()}
    assert fullcost.adapter_one_off(info, old, prices, 0).parts[2] == "up to 512 training rows (each seed's largest size)"
    # each arm's own one-off: n64 pays its own training and the sweep, not n256's or another seed's
    assert fullcost.arm_one_off(info, seeded, "lora_n64_s0", "few_shot_8", prices, 0) == pytest.approx(
        (100 + 470) * 3.6 / 3600
    )
    assert fullcost.arm_one_off(info, seeded, "lora_n256_s0", "few_shot_8", prices, 0) == pytest.approx(
        (400 + 70) * 3.6 / 3600
    )


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


def test_each_arm_recovers_its_own_one_off_cost_and_the_verdict_gives_the_traffic_figures():
    records = []
    for name, right, latency in (("few_shot_8", 120, 0.036), ("lora_n64_s0", 150, 0.018), ("lora_n256_s0", 170, 0.018)):
        records += [_rec(f"i{i:03d}", name, i < right, latency) for i in range(200)]
    adapters = {k: v for k, v in ADAPTERS.items() if "+" not in k}
    info = {**INFO, "variants": [{"name": "few_shot_8", "shots": 8}]}
    prices = cost.Prices(device_usd_per_hour=3.6, requests_per_month=100_000, usd_per_error=0.01)
    s = summarise_task("t", info, records, adapters, prices)
    assert s.best_adapter == "lora_n256_s0"
    # its own one-off: 400 s training + 120 s sweep at $3.6/h = $0.52, less the prompt's 36 s search ($0.036);
    # each request saves (0.036 - 0.018) s at $3.6/h = $0.000018 and 25 points of wrong answers at $0.01:
    # $0.002518; 0.484 / 0.002518 = 192.2: 193 requests
    row = next(r for r in s.rows if r.variant == "lora_n256_s0")
    assert row.break_even is not None and row.break_even.requests == 193
    # lora_n64 pays for its own training only: (100 + 120) s = $0.22; saves 0.000018 + 0.15 x 0.01
    n64 = next(r for r in s.rows if r.variant == "lora_n64_s0").break_even
    assert n64 is not None and n64.requests == math.ceil((0.22 - 0.036) / 0.001518)
    serving_only = summarise_task("t", info, records, adapters, replace(prices, usd_per_error=None))
    be = next(r for r in serving_only.rows if r.variant == "lora_n256_s0").break_even
    assert be is not None and be.requests == math.ceil(0.484 / 0.000018)
    assert be.interval is None  # every item took the same time: nothing varies, so no interval is claimed
    # with wrong answers priced, the items resampled (paired) put it between about 160 and 240
    assert row.break_even.interval is not None and 140 < row.break_even.interval[0] < 193 < row.break_even.interval[1] < 260
    assert (
        "One-off costs: the adapter side $0.62 (training 2 adapters, 2 sweep trials, 256 distinct training rows" in s.verdict
    )
    assert "the prompt side $0.04 (prompt search 2 trials, a shot pool of 9,200 rows) at $0 a labelled row" in s.verdict
    # per month: serving 100,000 x $0.000018 = $1.80 and 15% wrong x $0.01 x 100,000 = $150 for the adapter
    assert "At 100,000 requests a month over 12 months, wrong answers at $0.01 each: lora_n256_s0 $1,822.12" in s.verdict
    assert "($0.52 once, $151.80 a month of which $150.00 wrong answers)" in s.verdict
    assert "its extra one-off cost is recovered after 193 requests (95% CI" in s.verdict
    assert "(1 hour of that traffic)" in s.verdict  # 193 requests, 0.0019 months
    assert [a.arm for a in s.at_volume] == ["few_shot_8", "lora_n256_s0"]
    from harness.report.markdown import to_markdown
    from harness.report.sections import sections

    md = to_markdown(sections([s], []))
    row_md = next(line for line in md.split("Cost at your traffic")[1].splitlines() if line.startswith("| lora_n256_s0"))
    assert [c.strip() for c in row_md.strip("|").split("|")] == ["lora_n256_s0", "0.52", "1.80", "150.00", "1,822.12"]


def test_break_even_interval_resamples_items_paired():
    # the prompt costs 3 or 1 (x $0.001) a request by item, the adapter 1: the mean saving 0.001, the
    # crossover 1,000 requests for $1; items resampled move the share of dear items, and the figure with it
    prompt, adapter = [0.003] * 50 + [0.001] * 50, [0.001] * 100
    low, high = cost.break_even_interval(1.0, prompt, adapter)  # type: ignore[misc]
    assert 750 < low < 1000 < (high or 0) < 1400
    # paired: the adapter is the prompt less $0.001 on every item, however the items vary: nothing to resample
    varied = [0.001 * (1 + i % 7) for i in range(100)]
    assert cost.break_even_interval(1.0, varied, [c - 0.001 for c in varied]) is None
    # a resample that saves nothing never crosses: the upper bound is never
    assert cost.break_even_interval(1.0, [0.0011] * 2 + [0.001] * 98, [0.001] * 100)[1] is None  # type: ignore[index]
    assert cost.break_even_interval(0.0, prompt, adapter) is None  # nothing to recover
    s = cost.BreakEven(1000, "adapter", (500, None)).sentence
    assert s == "its extra one-off cost is recovered after 1,000 requests (95% CI 500 to never)"


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
