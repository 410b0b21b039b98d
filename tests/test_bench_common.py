"""bench/common.py: where a benchmark's figures land and what they say about the machine."""

import json


def test_a_capped_run_writes_beside_the_machines_own_figures(tmp_path, monkeypatch):
    from bench.common import write_result
    from harness.engines.hardware import ISA_CAPS

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


def test_prompt_work_counts_the_shared_prefixs_partial_block_once_per_prompt():
    from bench.warm_reeval import prompt_work, shared_prefix

    shared = list(range(70))  # 2 whole blocks of 32 cached, a 6-token tail computed again by each prompt
    ids = [[*shared, 100, 101, 102], [*shared, 200], [*shared, 300, 301]]
    assert shared_prefix(ids) == 70
    assert prompt_work(ids, 32) == {"shared_prefix": 70, "tail": 6, "computed": 3 * 6 + 3 + 1 + 2}
    # a prompt that is all prefix, and prompts that differ from the first token on
    assert shared_prefix([[1, 2, 3], [1, 2, 3, 4]]) == 3
    assert prompt_work([[1, 2], [3, 4, 5]], 32) == {"shared_prefix": 0, "tail": 0, "computed": 5}


def test_tree_cpu_counts_the_cpu_time_of_descendants_running_and_reaped():
    import subprocess
    import sys

    from bench.warm_reeval import tree_cpu_s

    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass"
    # an idle parent whose child burns 0.6 s of CPU; the parent says when it has reaped the child
    code = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {busy!r}])\nprint('reaped', flush=True)\ninput()"
    parent = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline() == "reaped\n"
        assert 0.6 <= tree_cpu_s(parent.pid) < 5  # the child is gone: only the parent's count of it is left
    finally:
        parent.communicate("\n", timeout=30)
