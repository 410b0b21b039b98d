"""gsm8k: grade-school math word problems with a numeric final answer."""

import re

from harness.tasks import Fixtures, HubSource, Task, stable_id
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
    # hand-written rows for `harness check-task` and the test suite (never copied from the data)
    fixtures=Fixtures(
        rows={
            "train": [
                {
                    "id": "g-tr-1",
                    "question": "Tom has 3 boxes of 4 pens. He gives away 5 pens. How many pens are left?",
                    "answer": "7",
                    "rationale": "Tom has 3 * 4 = <<3*4=12>>12 pens.\n12 - 5 = <<12-5=7>>7 pens are left.",
                },
                {
                    "id": "g-tr-2",
                    "question": "A shirt costs $1,200 cents. How many dollars is that?",
                    "answer": "12",
                    "rationale": "100 cents make a dollar, so 1200 / 100 = <<1200/100=12>>12 dollars.",
                },
            ],
            "test": [
                {
                    "id": "g-te-1",
                    "question": "Ann reads 15 pages a day for 4 days. How many pages does she read?",
                    "answer": "60",
                    "rationale": "15 * 4 = <<15*4=60>>60 pages.",
                }
            ],
        },
        wrong="The answer is 61.",
    ),
)
