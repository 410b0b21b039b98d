"""contract_nli: does an NDA clause entail or contradict a hypothesis about the contract?"""

from harness.tasks import Fixtures, Task
from harness.types import Sample

LABELS = ("Entailment", "Contradiction")


def to_sample(row: dict) -> Sample:
    key = str(row.get("hypothesis_key", ""))
    rid = str(row["id"])
    # ids are <contract>-<hypothesis_key>: the contract is what a document's hypotheses share
    contract = rid[: -len(key) - 1] if key and rid.endswith(f"-{key}") else rid
    return Sample(
        id=rid,
        fields={"premise": row["premise"], "hypothesis": row["hypothesis"], "hypothesis_key": key, "contract": contract},
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
    cluster_field="contract",
    # hand-written rows for `harness check-task` and the test suite (never copied from the data)
    fixtures=Fixtures(
        rows={
            "dev": [
                {
                    "id": "c-dv-1",
                    "premise": "The Recipient shall return all documents upon request.",
                    "hypothesis": (
                        "Receiving Party shall destroy or return some Confidential Information upon the termination."
                    ),
                    "hypothesis_key": "nda-return",
                    "label": "Entailment",
                },
                {
                    "id": "c-dv-2",
                    "premise": "Nothing herein obliges either party to keep the agreement itself secret.",
                    "hypothesis": "Receiving Party shall not disclose the fact that Agreement was agreed.",
                    "hypothesis_key": "nda-secret",
                    "label": "Contradiction",
                },
                {
                    "id": "c-dv-3",
                    "premise": "This Agreement shall remain in force for three years.",
                    "hypothesis": "The obligations survive for a fixed term.",
                    "hypothesis_key": "nda-term",
                    "label": "Entailment",
                },
            ],
            "test": [
                {
                    "id": "c-te-1",
                    "premise": "The Recipient may share information with its lawyers.",
                    "hypothesis": "Receiving Party may share some Confidential Information with its advisers.",
                    "hypothesis_key": "nda-share",
                    "label": "Entailment",
                }
            ],
        },
        wrong="Contradiction",
    ),
)
