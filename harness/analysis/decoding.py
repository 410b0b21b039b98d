"""How an arm turns the model's output into an answer, in words for the report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DECODING_WORDS = {
    "free": "free text",
    "constrained": "constrained decoding among the labels",
    "loglik": "the likeliest label by log-likelihood, uncalibrated",
    "loglik_norm": "the likeliest label by length-normalised log-likelihood, uncalibrated",
}
CALIBRATION_WORDS = {
    "contextual": "contextual calibration (the prior from content-free inputs through its own prompt)",
    "batch": "batch calibration (the prior from the validation items, never test)",
}


def decoding_words(decoding: str) -> str:
    if decoding in DECODING_WORDS:
        return DECODING_WORDS[decoding]
    scoring, _, calibration = decoding.rpartition("_")
    base = DECODING_WORDS.get(scoring, scoring).removesuffix(", uncalibrated")
    return f"{base}, with {CALIBRATION_WORDS.get(calibration, calibration + ' calibration')}"


def decoding_sentence(info: Mapping[str, Any], adapters: Mapping[str, Any], prompt: str, adapter: str | None) -> str:
    """How the chosen arms turn the model's output into an answer, where either chooses a label
    by log-likelihood (a reader must know a prompt's score was calibrated)."""
    entries = {str(v.get("name")): v for v in info.get("variants") or () if isinstance(v, Mapping)}
    mine = entries.get(prompt, {})
    scoring, calibration = str(mine.get("scoring", "generate")), str(mine.get("calibration", "none"))
    said = {prompt: "free"}
    if scoring != "generate":
        said[prompt] = scoring if calibration == "none" else f"{scoring}_{calibration}"
    elif mine.get("constrained"):
        said[prompt] = "constrained"
    if adapter:
        facts = adapters.get(adapter) or {}
        said[adapter] = decoding_of_facts(facts)
    if not any(d.startswith("loglik") for d in said.values()):
        return ""
    return " How they answer: " + "; ".join(f"{name}, {decoding_words(d)}" for name, d in said.items()) + "."


def decoding_of_facts(facts: Mapping[str, Any]) -> str:
    """An arm's decoding as its manifest facts state it (runs before log-likelihood choice say
    only whether it was constrained)."""
    return str(facts.get("decoding") or ("constrained" if facts.get("constrained") else "free"))
