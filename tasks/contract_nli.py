"""contract_nli: does an NDA clause entail or contradict a hypothesis about the contract?"""

from harness.tasks import Task
from harness.types import Sample

LABELS = ("Entailment", "Contradiction")


def to_sample(row: dict) -> Sample:
    return Sample(
        id=str(row["id"]),
        fields={"premise": row["premise"], "hypothesis": row["hypothesis"], "hypothesis_key": row["hypothesis_key"]},
        target=str(row["label"]),
    )


TASK = Task(
    name="contract_nli",
    version=1,
    domain="legal",
    kind="classification",
    description="Clause-level NLI on non-disclosure agreements; imbalanced, so macro-F1 leads.",
    to_sample=to_sample,
    test_split="test",
    train_split="dev",  # the official dev documents are the training pool
    metrics=("macro_f1", "accuracy"),
    labels=LABELS,
    # The hub copy (kiddothe2b/contract-nli) is document-level and unverified: local data only.
    hub=None,
    max_tokens=24,  # room for a chatty "The answer is ..." before the label
    required_fields=("id", "premise", "hypothesis", "label"),
    input_field="premise",
)
