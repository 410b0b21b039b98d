"""Decision cards: the verdict's headline, how sure, each chosen arm's money at the reader's traffic,
the break-even and what would change the decision; the HTML page's own script recomputes the same
figures and the decision when the volume slider moves, checked in headless Chromium (which
.ci/run installs where it can)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.analysis import cost
from harness.report import cards
from tests.analysis.test_fullcost import ADAPTERS, INFO, _rec
from tests.helpers import summarise_task


def _summary(prices: cost.Prices, waits: tuple[dict, ...] = ()):
    records = []
    for name, right, latency in (("few_shot_8", 120, 0.036), ("lora_n64_s0", 150, 0.018), ("lora_n256_s0", 170, 0.018)):
        records += [_rec(f"i{i:03d}", name, i < right, latency) for i in range(200)]
    adapters = {k: v for k, v in ADAPTERS.items() if "+" not in k}
    info = {**INFO, "variants": [{"name": "few_shot_8", "shots": 8}]}
    return summarise_task("t", info, records, adapters, prices, latency_records=waits)


def test_the_card_gives_the_latency_a_user_waits_on_the_chosen_arms_only():
    waits = tuple(
        {"task": "t", "item": f"i{i:03d}", "variant": arm, "latency_s": base + i / 1000, "completion_tokens": 3}
        for arm, base in (("few_shot_8", 0.2), ("lora_n256_s0", 0.1), ("lora_n64_s0", 0.05))
        for i in range(21)
    )
    c = cards.card(_summary(PRICES, waits))
    # p50 of 0.200..0.220 s is 0.210 s, p95 0.219 s; lora_n64_s0 was not chosen, so it is not on the card
    assert c.waits == (("few_shot_8", pytest.approx(0.21), pytest.approx(0.219)),
                       ("lora_n256_s0", pytest.approx(0.11), pytest.approx(0.119)))  # fmt: skip
    line = "Latency a user waits (one request at a time, p50 / p95): few_shot_8 210 / 219 ms; lora_n256_s0 110 / 119 ms."
    assert f"- {line}" in cards.markdown(c) and f"<p>{line}</p>" in cards.html_card(c)
    assert not cards.card(_summary(PRICES)).waits and "Latency" not in "".join(cards.markdown(cards.card(_summary(PRICES))))


PRICES = cost.Prices(device_usd_per_hour=3.6, requests_per_month=100_000, usd_per_error=0.01)


def test_a_card_gives_the_decision_and_the_money_at_the_plans_traffic():
    s = _summary(PRICES)
    c = cards.card(s)
    assert c.headline == "Fine-tuning pays off" and c.volume == 100_000 and c.volume_given
    assert c.confidence.startswith("lora_n256_s0 against few_shot_8: +25.0 points accuracy (95% CI")
    assert [a.arm for a in c.arms] == ["few_shot_8", "lora_n256_s0"] and c.break_even == 193
    figs = cards.figures(c, 100_000)
    by = {a.arm: a for a in s.at_volume}
    assert figs["total-1"] == f"${by['lora_n256_s0'].total:,.2f}" == "$1,822.12"
    assert figs["monthly-0"] == "$403.60"  # 100,000 x ($0.000036 serving + 40% x $0.01 wrong)
    assert figs["break-even"] == "1 hour"  # 193 / 100,000 of a month is 1.4 hours
    assert figs["decision"] == "Fine-tuning pays off"
    assert cards.figures(c, 1_000)["monthly-0"] == "$4.04"
    md = "\n".join(cards.markdown(c))
    assert "### t: Fine-tuning pays off" in md and "lora_n256_s0 (adapter) $151.80 a month" in md
    assert "- Break-even: 193 requests (95% CI 156 to 246), 1 hour at this traffic." in md
    # (0.52 - 0.036) / (12 x (0.004036 - 0.001518)): below 16 requests a month the prompt's lower one-off wins
    assert "- What would change the decision: the prompt costs less below 16 requests a month, the adapter above" in md


def test_without_a_volume_the_card_says_its_figure_is_an_example():
    c = cards.card(_summary(cost.Prices(device_usd_per_hour=3.6)))
    assert c.volume == cards.DEFAULT_VOLUME and not c.volume_given
    assert "(no requests_per_month given: an example)" in "\n".join(cards.markdown(c))


def test_the_html_card_carries_its_numbers_and_the_slider():
    c = cards.card(_summary(PRICES))
    page = cards.html_card(c)
    data = json.loads(re.search(r"class='card-data'>(.*?)</script>", page).group(1))
    assert data["break_even"] == 193 and len(data["arms"]) == 2 and data["pair"] == [0, 1]
    assert data["short"] == {"adapter": "Fine-tuning pays off",
                             "prompt": "Keep the prompt: the adapter's gain does not pay for its cost"}  # fmt: skip
    assert "<input class='volume' type='range'" in page and "data-fig='total-1'>$1,822.12<" in page
    assert "<span data-fig='decision'>Fine-tuning pays off</span>" in page


def _flipping(volume: float | None = 100_000):
    """No difference in quality (the same 150 of 200 right), the adapter dearer up front ($100 of
    training) and cheaper per request (0.018 against 0.036 s at $3.6/h): the cheaper side is the
    prompt below 100 / (12 x 0.000018) = 462,963 requests a month and the adapter above."""
    records = []
    for name, latency in (("few_shot_8", 0.036), ("lora_n256_s0", 0.018)):
        records += [_rec(f"i{i:03d}", name, i < 150, latency) for i in range(200)]
    adapters = {"lora_n256_s0": {**ADAPTERS["lora_n256_s0"], "train_device_s": 100_000.0}}
    info = {**INFO, "variants": [{"name": "few_shot_8", "shots": 8}], "search": {}}
    return summarise_task("t", info, records, adapters, cost.Prices(device_usd_per_hour=3.6, requests_per_month=volume))


def test_the_decision_moves_with_the_volume_where_cost_decides():
    s = _flipping()
    assert s.verdict.startswith("Keep the prompt: no detectable quality difference (+0.0 points")
    assert (
        "What would change the decision: the prompt costs less below 462,963 requests a month, the adapter above"
        in s.verdict
    )
    c = cards.card(s)
    assert c.headline == "Keep the prompt: no detectable quality difference, and it costs less"
    assert cards.figures(c, 462_900)["decision"] == c.headline
    assert cards.figures(c, 463_000)["decision"] == "Choose the adapter: no detectable quality difference, and it costs less"
    busy = _flipping(1_000_000)
    assert busy.verdict.startswith("Choose the adapter: no detectable quality difference (+0.0 points")
    assert "2.0x faster" in busy.verdict.split(". ")[0] and "paid back in" in busy.verdict.split(". ")[0]


@pytest.mark.parametrize(
    ("months", "said"),
    [
        (0.0, "under an hour"),
        (0.5 / cost.HOURS_PER_MONTH, "under an hour"),
        (1 / cost.HOURS_PER_MONTH, "1 hour"),
        (1.49 / cost.HOURS_PER_MONTH, "1 hour"),
        (1.5 / cost.HOURS_PER_MONTH, "2 hours"),  # half up, as the page rounds
        (23.4 / cost.HOURS_PER_MONTH, "23 hours"),
        (23.5 / cost.HOURS_PER_MONTH, "1 day"),
        (3 * 24 / cost.HOURS_PER_MONTH, "3 days"),
        (30.4 * 24 / cost.HOURS_PER_MONTH, "30 days"),
        (30.5 * 24 / cost.HOURS_PER_MONTH, "1.0 months"),
        (2.34, "2.3 months"),
        (23.9, "23.9 months"),
        (24.0, "2.0 years"),
        (12 * 1234.56, "1,234.6 years"),
    ],
)
def test_break_even_is_said_in_a_unit_a_reader_thinks_in(months: float, said: str):
    assert cost.traffic_time(months) == said


NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
def test_the_page_script_computes_the_same_figures_as_python(tmp_path: Path):
    """The card's script, run as the page runs it (its own text, through Node with the few DOM
    calls it makes), against `figures` for break-evens and volumes that reach every unit and
    rounding edge: the slider must never show other numbers than the page was written with."""
    from dataclasses import replace

    c = cards.card(_summary(PRICES))
    script = re.search(r"<script>(.*?)</script>", _page(c), re.S).group(1)
    data = json.loads(re.search(r"class='card-data'>(.*?)</script>", cards.html_card(c)).group(1))
    volumes = (1_000, 2_354, 2_500, 33_895, 100_000, 169_477, 3_333_333, 40_000_000, 100_000_000)
    # at 1,000 requests a month: 1.643 is 1.2 hours, 31.76 is 23.2 hours, 985.6 is 30 days, 23,900 is 23.9 months
    break_evens = (None, 0.4, 1.643, 31.76, 232.0, 985.6, 4_567.0, 23_900.0, 1.5e6, 9.9e9)
    cases = [(be, v) for be in break_evens for v in volumes]
    runner = tmp_path / "run.js"
    runner.write_text(
        "const [script, data, cases] = [process.argv[2], JSON.parse(process.argv[3]), JSON.parse(process.argv[4])];\n"
        "const out = [];\n"
        "for (const [be, v] of cases) {\n"
        "  const shown = {};\n"
        "  const el = (k) => ({ set textContent(t) { shown[k] = t; } });\n"
        "  const slider = { value: '5', addEventListener() {} };\n"
        "  const card = { querySelector(sel) {\n"
        "    if (sel === 'script.card-data') return { textContent: JSON.stringify({ ...data, break_even: be }) };\n"
        "    if (sel === 'input.volume') return slider;\n"
        "    if (sel === '.volume-value') return el('volume');\n"
        '    const m = sel.match(/data-fig="([^"]+)"/);\n'
        "    return m ? el(m[1]) : null; } };\n"
        "  globalThis.location = { hash: '#volume=' + v };\n"
        "  globalThis.document = { querySelectorAll: () => [card] };\n"
        "  new Function(script)();\n"
        "  out.push(shown);\n"
        "}\n"
        "console.log(JSON.stringify(out));\n"
    )
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(runner), script, json.dumps(data), json.dumps(cases)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for (be, v), shown in zip(cases, json.loads(done.stdout), strict=True):
        want = cards.figures(replace(c, break_even=be), v)
        assert shown == {**want, "volume": f"{v:,}"}, (be, v)


def _page(c: cards.Card) -> str:
    from harness.report.html import to_html
    from harness.report.sections import sections

    s = _summary(PRICES)
    assert cards.card(s) == c
    return to_html(sections([s], []))


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _browse(page: Path, volume: int, profile: Path) -> str:
    """The page's DOM after its script ran with the slider at `volume` (the page reads #volume= as a move)."""
    assert CHROMIUM is not None
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--dump-dom", f"{page.as_uri()}#volume={volume}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package: chromium)")
def test_the_slider_recomputes_the_same_figures_and_moves_the_decision_in_a_real_browser(tmp_path: Path):
    from harness.report.html import to_html
    from harness.report.sections import sections

    paid, flipping = _summary(PRICES), _flipping()
    page = tmp_path / "report.html"
    page.write_text(to_html(sections([paid, flipping], [])))
    said = {}
    for volume in (2_500, 100_000, 1_000_000, 40_000_000):
        dom = _browse(page, volume, tmp_path / "profile")
        chunks = dom.split('class="card"')[1:]
        assert len(chunks) == 2
        for s, chunk in zip((paid, flipping), chunks, strict=True):
            shown = dict(re.findall(r'data-fig="([a-z0-9-]+)">([^<]*)<', chunk))
            assert shown == cards.figures(cards.card(s), volume), volume
            assert f">{volume:,}<" in chunk  # the slider's label moved too
        said[volume] = re.search(r'data-fig="decision">([^<]*)<', chunks[1]).group(1)  # type: ignore[union-attr]
    # where cost decides, the decision itself moves with the slider, not only the totals
    assert said[100_000] == "Keep the prompt: no detectable quality difference, and it costs less"
    assert said[1_000_000] == said[40_000_000] == "Choose the adapter: no detectable quality difference, and it costs less"
