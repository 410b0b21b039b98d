"""`harness cache`: what the cache holds part by part and clearing parts; a full disk anywhere is
one clear line (exit 2) that says the work is saved and where space can come from."""

from __future__ import annotations

import errno
import json
import sqlite3

import pytest

from harness.core.types import Completion
from harness.engines.response_cache import ResponseCache
from tests.helpers import make_run, run_cli


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    for part, name, size in (("merged", "a", 100), ("merged", "b", 50), ("adapters", "t-1", 30)):
        (root / part / name).mkdir(parents=True)
        (root / part / name / "w.safetensors").write_bytes(b"x" * size)
    responses = ResponseCache(root / "responses.sqlite")
    responses.put_many([(f"k{i}", Completion("Bullish", 5, 1, "stop", 0.1)) for i in range(3)])
    responses.close()
    elsewhere = tmp_path / "shared-models"  # a models folder linked in, as benches and CI caches do
    (elsewhere / "m").mkdir(parents=True)
    (elsewhere / "m" / "model.safetensors").write_bytes(b"x" * 1000)
    (root / "models").symlink_to(elsewhere)
    monkeypatch.setenv("HARNESS_CACHE", str(root))
    return root


def _parts(capsys, monkeypatch, *args: str) -> dict[str, dict]:
    code, out, err = run_cli(["cache", *args, "--format", "json"], capsys, monkeypatch)
    assert code == 0, err
    return {p["name"]: p for p in json.loads(out)["parts"]}


def test_the_cache_lists_its_parts_and_clears_the_ones_asked(cache, capsys, monkeypatch):
    parts = _parts(capsys, monkeypatch)
    assert (parts["merged"]["bytes"], parts["merged"]["entries"]) == (150, 2)
    assert parts["responses"]["entries"] == 3 and parts["responses"]["bytes"] > 0
    assert parts["adapters"]["bytes"] == 30 and parts["datacheck"]["bytes"] == 0
    assert parts["models"]["bytes"] < 1000  # the link, not the folder it points at
    parts = _parts(capsys, monkeypatch, "--clear", "merged", "--clear", "models", "--clear", "merged")
    assert parts["merged"]["bytes"] == parts["models"]["bytes"] == 0 and parts["adapters"]["bytes"] == 30
    assert not [p for p in (cache / "merged").iterdir() if not p.name.startswith(".")]  # copies, not lock files
    assert not (cache / "models").exists()
    assert (cache.parent / "shared-models" / "m" / "model.safetensors").stat().st_size == 1000  # untouched
    code, out, _ = run_cli(["cache", "--clear", "responses"], capsys, monkeypatch)
    assert code == 0 and "freed" in out and not list(cache.glob("responses.sqlite*"))
    code, _, err = run_cli(["cache", "--clear", "mergd"], capsys, monkeypatch)
    assert code == 2 and "no cache part 'mergd'; did you mean merged?" in err
    assert all(p["bytes"] == 0 for p in _parts(capsys, monkeypatch, "--clear", "all").values())


@pytest.mark.parametrize(
    "failure",
    [
        OSError(errno.ENOSPC, "No space left on device", "/results/r/report.html"),
        sqlite3.OperationalError("database or disk is full"),
        RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })"),
    ],
)
def test_a_full_disk_is_one_line_not_an_internal_error(failure, cache, tmp_path, capsys, monkeypatch):
    import harness.cli.results

    def full(*args, **kwargs):
        raise RuntimeError("saving failed") from failure  # as libraries wrap it

    monkeypatch.setattr(harness.cli.results, "write_reports", full)
    code, _, err = run_cli(["report", str(make_run(tmp_path / "runs", "r1"))], capsys, monkeypatch)
    assert code == 2 and err.startswith("error: no space left on device") and "internal error" not in err
    assert "finished work is saved" in err and f"the harness cache, {cache}, holds" in err and len(err.splitlines()) == 1
    if isinstance(failure, OSError):
        assert "writing /results/r/report.html" in err


def test_another_failure_is_still_an_internal_error(cache, tmp_path, capsys, monkeypatch):
    import harness.cli.results

    failure = OSError(errno.EIO, "I/O error\n  on the second line")  # a library's multi-line text
    monkeypatch.setattr(harness.cli.results, "write_reports", lambda *a, **k: (_ for _ in ()).throw(failure))
    code, _, err = run_cli(["report", str(make_run(tmp_path / "runs", "r1"))], capsys, monkeypatch)
    assert code == 1 and "internal error: OSError: [Errno 5] I/O error on the second line" in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "failure",
    [
        OSError(errno.EROFS, "Read-only file system", "/mnt/shared-cache/models"),
        PermissionError(errno.EACCES, "Permission denied", "/mnt/shared-cache/models"),
    ],
)
def test_a_folder_that_cannot_be_written_is_one_line_not_an_internal_error(failure, cache, tmp_path, capsys, monkeypatch):
    import harness.cli.results

    def refused(*args, **kwargs):
        raise RuntimeError("could not save") from failure

    monkeypatch.setattr(harness.cli.results, "write_reports", refused)
    code, _, err = run_cli(["report", str(make_run(tmp_path / "runs", "r1"))], capsys, monkeypatch)
    assert code == 2 and len(err.splitlines()) == 1 and "internal error" not in err
    assert err.startswith(f"error: {failure.strerror.lower()}: /mnt/shared-cache/models; finished work is saved")
    assert "HARNESS_CACHE" in err


def test_compare_refuses_a_cache_it_cannot_write_before_any_model_pull(tmp_path, capsys, monkeypatch):
    from tests.fixtures import write_data_dir

    blocked = tmp_path / "ro"
    blocked.write_text("a file where the cache's parent folder should be")  # no folder can be made below it
    monkeypatch.setenv("HARNESS_CACHE", str(blocked / "cache"))
    monkeypatch.setenv("HARNESS_DATA_DIR", str(write_data_dir(tmp_path / "data", ["twitter_fin_sentiment"])))
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["compare", "twitter_fin_sentiment", "--no-train"], capsys, monkeypatch)
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"error: the harness cache (HARNESS_CACHE) {blocked / 'cache'} is not writable")
