"""Decision cards: one per task, at the top of the report. The verdict, how sure it is, each
side's cost at the reader's traffic and the break-even, with a volume slider in the HTML that
recomputes the money in the page (inline script, no external resource). Pure.

The page's script computes exactly what `figures` computes here, from the numbers embedded in
the card, so the two can be checked against each other in a real browser.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, replace

from harness.analysis import cost
from harness.analysis.records import TaskSummary
from harness.report.mdtext import md
from harness.taskkit.metrics import metric

DEFAULT_VOLUME = 100_000.0  # requests a month shown when the plan gives none (said on the card)


@dataclass(frozen=True)
class CardArm:
    arm: str
    side: str  # "prompt" | "adapter" | "combined"
    one_off: float  # USD
    per_request: float  # serving USD per request
    error_per_request: float  # wrong answers' USD per request (0 without usd_per_error)


@dataclass(frozen=True)
class Card:
    task: str
    headline: str  # "Fine-tuning pays off", "Keep the prompt", "No detectable difference", ...
    confidence: str
    arms: tuple[CardArm, ...]
    months: float
    volume: float
    volume_given: bool
    break_even: float | None  # requests; None: never (or no adapter)
    break_even_interval: tuple[float, float | None] | None = None  # 95%; high None: never
    waits: tuple[tuple[str, float, float], ...] = ()  # (arm, p50, p95) seconds a single request waits
    # the decision rule at any volume: the headline when the adapter or the prompt costs less in
    # total there (harness.analysis.decision), and which of `arms` those two are
    short: tuple[tuple[str, str], ...] = ()
    pair: tuple[int, int] | None = None  # (prompt, adapter) indices into arms
    flips: str = ""  # what would change the decision, at the plan's volume
    cheaper_after: str = "adapter"  # the side that costs less beyond the break-even


def card(s: TaskSummary) -> Card:
    sides = {r.variant: r.side for r in s.rows}
    arms = tuple(CardArm(a.arm, sides[a.arm], a.one_off, a.per_request, a.error_per_request or 0.0) for a in s.at_volume)
    given = next((a.volume for a in s.at_volume if a.volume), None)
    months = s.at_volume[0].months if s.at_volume else 12.0
    be = next((r.break_even for r in s.rows if r.variant == s.best_adapter), None)
    requests = float(be.requests) if be is not None and be.requests is not None else None
    interval = be.interval if be is not None and requests is not None else None
    chosen = [v for v in (s.best_prompt, s.best_adapter) if v]
    waits = tuple(
        (r.variant, r.wait_p50, r.wait_p95)
        for v in chosen
        for r in s.rows
        if r.variant == v and r.wait_p50 is not None and r.wait_p95 is not None
    )
    names = [a.arm for a in arms]
    pair = (names.index(s.best_prompt), names.index(s.best_adapter)) if s.best_adapter in names else None
    c = Card(
        s.task, s.verdict.split(":", 1)[0].split(" between ")[0].strip(), _confidence(s), arms, months,
        given or DEFAULT_VOLUME, given is not None, requests, interval, waits,
    )  # fmt: skip
    if s.decided is None or pair is None:
        return c
    c = replace(
        c, short=tuple(sorted(s.decided.short.items())), pair=pair, cheaper_after=be.cheaper_after if be else "adapter",
        flips=s.decided.flips,
    )  # fmt: skip
    return replace(c, headline=figures(c, c.volume)["decision"])


def _crossing(c: Card) -> tuple[str, str]:
    """The break-even in words, around the figure the slider moves (the span of traffic it takes):
    (before it, after it); no figure when the totals never cross."""
    if c.break_even is None:
        return "never: the prompt costs less at every volume.", ""
    if c.break_even == 0:
        return "none needed: the adapter costs less from the first request.", ""
    if c.cheaper_after == "prompt":
        return (
            f"the adapter costs less until {c.break_even:,.0f} requests{_interval(c)}, ",
            " at this traffic; the prompt after.",
        )
    return f"{c.break_even:,.0f} requests{_interval(c)}, ", " at this traffic."


def _waits(c: Card) -> str:
    each = "; ".join(f"{arm} {p50 * 1000:,.0f} / {p95 * 1000:,.0f} ms" for arm, p50, p95 in c.waits)
    return f"Latency a user waits (one request at a time, p50 / p95): {each}." if each else ""


def _interval(c: Card) -> str:
    if c.break_even_interval is None:
        return ""
    low, high = c.break_even_interval
    return f" (95% CI {low:,.0f} to {'never' if high is None else f'{high:,.0f}'})"


def _confidence(s: TaskSummary) -> str:
    by = {r.variant: r for r in s.rows}
    if not s.best_adapter or by[s.best_adapter].diff is None:
        return f"Best prompt {s.best_prompt}; no adapter was evaluated."
    r = by[s.best_adapter]
    assert r.diff is not None
    scale, unit = (100, " points") if metric(s.metric).points else (1, "")
    p = f", {r.test} p = {r.p_value:.2g}" if r.p_value is not None else ""
    out = (
        f"{s.best_adapter} against {s.best_prompt}: {r.diff.value * scale:+.1f}{unit} {s.metric} "
        f"(95% CI {r.diff.low * scale:.1f} to {r.diff.high * scale:.1f}{p}) on {s.n_items} test items"
    )
    if s.formats is not None and s.formats.claim:
        out += f"; {s.formats.claim} in {s.formats.holds} of {len(s.formats.values)} formats"
    return out + "."


def figures(c: Card, volume: float) -> dict[str, str]:
    """Every money figure of the card at `volume` requests a month, formatted as the page shows it."""
    out = {}
    for i, a in enumerate(c.arms):
        monthly = (a.per_request + a.error_per_request) * volume
        out[f"monthly-{i}"] = _usd(monthly)
        out[f"total-{i}"] = _usd(a.one_off + c.months * monthly)
    out["break-even"] = "never" if c.break_even is None else cost.traffic_time(c.break_even / volume)
    if c.pair is not None and c.short:
        p, a = (c.arms[i] for i in c.pair)
        total = {
            side: x.one_off + c.months * (x.per_request + x.error_per_request) * volume
            for side, x in (("prompt", p), ("adapter", a))
        }
        out["decision"] = dict(c.short)["adapter" if total["adapter"] <= total["prompt"] else "prompt"]
    return out


def _usd(x: float) -> str:
    # rounded half up, as the page's script does (Math.round): Python's own formatting rounds the
    # binary value exactly and can differ by a cent on a half
    return f"${cost.half_up(x, 2):,.2f}"


def markdown(c: Card) -> list[str]:
    at = f"{c.volume:,.0f} requests a month" + ("" if c.volume_given else " (no requests_per_month given: an example)")
    lines = [f"### {md(c.task)}: {md(c.headline)}", "", f"- How sure: {md(c.confidence)}"]
    if c.arms:
        figs = figures(c, c.volume)
        each = "; ".join(
            f"{md(a.arm)} ({a.side}) {figs[f'monthly-{i}']} a month, {_usd(a.one_off)} once, "
            f"{figs[f'total-{i}']} over {c.months:g} months"
            for i, a in enumerate(c.arms)
        )
        lines.append(f"- At {at}: {each}.")
        head, tail = _crossing(c)
        lines.append(f"- Break-even: {head}{figs['break-even'] + tail if tail else ''}")
    if c.waits:
        lines.append(f"- {md(_waits(c))}")
    if c.flips:
        lines.append(f"- {md(c.flips)}")
    return [*lines, ""]


# `figures` and `cost.traffic_time` in the page: the same rounding (half up) and the same words.
_SCRIPT = """
(function(){
  function half(x,digits){var s=Math.pow(10,digits);return Math.floor(x*s+0.5)/s;}
  function fixed(x,digits){
    return half(x,digits).toLocaleString('en-US',{minimumFractionDigits:digits,maximumFractionDigits:digits});
  }
  function usd(x){return '$'+fixed(x,2);}
  function span(months){
    var hours=months*HOURS_PER_MONTH, n;
    if(hours<1){return 'under an hour';}
    n=half(hours,0);
    if(n<24){return n+' hour'+(n!==1?'s':'');}
    n=half(hours/24,0);
    if(n<31){return n+' day'+(n!==1?'s':'');}
    if(months<24){return fixed(months,1)+' months';}
    return fixed(months/12,1)+' years';
  }
  function figures(d,v){
    var out={};
    d.arms.forEach(function(a,i){
      var monthly=(a.per_request+a.error_per_request)*v;
      out['monthly-'+i]=usd(monthly);
      out['total-'+i]=usd(a.one_off+d.months*monthly);
    });
    out['break-even']=d.break_even===null?'never':span(d.break_even/v);
    if(d.pair){
      var t={};
      ['prompt','adapter'].forEach(function(side,j){
        var a=d.arms[d.pair[j]];
        t[side]=a.one_off+d.months*(a.per_request+a.error_per_request)*v;
      });
      out['decision']=d.short[t.adapter<=t.prompt?'adapter':'prompt'];
    }
    return out;
  }
  function update(card){
    var d=JSON.parse(card.querySelector('script.card-data').textContent);
    var slider=card.querySelector('input.volume');
    var v=Math.round(Math.pow(10,parseFloat(slider.value)));
    card.querySelector('.volume-value').textContent=v.toLocaleString('en-US');
    var f=figures(d,v);
    Object.keys(f).forEach(function(k){
      var el=card.querySelector('[data-fig="'+k+'"]');
      if(el){el.textContent=f[k];}
    });
  }
  var want=(location.hash.match(/volume=([0-9.]+)/)||[])[1];
  document.querySelectorAll('.card').forEach(function(card){
    var slider=card.querySelector('input.volume');
    if(!slider){return;}
    if(want){slider.value=Math.log10(parseFloat(want));}
    slider.addEventListener('input',function(){update(card);});
    update(card);
  });
})();
""".replace("HOURS_PER_MONTH", repr(cost.HOURS_PER_MONTH))

CSS = (
    ".card{border:1px solid #9ab;border-radius:6px;padding:.6em 1em;margin:1em 0;background:#fbfdff}"
    ".card h2{margin:.2em 0}.card .sure{color:#333}.card table{margin:.4em 0}"
)


def html_card(c: Card) -> str:
    data = {
        "months": c.months,
        "break_even": c.break_even,
        "pair": list(c.pair) if c.pair else None,
        "short": dict(c.short),
        "arms": [
            {"one_off": a.one_off, "per_request": a.per_request, "error_per_request": a.error_per_request} for a in c.arms
        ],
    }
    figs = figures(c, c.volume)
    rows = "".join(
        f"<tr><td>{html.escape(a.arm)}</td><td>{a.side}</td><td>{_usd(a.one_off)}</td>"
        f"<td data-fig='monthly-{i}'>{figs[f'monthly-{i}']}</td><td data-fig='total-{i}'>{figs[f'total-{i}']}</td></tr>"
        for i, a in enumerate(c.arms)
    )
    parts = [
        f"<div class='card' id='card-{html.escape(c.task)}'>",
        f"<h2>{html.escape(c.task)}: <span data-fig='decision'>{html.escape(c.headline)}</span></h2>",
        f"<p class='sure'>{html.escape(c.confidence)}</p>",
    ]
    if c.arms:
        example = "" if c.volume_given else " (no requests_per_month in the plan: an example)"
        parts += [
            "<label>Requests a month: <input class='volume' type='range' min='3' max='8' step='any' "
            f"value='{math.log10(c.volume):.4f}'> <b class='volume-value'>{c.volume:,.0f}</b>{example}</label>",
            f"<table><tr><th>arm</th><th>side</th><th>one-off</th><th>per month</th><th>over {c.months:g} months</th>"
            f"</tr>{rows}</table>",
            "<p>Break-even: "
            + html.escape(_crossing(c)[0])
            + (f"<b data-fig='break-even'>{figs['break-even']}</b>{html.escape(_crossing(c)[1])}" if _crossing(c)[1] else "")
            + "</p>",
            f"<p>{html.escape(_waits(c))}</p>" if c.waits else "",
            f"<p class='flips'>{html.escape(c.flips)}</p>" if c.flips else "",
            # numbers only: nothing in it can close the script element
            f"<script type='application/json' class='card-data'>{json.dumps(data)}</script>",
        ]
    parts.append("</div>")
    return "".join(parts)


def page_script() -> str:
    return f"<script>{_SCRIPT}</script>"
