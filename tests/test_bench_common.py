"""bench/common.py: where a benchmark's figures land and what they say about the machine."""

import json


def test_a_capped_run_writes_beside_the_machines_own_figures(tmp_path, monkeypatch):
    from bench.common import write_result
    from harness.hardware import ISA_CAPS

    for name in ISA_CAPS:
        monkeypatch.delenv(name, raising=False)
    plain = write_result("train", [{"path": "recipe", "tokens_per_s": 207.1}], out_dir=str(tmp_path))
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.setenv("MKL_ENABLE_INSTRUCTIONS", "AVX2")
    capped = write_result("train", [{"path": "recipe", "tokens_per_s": 150.0}], out_dir=str(tmp_path))
    assert (plain.name, capped.name) == ("train.json", "train_capped_avx2.json")
    assert json.loads(plain.read_text())["rows"][0]["tokens_per_s"] == 207.1  # not overwritten
    written = json.loads(capped.read_text())
    assert written["hardware"]["isa_caps"] == {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
