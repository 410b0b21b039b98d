"""scitldr: a one-sentence summary (TLDR) of a paper's abstract."""

from harness.tasks import Fixtures, HubSource, Task
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
    # hand-written rows for `harness check-task` and the test suite (never copied from the data)
    fixtures=Fixtures(
        rows={
            "train": [
                {
                    "id": "s-tr-1",
                    "title": "Sparse Gates",
                    "abstract": (
                        "We propose sparse gates for mixtures of experts. They cut compute by half at equal accuracy."
                    ),
                    "summaries": ["Sparse gates halve the compute of mixtures of experts."],
                },
                {
                    "id": "s-tr-2",
                    "title": "Noisy Labels",
                    "abstract": "Label noise hurts classifiers. We reweight samples by loss to resist it.",
                    "summaries": ["Loss-based reweighting makes classifiers robust to label noise."],
                },
            ],
            "dev": [
                {
                    "id": "s-dv-1",
                    "title": "Cheap Retrieval",
                    "abstract": (
                        "We index passages with hashed n-grams. Retrieval is ten times faster at a small recall cost."
                    ),
                    "summaries": ["Hashed n-gram indexes make retrieval ten times faster."],
                }
            ],
            "test": [
                {
                    "id": "s-te-1",
                    "title": "Tiny Transformers",
                    "abstract": "We distil a large transformer into a tiny one that runs on phones with little loss.",
                    "summaries": [
                        "A distilled tiny transformer runs on phones.",
                        "Distillation yields phone-sized transformers.",
                    ],
                }
            ],
        },
        wrong="Bananas are yellow fruit.",
    ),
)
