"""Output that is piped or logged is never cut or folded: whole names, whole numbers, help text as
written."""

from __future__ import annotations

import re
import subprocess
import sys

from harness.taskkit.registry import registry


def _harness(*args: str) -> str:
    cmd = [sys.executable, "-c", "from harness.cli import main; main()", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={"COLUMNS": "80", "PATH": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_piped_task_list_has_whole_names():
    out = _harness("tasks")
    assert "…" not in out
    for name in registry():
        assert re.search(rf"\b{re.escape(name)}\b", out), name


def test_help_keeps_square_brackets():
    assert "[task.sweep] / [task.prompt_search]" in " ".join(_harness("sweep", "--help").split())


def test_a_piped_report_table_never_breaks_a_number(capsys):
    from harness.report.terminal import print_rich
    from tests.report.test_cards import PRICES, _summary

    print_rich([_summary(PRICES)])
    out = capsys.readouterr().out
    assert "…" not in out
    cis = re.findall(r"\d+\.\d \[\d+\.\d, \d+\.\d\]", out)
    assert len(cis) == 5  # three arms' accuracy and two paired differences, each whole on one line


def test_json_output_of_the_listings_and_a_clear_error_for_an_unknown_format():
    import json

    tasks = json.loads(_harness("tasks", "--format", "json"))
    assert {t["name"] for t in tasks} == set(registry())
    banking = next(t for t in tasks if t["name"] == "banking77")
    assert len(banking["labels"]) == 77 and banking["metrics"] and "zero_shot" in banking["templates"]
    models = json.loads(_harness("models", "list", "--format", "json"))
    assert any(m["name"] == "smollm2-135m-instruct" for m in models) and all("cached" in m for m in models)
    cmd = [sys.executable, "-c", "from harness.cli import main; main()", "tasks", "--format", "xml"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.strip() == "error: --format must be one of table, json, got 'xml'"


def test_a_narrow_terminal_drops_low_priority_columns_and_never_breaks_a_number():
    import io

    from rich.console import Console

    from harness.report.tables import table
    from harness.report.terminal import DROP_ORDER, fitted_table
    from tests.report.test_cards import PRICES, _summary

    df = table(_summary(PRICES))
    for width, dropped in ((80, True), (400, False)):
        console = Console(width=width, force_terminal=True, file=io.StringIO(), color_system=None)
        t, hidden = fitted_table(console, df, "title")
        console.print(t)
        text = console.file.getvalue()
        assert all(len(line) <= width for line in text.splitlines())
        assert len(re.findall(r"\d+\.\d \[\d+\.\d, \d+\.\d\]", text)) == 5  # every interval whole on one line
        assert bool(hidden) == dropped and hidden == [c for c in DROP_ORDER if c in hidden]
        assert "variant" not in hidden and not any(c.startswith("Δ") for c in hidden)
    assert hidden == [] and "compl tok" in text


def test_piped_preview_titles_each_item_in_a_short_line(fixture_data):
    """A rule across the unbounded pipe width was 100,000 characters a line (90 MB for 300 items)."""
    cmd = [sys.executable, "-c", "from harness.cli import main; main()", "preview", "twitter_fin_sentiment", "-n", "2"]
    env = {"COLUMNS": "80", "PATH": "", "HARNESS_DATA_DIR": str(fixture_data)}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    titles = [line for line in done.stdout.splitlines() if line.startswith("── twitter_fin_sentiment / zero_shot / item ")]
    assert len(titles) == 2 and all(t.endswith(" ──") for t in titles), titles
    assert max(len(line) for line in done.stdout.splitlines()) < 1000
