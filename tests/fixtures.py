"""Hand-written fixture rows for every built-in task (never copied from ../shared/data)."""

from __future__ import annotations

import json
from pathlib import Path

ROWS: dict[str, dict[str, list[dict]]] = {
    "banking77": {
        "train": [
            {"id": "b-tr-1", "text": "Where is the card you posted to me last month?", "label": "card_arrival"},
            {"id": "b-tr-2", "text": "My plastic card still has not turned up in the mail.", "label": "card_arrival"},
            {"id": "b-tr-3", "text": "Forgot the code for the app, how do I reset it?", "label": "passcode_forgotten"},
            {"id": "b-tr-4", "text": "I can not remember my passcode for logging in.", "label": "passcode_forgotten"},
            {"id": "b-tr-5", "text": "The machine kept my card after I typed the PIN.", "label": "card_swallowed"},
            {"id": "b-tr-6", "text": "An ATM swallowed my debit card this morning.", "label": "card_swallowed"},
        ],
        "test": [
            {"id": "b-te-1", "text": "Has my new card been sent out yet?", "label": "card_arrival"},
            {"id": "b-te-2", "text": "Which button resets a forgotten passcode?", "label": "passcode_forgotten"},
        ],
    },
    "twitter_fin_sentiment": {
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
    "contract_nli": {
        "dev": [
            {
                "id": "c-dv-1",
                "premise": "The Recipient shall return all documents upon request.",
                "hypothesis": "Receiving Party shall destroy or return some Confidential Information upon the termination.",
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
            },
        ],
    },
    "medmcqa": {
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
            },
        ],
    },
    "gsm8k": {
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
            },
        ],
    },
    "scitldr": {
        "train": [
            {
                "id": "s-tr-1",
                "title": "Sparse Gates",
                "abstract": "We propose sparse gates for mixtures of experts. They cut compute by half at equal accuracy.",
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
                "abstract": "We index passages with hashed n-grams. Retrieval is ten times faster at a small recall cost.",
                "summaries": ["Hashed n-gram indexes make retrieval ten times faster."],
            },
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
            },
        ],
    },
}

WRONG = {
    "banking77": "card_swallowed",
    "twitter_fin_sentiment": "Bullish",
    "contract_nli": "Contradiction",
    "medmcqa": "A",
    "gsm8k": "The answer is 61.",
    "scitldr": "Bananas are yellow fruit.",
}


def write_data_dir(root: Path, tasks: list[str] | None = None) -> Path:
    for task, splits in ROWS.items():
        if tasks and task not in tasks:
            continue
        (root / task).mkdir(parents=True, exist_ok=True)
        for split, rows in splits.items():
            (root / task / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root
