"""twitter_fin_sentiment: is a finance-news tweet Bearish, Bullish or Neutral?"""

from harness.tasks import Fixtures, HubSource, Task, stable_id
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
    # hand-written rows for `harness check-task` and the test suite (never copied from the data)
    fixtures=Fixtures(
        rows={
            "train": [
                {"id": "t-tr-1", "text": "$ACME shares slump after guidance cut", "label": "Bearish"},
                {"id": "t-tr-2", "text": "$ACME rallies on record quarterly revenue", "label": "Bullish"},
                {"id": "t-tr-3", "text": "$ACME to present at an investor conference on Tuesday", "label": "Neutral"},
                {"id": "t-tr-4", "text": "Analysts downgrade $WIDG to sell on weak demand", "label": "Bearish"},
                {"id": "t-tr-5", "text": "$WIDG jumps as buyout talks confirmed", "label": "Bullish"},
                {"id": "t-tr-6", "text": "$WIDG schedules its annual shareholder meeting", "label": "Neutral"},
            ],
            "validation": [
                {"id": "t-va-1", "text": "$GADG plunges as the CEO resigns", "label": "Bearish"},
                {"id": "t-va-2", "text": "$GADG names a new chief financial officer", "label": "Neutral"},
            ],
        },
        wrong="Bullish",
    ),
)
