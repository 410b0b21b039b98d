"""CUDA checks (skipped without a GPU): the recipe trains in bf16 on the GPU, the loss falls,
the adapter is saved complete, and the manifest names the device."""

from __future__ import annotations

import pytest

from harness.train.config import TrainConfig
from harness.train.recipe import torch_dtype, train
from tests.tiny_model import make_model_dir

pytestmark = pytest.mark.gpu


def test_recipe_trains_in_bf16_on_cuda(tmp_path, fixture_data, cache_dir):
    import torch

    model = make_model_dir(tmp_path / "tiny")
    cfg = TrainConfig(
        task="twitter_fin_sentiment",
        model=str(model),
        train_size=6,
        val_fraction=0.0,
        epochs=20,
        batch_size=2,
        lr=5e-3,
        rank=4,
        alpha=8,
    )
    assert torch_dtype(cfg) == torch.bfloat16  # precision "auto" on CUDA
    result = train(cfg, progress=False)
    m = result.manifest
    assert "NVIDIA" in m["device"] or "H100" in m["device"] or "H200" in m["device"]
    losses = [x["loss"] for x in m["loss_curve"]]  # logged every 10 steps on CUDA: 60 steps, 6 points
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert (result.path / "adapter_model.safetensors").stat().st_size > 0
