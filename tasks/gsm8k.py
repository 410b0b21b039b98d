"""gsm8k: grade-school math word problems with a numeric final answer."""

import re

from harness.tasks import HubSource, Task, stable_id
from harness.types import Sample


def to_sample(row: dict) -> Sample:
    rationale = re.sub(r"<<[^>]*>>", "", str(row.get("rationale") or ""))  # drop calculator annotations
    return Sample(
        id=str(row["id"]),
        fields={"question": row["question"]},
        target=str(row["answer"]).strip(),
        rationale=rationale or None,
    )


def _from_hub(row: dict) -> dict:
    rationale, _, answer = row["answer"].rpartition("####")
    return {
        "id": stable_id("hub", row["question"]),
        "question": row["question"],
        "answer": answer.strip().replace(",", ""),
        "rationale": rationale.strip(),
    }


TASK = Task(
    name="gsm8k",
    version=1,
    domain="math",
    kind="numeric",
    description="Math word problems; the final number is compared exactly.",
    to_sample=to_sample,
    test_split="test",
    train_split="train",
    metrics=("exact_match",),
    hub=HubSource("openai/gsm8k", "main", {"train": "train", "test": "test"}, _from_hub),
    max_tokens=16,
    cot_max_tokens=320,
    required_fields=("id", "question", "answer"),
    input_field="question",
    adapter_template="cot",
)
