"""lm-evaluation-harness parity on a multiple-choice task with per-document choices: the same YAML
imported by `harness import-lm-eval` and run by lm-eval itself (installed outside the project's
venv; skipped where it is absent), both at float32 with the chat template, on the same documents:
accuracy (acc, acc_norm) equal within a point and the chosen choice the same for >= 99% of items."""

from __future__ import annotations

import json
import os

import pytest

pytestmark = pytest.mark.slow
# before the fixtures: skipped where lm-eval is absent without pulling the model first
evaluator = pytest.importorskip("lm_eval.evaluator")

N_DOCS = 40
YAML = """task: medmcqa_mc
dataset_path: json
dataset_kwargs:
  data_files:
    train: DATA/medmcqa/train.jsonl
    test: DATA/medmcqa/test.jsonl
output_type: multiple_choice
training_split: train
test_split: test
doc_to_text: "Question: {{question}}\\nAnswer:"
doc_to_target: "{{['A', 'B', 'C', 'D'].index(answer)}}"
doc_to_choice: "{{choices}}"
metric_list:
  - metric: acc
  - metric: acc_norm
"""


def test_acc_and_acc_norm_match_lm_eval_item_by_item(real_data, model_dir, tmp_path, monkeypatch):
    from harness.authoring import lmeval_import
    from harness.engines.backends.hf import HFBackend
    from harness.experiment.calibration import answers
    from harness.experiment.variant import Variant
    from harness.taskkit.choice import pick, scores
    from harness.taskkit.registry import get_task, registry

    data = os.environ["HARNESS_DATA_DIR"]
    (tmp_path / "mc").mkdir()
    yaml_path = tmp_path / "mc" / "medmcqa_mc.yaml"
    yaml_path.write_text(YAML.replace("DATA", data))
    lmeval_import.write(lmeval_import.convert(yaml_path), tmp_path / "out")
    monkeypatch.setenv("HARNESS_TASKS_PATH", str(tmp_path / "out" / "tasks"))
    registry.cache_clear()
    task = get_task("medmcqa_mc")
    with open(f"{data}/medmcqa/test.jsonl") as f:
        docs = [json.loads(x) for x in f][:N_DOCS]
    items = [task.to_sample(d) for d in docs]
    backend = HFBackend(model_dir)
    done = answers(task, Variant("loglik", "zero_shot", scoring="loglik"), items, (), backend, 0)
    backend.close()
    pairs = zip(done, items, strict=True)
    ours = [(c.text, s.choices[pick(scores(c.choice_logprobs, s.choices, "loglik_norm"))]) for c, s in pairs]

    from lm_eval.tasks import TaskManager

    out = evaluator.simple_evaluate(
        model="hf", model_args=f"pretrained={model_dir},dtype=float32", tasks=["medmcqa_mc"], limit=N_DOCS,
        batch_size=8, device="cpu", apply_chat_template=True, log_samples=True,
        task_manager=TaskManager(include_path=str(tmp_path / "mc")),
    )  # fmt: skip
    theirs = {}
    for r in out["samples"]["medmcqa_mc"]:
        lls = [float(x[0]) for x in r["filtered_resps"]]
        ch = docs[int(r["doc_id"])]["choices"]
        norm = [ll / len(c) for ll, c in zip(lls, ch, strict=True)]
        theirs[int(r["doc_id"])] = (
            ch[max(range(4), key=lambda j: (lls[j], -j))],
            ch[max(range(4), key=lambda j: (norm[j], -j))],
        )
    agree = [sum(ours[i][k] == theirs[i][k] for i in range(N_DOCS)) / N_DOCS for k in (0, 1)]
    assert min(agree) >= 0.99, agree
    acc = [sum(ours[i][k] == items[i].target for i in range(N_DOCS)) / N_DOCS for k in (0, 1)]
    metrics = out["results"]["medmcqa_mc"]
    assert abs(acc[0] - metrics["acc,none"]) <= 0.01 and abs(acc[1] - metrics["acc_norm,none"]) <= 0.01
    registry.cache_clear()
