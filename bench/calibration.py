"""The prompt side's label prior, measured: the demo's twitter test items (80, seed 0) with the
`zero_shot` template, labels chosen by log-likelihood raw, length-normalised, and with contextual and
batch calibration, through the harness's own path (harness.experiment.calibration) on one backend.

Batch calibration's prior comes from the demo's 40 validation items, as compare estimates it; the
"transductive" row estimates it on the test items themselves (Zhou et al.'s setting, which a
verdict must not use) and the "mean log-prob" row subtracts each label's mean log-probability over
the test items instead of the log of its mean probability, to show what each choice moves.
Writes results/bench/calibration.json (backend: BENCH_BACKEND, vllm by default).
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import engine_log, write_result

N_TEST, N_VAL = 80, 40


def main() -> None:
    from harness.engines.backends.factory import make_backend
    from harness.engines.models import resolve
    from harness.experiment.calibration import answers
    from harness.experiment.requests import build_requests
    from harness.experiment.variant import Variant
    from harness.taskkit import data
    from harness.taskkit.choice import pick, prior, probabilities, scores
    from harness.taskkit.registry import get_task

    task = get_task("twitter_fin_sentiment")
    items, val = data.test_items(task, N_TEST, 0), data.validation_items(task, N_VAL)
    backend = make_backend(os.environ.get("BENCH_BACKEND", "vllm"), resolve())
    rows = []

    def row(name: str, predictions: list[str], wall: float) -> None:
        right = sum(p == s.target for p, s in zip(predictions, items, strict=True))
        counts = {label: predictions.count(label) for label in task.labels}
        rows.append({"arm": name, "accuracy_pct": 100 * right / len(items), "wall_s": wall, "answers": str(counts)})

    for scoring in ("loglik", "loglik_norm"):
        for calibration in ("none", "contextual", "batch"):
            v = Variant(f"{scoring}/{calibration}", "zero_shot", scoring=scoring, calibration=calibration)
            t0 = time.perf_counter()
            done = answers(task, v, items, (), backend, 0, val)
            row(v.name, [c.text for c in done], time.perf_counter() - t0)
    raw = backend.generate(build_requests(task, Variant("raw", "zero_shot", scoring="loglik"), items, ()))
    values = [scores(c.choice_logprobs, task.labels, "loglik") for c in raw]
    test_prior = prior([probabilities(v) for v in values])
    row("loglik/batch, transductive", [task.labels[pick(v, test_prior)] for v in values], 0.0)
    logs = [[math.log(p) for p in probabilities(v)] for v in values]
    mean_lp = [sum(v[j] for v in logs) / len(logs) for j in range(len(task.labels))]
    shifted = [task.labels[max(range(len(v)), key=lambda j: v[j] - mean_lp[j])] for v in logs]
    row("loglik/mean log-prob, transductive", shifted, 0.0)
    majority = max(sum(s.target == label for s in items) for label in task.labels)
    rows.append({"arm": "the commonest label", "accuracy_pct": 100 * majority / len(items), "wall_s": 0.0, "answers": ""})
    backend.close()
    write_result("calibration", rows, {"task": task.name, "test_items": N_TEST, "validation_items": N_VAL})


if __name__ == "__main__":
    with engine_log("calibration"):
        main()
