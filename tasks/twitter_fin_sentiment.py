"""twitter_fin_sentiment: is a finance-news tweet Bearish, Bullish or Neutral?"""

from harness.tasks import HubSource, Task, stable_id
from harness.types import Sample

LABELS = ("Bearish", "Bullish", "Neutral")


def to_sample(row: dict) -> Sample:
    return Sample(id=str(row["id"]), fields={"text": row["text"]}, target=str(row["label"]))


def _from_hub(row: dict) -> dict:
    return {"id": stable_id("hub", row["text"]), "text": row["text"], "label": LABELS[row["label"]]}


TASK = Task(
    name="twitter_fin_sentiment",
    version=1,
    domain="finance",
    kind="classification",
    description="Sentiment of a finance-news tweet (the official validation split is the test set).",
    to_sample=to_sample,
    test_split="validation",
    train_split="train",
    metrics=("accuracy", "macro_f1"),
    labels=LABELS,
    hub=HubSource(
        "zeroshot/twitter-financial-news-sentiment", None, {"train": "train", "validation": "validation"}, _from_hub
    ),
    max_tokens=24,  # room for a chatty "The sentiment is ..." before the label
    required_fields=("id", "text", "label"),
    adapter_template="short",
)
