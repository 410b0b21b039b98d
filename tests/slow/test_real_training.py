"""A real LoRA run on real data: the loss falls and the manifest tells the truth."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_training_loss_falls_on_real_data(trained_adapter):
    m = trained_adapter.manifest
    losses = [x["loss"] for x in m["loss_curve"]]
    assert m["train_rows"] == 64 and m["val_rows"] == 8
    first, last = sum(losses[:2]) / 2, sum(losses[-2:]) / 2
    assert last < 0.6 * first, losses
    assert m["final_val_loss"] is not None and m["final_val_loss"] < losses[0]
    assert m["tokens_per_s"] > 20


def test_adapter_validation_catches_wrong_base(trained_adapter, tmp_path):
    import json
    import shutil

    from harness.core.errors import UserError
    from harness.engines.adapters import validate
    from tests.tiny_model import make_model_dir

    other = make_model_dir(tmp_path / "tiny")
    with pytest.raises(UserError, match="another base model"):
        validate(trained_adapter.path, other)
    corrupt = tmp_path / "corrupt"
    shutil.copytree(trained_adapter.path, corrupt)
    (corrupt / "adapter_config.json").write_text("{broken")
    with pytest.raises(UserError, match="corrupt"):
        validate(corrupt, other)
    assert json.loads((trained_adapter.path / "adapter_config.json").read_text())["r"] == 8
