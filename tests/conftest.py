from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures import write_data_dir

try:
    from hypothesis import HealthCheck, settings

    # ci: seeded and bounded, for the unit tier; fuzz: `make fuzz`, long and still reproducible
    _common = {"deadline": None, "derandomize": True, "suppress_health_check": list(HealthCheck)}
    settings.register_profile("ci", max_examples=25, **_common)
    settings.register_profile("fuzz", max_examples=600, **_common)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # hypothesis is a dev dependency; the fuzz tests skip themselves without it
    pass

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_addoption(parser):
    parser.addoption("--tasks-dir", action="append", default=[], help="Extra folder of task files whose checks to run.")


def pytest_configure(config):
    # the parametrised task checks pick these up through the registry, like the CLI does
    extra = [str(Path(d).resolve()) for d in config.getoption("--tasks-dir")]
    if extra:
        current = [p for p in os.environ.get("HARNESS_TASKS_PATH", "").split(os.pathsep) if p]
        os.environ["HARNESS_TASKS_PATH"] = os.pathsep.join([*current, *extra])


@pytest.fixture(autouse=True)
def _no_task_folders_carried_over():
    """A CLI call's --tasks-dir lives in the process (each CLI call sets its own): a test that ran one
    with a broken folder must not leave it to the next test in this worker."""
    yield
    from harness.taskkit.registry import set_extra_dirs

    set_extra_dirs([])


@pytest.fixture
def fixture_data(tmp_path, monkeypatch):
    """HARNESS_DATA_DIR pointing at hand-written rows for every built-in task."""
    root = write_data_dir(tmp_path / "data")
    monkeypatch.setenv("HARNESS_DATA_DIR", str(root))
    return root


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("HARNESS_CACHE", str(d))
    return d


def real_data_dir() -> Path | None:
    value = os.environ.get("HARNESS_DATA_DIR")
    if value and Path(value).is_dir():
        return Path(value)
    return SHARED_DATA if SHARED_DATA.is_dir() else None


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    for item in items:
        if "gpu" in item.keywords and not cuda:
            item.add_marker(pytest.mark.skip(reason="needs CUDA"))
