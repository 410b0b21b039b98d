"""Commands that read stored results, no model: report, gate, size."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from harness.analysis.gate import run_gate
from harness.analysis.runs import summarise
from harness.analysis.stats import design_effect, items_needed, weighted_cluster_size
from harness.cli.common import OutputFormat, TasksDir, app, more_tasks, out, output_format, print_json
from harness.core.console import warn
from harness.core.errors import UserError
from harness.report.terminal import print_rich
from harness.report.write import metrics_json, write_reports
from harness.runlog import completeness
from harness.taskkit.data import count_rows, load_split
from harness.taskkit.metrics import metric
from harness.taskkit.registry import get_task


@app.command()
def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="One or more run directories.")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Where to write (default: the single run dir).")] = None,
    volume: Annotated[
        float | None, typer.Option(help="Requests a month to give the costs at (default: the run's prices).")
    ] = None,
    usd_per_error: Annotated[
        float | None, typer.Option(help="What one wrong answer costs you (tasks scored right/wrong).")
    ] = None,
    output: OutputFormat = "table",
) -> None:
    """Rebuild the report from stored results alone (no model); several runs merge into one."""
    as_json = output_format(output) == "json"
    summaries, manifests = summarise(run_dirs, volume, usd_per_error)
    target = out_dir or (run_dirs[0] if len(run_dirs) == 1 else Path("results") / "merged")
    write_reports(target, summaries, manifests)
    missing = {str(m.get("run_id")): list(m["missing"]) for m in manifests if m.get("missing")}
    if as_json:
        print_json({"report": str(target / "report.html"), "tasks": metrics_json(summaries), "missing": missing})
        return
    for run_id, phrases in missing.items():
        warn(f"run {run_id}: {completeness.sentence(phrases)}")
    print_rich(summaries)
    out.print(f"report: {target / 'report.html'}")


@app.command()
def gate(
    candidate: Path,
    baseline: Annotated[Path, typer.Option(help="Baseline run directory.")],
    alpha: float = 0.05,
) -> None:
    """Exit 1 when a variant of CANDIDATE is significantly worse than in BASELINE (paired, same items);
    exit 2 when the two runs share nothing to compare."""
    result = run_gate(candidate, baseline, alpha)
    if result.not_gated:
        out.print(f"not in the candidate, so not gated: {', '.join(result.not_gated)}")
    for name in result.no_shared_items:
        out.print(f"{name}: no shared items, skipped")
    family = f" (Holm over {len(result.rows)})" if len(result.rows) > 1 else ""
    for r in result.rows:
        status = "[red]FAIL[/red]" if r.worse else "[green]ok[/green]"
        p = f"p={r.p_holm:.3g}{family}" if r.p_holm is not None else ""
        out.print(
            f"{status} {r.task}/{r.variant}: {r.metric} Δ {r.diff.value:+.4f} "
            f"[{r.diff.low:+.4f}, {r.diff.high:+.4f}] {p} on {r.n_items} shared items"
        )
        if r.flipped and r.worse:
            shown = ", ".join(r.flipped[:20]) + (" …" if len(r.flipped) > 20 else "")
            out.print(f"  flipped to wrong ({len(r.flipped)}): {shown}")
    if result.failures:
        raise typer.Exit(1)


@app.command()
def size(
    task: str,
    effect: Annotated[float, typer.Option(help="The difference to detect, in points (5 = 5 percentage points).")],
    discordance: Annotated[
        float, typer.Option(help="Share of items on which the two arms' answers differ in correctness (0-1).")
    ] = 0.3,
    alpha: float = 0.05,
    power: float = 0.8,
    alpha_family: Annotated[
        int,
        typer.Option(
            help="Comparisons the test is corrected over (Bonferroni: alpha / this): 1 for the verdict's "
            "headline, which is one confirmatory test; the number of arms for the exploratory table."
        ),
    ] = 1,
    icc: Annotated[
        float | None,
        typer.Option(
            help="For tasks whose items share a source (contract_nli's contracts): the intra-cluster correlation "
            "of the paired differences, 0-1 (default 0.1). The design effect it gives scales the items needed."
        ),
    ] = None,
    tasks_dir: TasksDir = None,
) -> None:
    """Test items a paired comparison needs to detect a difference of EFFECT points."""
    more_tasks(tasks_dir)
    t = get_task(task)
    m = metric(t.primary_metric)
    if not m.points:
        raise UserError(f"harness size works in points of a proportion; {task}'s metric {m.name} is not one")
    if effect / 100 > discordance:  # the ranges of each are checked by harness.core.options
        raise UserError(f"--discordance must be at least the effect ({effect / 100:g}), got {discordance:g}")
    if power <= alpha:  # any number of items reaches it: a test of no difference already rejects at rate alpha
        raise UserError(f"--power must be above --alpha ({alpha:g}), got {power:g}")
    if icc is not None and not t.cluster_field:  # else a correlation the user gave would change nothing, silently
        raise UserError(f"--icc is for tasks whose items share a source; {task}'s items are independent")
    level = alpha / alpha_family
    n = items_needed(effect / 100, discordance, level, power)
    have = count_rows(t, t.test_split)
    proxy = " (macro-F1 approximated by per-item correctness)" if m.item_key is None else ""
    clustered = ""
    if t.cluster_field and have is not None:
        sizes = list(Counter(str(s.fields[t.cluster_field]) for s in load_split(t, t.test_split)).values())
        icc = 0.1 if icc is None else icc
        de = design_effect(sizes, icc)
        clustered = (
            f"; its items come in {len(sizes):,} {t.cluster_field}s (size-weighted mean "
            f"{weighted_cluster_size(sizes):.1f} items each): at an intra-cluster correlation of "
            f"{icc:g} the design effect is {de:.2f}, so {math.ceil(n * de):,} items"
        )
    family = f" / {alpha_family} = {level:.3g}" if alpha_family > 1 else ""
    out.print(
        f"{task}: {n:,} test items detect a {effect:g}-point difference in {m.name}{proxy} with the exact McNemar "
        f"test (alpha {alpha:g}{family}, power {power:g}) when the two arms differ on {discordance:.0%} of items"
        + clustered
        + (f"; its {t.test_split} split has {have:,}" if have is not None else ""),
        soft_wrap=True,
        markup=False,
    )
