"""What many test modules share: running the CLI in this process, snapshotting a results folder,
writing a small stored run and a task folder of one's own."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from harness.analysis.records import TaskSummary
from harness.analysis.summary import find
from harness.analysis.verdict import task_summary
from harness.taskkit.registry import registry


def run_cli(args, capsys, monkeypatch):
    from harness import cli

    monkeypatch.setattr(sys, "argv", ["harness", *args])
    registry.cache_clear()
    with pytest.raises(SystemExit) as exc:
        cli.main()
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def make_run(root: Path, name: str, items=("i1", "i2"), samples: str | None = None, gold: str = "Bullish") -> Path:
    run = root / name
    run.mkdir(parents=True)
    manifest = {
        "run_id": name,
        "model": "m",
        "backend": "fake",
        "seed": 0,
        "prices": {},
        "tasks": {
            "twitter_fin_sentiment": {
                "metrics": ["accuracy"],
                "labels": ["Bearish", "Bullish", "Neutral"],
                "kind": "classification",
                "adapters": {},
            }
        },
    }
    (run / "manifest.json").write_text(json.dumps(manifest))
    if samples is None:
        samples = "".join(
            json.dumps(
                {
                    "task": "twitter_fin_sentiment",
                    "item": i,
                    "variant": "zero_shot",
                    "prediction": "Bullish",
                    "gold": gold,
                    "scores": {"correct": 1.0},
                    "prompt_tokens": 10,
                    "completion_tokens": 1,
                    "latency_s": 0.01,
                }
            )
            + "\n"
            for i in items
        )
    (run / "samples.jsonl").write_text(samples)
    return run


def task_dir(tmp: Path, template: str, labels: str = "('yes', 'no')") -> str:
    (tmp / "extra" / "tasks").mkdir(parents=True)
    (tmp / "extra" / "prompts" / "toy").mkdir(parents=True)
    (tmp / "extra" / "tasks" / "toy.py").write_text(
        "from harness.tasks import Task\nfrom harness.types import Sample\n"
        "TASK = Task(name='toy', version=1, domain='toy', kind='classification', description='',\n"
        " to_sample=lambda r: Sample(id=r['id'], fields={'text': r['text']}, target=r['label']),\n"
        f" test_split='test', train_split='train', metrics=('accuracy',), labels={labels})\n"
    )
    (tmp / "extra" / "prompts" / "toy" / "zero_shot.j2").write_text(template)
    (tmp / "data" / "toy").mkdir()
    (tmp / "data" / "toy" / "test.jsonl").write_text('{"id": "t1", "text": "hello", "label": "yes"}\n')
    return str(tmp / "extra" / "tasks")


def summarise_task(*args, **kwargs) -> TaskSummary:
    """A task's summary from records, as a stored run's report makes it: find's numbers, then the words."""
    return task_summary(find(*args, **kwargs))
