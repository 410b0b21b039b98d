"""The merged-copy folder stays within its budget, least recently used first, and never loses a copy a
live process (this one or another) uses, nor a half-built copy whose merge is still running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.core.errors import UserError
from harness.engines import merged_store
from tests.helpers import run_cli


def _copy(folder: Path, key: str, size: int, used: float) -> Path:
    path = folder / key
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"x" * size)
    os.utime(path, (used, used))
    return path


@pytest.fixture
def holder():
    """Another process holding copies the way a running compare does, until it is stopped."""
    procs: list[subprocess.Popen] = []

    def hold(folder: Path, key: str) -> None:
        code = "import sys; from pathlib import Path; from harness.engines import merged_store as m; "
        code += "m.hold(Path(sys.argv[1]), sys.argv[2]); print('held', flush=True); sys.stdin.read()"
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(folder), key], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait()


def test_the_least_recently_used_copies_go_until_the_folder_fits(tmp_path):
    folder = tmp_path / "merged"
    for key, used in (("old", 100), ("mid", 200), ("new", 300)):
        _copy(folder, key, 1000, used)
    kept = merged_store.trim(folder, 2500)
    assert kept.removed == ("old",) and kept.freed == 1000 and kept.kept == 2000
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["mid", "new"]
    assert merged_store.trim(folder, 2000).removed == ()  # fits: nothing more goes
    assert merged_store.trim(folder, 0).removed == ("mid", "new")


def test_a_copy_in_use_stays_even_over_budget(tmp_path, holder):
    folder = tmp_path / "merged"
    for key, used in (("theirs", 100), ("mine", 200), ("idle", 300)):
        _copy(folder, key, 1000, used)
    holder(folder, "theirs")  # another process serving it
    merged_store.hold(folder, "mine")  # this process serving it
    kept = merged_store.trim(folder, 0)
    assert kept.removed == ("idle",) and kept.kept == 2000
    assert (folder / "theirs").is_dir() and (folder / "mine").is_dir()


def test_a_released_copy_can_go(tmp_path, holder):
    folder = tmp_path / "merged"
    _copy(folder, "k", 10, 100)
    code = (
        "import sys; from pathlib import Path; from harness.engines import merged_store as m; m.hold(Path(sys.argv[1]), 'k')"
    )
    subprocess.run([sys.executable, "-c", code, str(folder)], check=True)  # held, then the process ended
    assert merged_store.trim(folder, 0).removed == ("k",)


def test_a_half_built_copy_goes_only_when_no_merge_is_running(tmp_path, holder):
    folder = tmp_path / "merged"
    for name in (".busy-ab12cd34", ".dead-x_9y8z7w"):  # staged_dir's names: ".{key}-{random}"
        (folder / name).mkdir(parents=True)
        (folder / name / "model.safetensors").write_bytes(b"x" * 500)
    holder(folder, "busy")  # the merge of "busy" is running
    kept = merged_store.trim(folder, 10**9)
    assert kept.freed == 500 and kept.removed == ()
    assert (folder / ".busy-ab12cd34").is_dir() and not (folder / ".dead-x_9y8z7w").exists()


@pytest.mark.parametrize(
    ("value", "expected"), [("", 4_000_000_000), ("0", 0), ("1.5", 1_500_000_000), (" 2 ", 2_000_000_000)]
)
def test_the_budget_is_read_in_gigabytes(value, expected, monkeypatch):
    monkeypatch.setenv("HARNESS_MERGED_MAX_GB", value)
    assert merged_store.budget_bytes() == expected


@pytest.mark.parametrize("value", ["lots", "-1", "nan", "inf", "4GB"])
def test_a_budget_that_is_not_gigabytes_is_refused_before_any_work(value, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_MERGED_MAX_GB", value)
    with pytest.raises(UserError):
        merged_store.budget_bytes()
    code, out, err = run_cli(["tasks"], capsys, monkeypatch)
    assert code == 2 and out == ""
    assert err.strip() == f"error: HARNESS_MERGED_MAX_GB={value!r} must be a number of gigabytes, 0 or more (default 4)"
