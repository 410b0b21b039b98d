"""medmcqa: four-option medical entrance-exam questions."""

from harness.tasks import Fixtures, HubSource, Task
from harness.types import Sample

LETTERS = ("A", "B", "C", "D")


def to_sample(row: dict) -> Sample:
    choices = tuple(str(c) for c in row["choices"])
    if len(choices) != 4:
        raise ValueError(f"expected 4 choices, got {len(choices)}")
    return Sample(id=str(row["id"]), fields={"question": row["question"]}, target=str(row["answer"]), choices=choices)


def _from_hub(row: dict) -> dict:
    return {
        "id": str(row["id"]),
        "question": row["question"],
        "choices": [row["opa"], row["opb"], row["opc"], row["opd"]],
        "answer": LETTERS[int(row["cop"])],
    }


TASK = Task(
    name="medmcqa",
    version=1,
    domain="medical",
    kind="multiple_choice",
    description="Medical multiple choice (A-D); local splits are an 80/20 split of the official dev set.",
    to_sample=to_sample,
    test_split="test",
    train_split="train",
    metrics=("accuracy",),
    labels=LETTERS,
    hub=HubSource("openlifescienceai/medmcqa", None, {"train": "train", "test": "validation"}, _from_hub),
    max_tokens=16,
    cot_max_tokens=256,
    required_fields=("id", "question", "choices", "answer"),
    input_field="question",
    # hand-written rows for `harness check-task` and the test suite (never copied from the data)
    fixtures=Fixtures(
        rows={
            "train": [
                {
                    "id": "m-tr-1",
                    "question": "Which vitamin deficiency causes scurvy?",
                    "choices": ["Vitamin A", "Vitamin B12", "Vitamin C", "Vitamin D"],
                    "answer": "C",
                },
                {
                    "id": "m-tr-2",
                    "question": "The largest bone of the human body is the",
                    "choices": ["Femur", "Tibia", "Humerus", "Radius"],
                    "answer": "A",
                },
                {
                    "id": "m-tr-3",
                    "question": "Insulin is secreted by which cells?",
                    "choices": ["Alpha cells", "Beta cells", "Delta cells", "Acinar cells"],
                    "answer": "B",
                },
            ],
            "test": [
                {
                    "id": "m-te-1",
                    "question": "Which organ produces bile?",
                    "choices": ["Pancreas", "Spleen", "Gall bladder", "Liver"],
                    "answer": "D",
                }
            ],
        },
        wrong="A",
    ),
)
