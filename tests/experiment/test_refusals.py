"""A refused rerun never changes a finished run: for each kind of refusal (the response cache, the
data, the backend, a template, the plan, a run made under other conditions) the run folder is byte
for byte what it was. Real `harness compare` processes, fake backend."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.experiment.test_run_identity import compare, runs, setup  # noqa: F401 (setup is a fixture)


def everything(run: Path) -> dict[str, str]:
    """Every file of the run folder, hidden ones included, by content."""
    files = sorted(p for p in run.rglob("*") if p.is_file())
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _corrupt_cache(root: Path, plan: Path) -> list[str]:
    (root / "cache" / "responses.sqlite").write_bytes(b"this is not a database" * 100)
    for side in ("-wal", "-shm"):
        (root / "cache" / f"responses.sqlite{side}").unlink(missing_ok=True)
    return []


def _bad_data(root: Path, plan: Path) -> list[str]:
    with (root / "data" / "toy" / "test.jsonl").open("a") as f:
        f.write('{"id": "te99", "text": null, "label": "up"}\n')
    return []


def _bad_backend(root: Path, plan: Path) -> list[str]:
    return ["--backend", "openai", "--url", "http://127.0.0.1:9"]  # no server there


def _bad_template(root: Path, plan: Path) -> list[str]:
    (root / "extra" / "prompts" / "toy" / "plain.j2").write_text("{{ text.__class__ }}")
    return []


def _bad_plan(root: Path, plan: Path) -> list[str]:
    plan.write_text(plan.read_text().replace("val_limit = 4", "val_limit = 4\nval_limits = 5"))
    return []


def _other_conditions(root: Path, plan: Path) -> list[str]:
    (root / "extra" / "prompts" / "toy" / "plain.j2").write_text("Stock news: {{ text }}")
    return []


@pytest.mark.parametrize(
    ("spoil", "said"),
    [
        (_corrupt_cache, "response cache"),
        (_bad_data, "input field 'text' is null"),
        (_bad_backend, "127.0.0.1:9"),
        (_bad_template, "refused by the sandbox"),
        (_bad_plan, "val_limits"),
        (_other_conditions, "changed: tasks.toy.templates.plain"),
    ],
    ids=["cache", "data", "backend", "template", "plan", "other-conditions"],
)
def test_a_refused_rerun_leaves_the_finished_run_byte_for_byte(setup, spoil, said):  # noqa: F811
    root, plan, _ = setup
    first = compare(setup)
    assert first.returncode == 0, first.stderr[-1500:]
    [run] = runs(root)
    before = everything(run)
    assert "manifest.json" in before and "samples.jsonl" in before
    extra = spoil(root, plan)
    again = compare(setup, "--run-id", run.name, *extra)
    assert again.returncode == 2, again.stderr[-1500:]
    lines = [line for line in again.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and said in lines[0], again.stderr
    assert everything(run) == before
    assert sorted(p.name for p in (root / "results").iterdir()) == [run.name]  # and nothing beside it


def test_a_refused_first_run_leaves_no_folder(setup):  # noqa: F811
    root, plan, _ = setup
    (root / "cache").mkdir()
    _corrupt_cache(root, plan)
    done = compare(setup, "--run-id", "fresh")
    assert done.returncode == 2 and "response cache" in done.stderr, done.stderr
    assert not (root / "results" / "fresh").exists()


def test_an_adapter_that_cannot_fit_its_prompt_is_refused_before_training(setup):  # noqa: F811
    root, plan, _ = setup
    plan.write_text(plan.read_text() + "train_sizes = [8]\n[task.train]\nmax_seq_len = 4\nepochs = 1\n")
    done = compare(setup)
    assert done.returncode == 2, done.stderr[-1500:]
    assert "toy: no training example fits max_seq_len 4" in done.stderr and "max_seq_len = " in done.stderr
    assert not (root / "cache" / "adapters").exists()  # nothing trained
