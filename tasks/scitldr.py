"""scitldr: a one-sentence summary (TLDR) of a paper's abstract."""

from harness.tasks import HubSource, Task
from harness.types import Sample


def to_sample(row: dict) -> Sample:
    summaries = tuple(str(s) for s in row["summaries"] if str(s).strip())
    if not summaries:
        raise ValueError("no reference summary")
    return Sample(
        id=str(row["id"]),
        fields={"title": row.get("title", ""), "abstract": row["abstract"]},
        target=summaries[0],
        references=summaries,
    )


def _from_hub(row: dict) -> dict:
    return {
        "id": str(row.get("paper_id", "")),
        "title": "",
        "abstract": " ".join(row["source"]),
        "summaries": list(row["target"]),
    }


TASK = Task(
    name="scitldr",
    version=1,
    domain="science summarisation",
    kind="generation",
    description="One-sentence summaries of paper abstracts, ROUGE against every reference.",
    to_sample=to_sample,
    test_split="test",
    train_split="train",
    val_split="dev",  # the official dev split: every selection is made on it
    metrics=("rougeL", "rouge1", "rouge2"),
    hub=HubSource("allenai/scitldr", "Abstract", {"train": "train", "dev": "validation", "test": "test"}, _from_hub),
    max_tokens=64,
    required_fields=("id", "abstract", "summaries"),
    input_field="abstract",
)
