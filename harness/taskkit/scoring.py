"""Answer extraction and per-item scoring, and corpus metrics. Pure functions."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from functools import cache

from harness.core.types import Sample
from harness.taskkit.registry import AnswerRule, Task

_ANSWER_IS = re.compile(r"answer\s*(?:is|:)\s*:?\s*", re.IGNORECASE)


def _norm_label(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9]+", " ", text.lower())).strip()


def extract_label(output: str, labels: Sequence[str]) -> str | None:
    """The label an output names: exact (ignoring case, punctuation, '_' vs ' '), else the
    longest label mentioned inside the text, earliest first."""
    norm = {_norm_label(lab): lab for lab in labels}
    text = output.strip()
    m = _ANSWER_IS.search(text)
    candidates = [text[m.end() :], text] if m else [text]
    for cand in candidates:
        first = _norm_label(cand.splitlines()[0] if cand.strip() else "")
        if first in norm:
            return norm[first]
    whole = " " + _norm_label(candidates[0]) + " "
    best: tuple[int, int, str] | None = None
    for key, lab in norm.items():
        pos = whole.find(" " + key + " ")
        if pos >= 0 and (best is None or (pos, -len(key)) < (best[0], best[1])):
            best = (pos, -len(key), lab)
    return best[2] if best else None


_LETTER_PATTERNS = [
    re.compile(r"answer\s*(?:is|:)\s*:?\s*\(?([A-Z])\)?(?![a-zA-Z])", re.IGNORECASE),
    re.compile(r"^\s*\(?([A-Z])\)?(?:[.):]|\s|$)"),
    re.compile(r"\(([A-Z])\)"),
    re.compile(r"\boption\s+([A-Z])\b", re.IGNORECASE),
]


def extract_letter(output: str, letters: Sequence[str], choices: Sequence[str] = ()) -> str | None:
    """A multiple-choice letter: 'The answer is (B)', 'B.', '(C)', or the text of one option."""
    for pattern in _LETTER_PATTERNS:
        for m in pattern.finditer(output):
            letter = m.group(1).upper()
            if letter in letters:
                return letter
    if choices:
        found = extract_label(output, list(choices))
        if found is not None:
            return letters[list(choices).index(found)]
    return None


_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")


def _clean_number(raw: str) -> str | None:
    s = raw.replace(",", "").replace("$", "")
    try:
        value = float(s)
    except ValueError:
        return None
    if value == int(value):
        return str(int(value))
    return f"{value:g}"


def extract_number(output: str) -> str | None:
    """The final numeric answer: the number after the last 'answer is' / '####', else the last
    number in the text. Commas, currency signs and trailing '.00' are dropped."""
    for marker in (re.compile(r"####\s*"), _ANSWER_IS):
        hits = list(marker.finditer(output))
        if hits:
            tail = output[hits[-1].end() :]
            m = _NUMBER.search(tail)
            if m:
                return _clean_number(m.group(0))
    numbers = _NUMBER.findall(output)
    return _clean_number(numbers[-1]) if numbers else None


def extract_summary(output: str) -> str:
    return " ".join(output.strip().split())


def extract_match(output: str, rule: AnswerRule) -> str | None:
    """lm-evaluation-harness's regex filter: the selected match (its first non-empty group),
    stripped; None (lm-eval's "[invalid]") when nothing matches."""
    if rule.pattern is None:
        return output
    matches = re.findall(rule.pattern, output)
    if not matches:
        return None
    try:
        match = matches[rule.group_select]
    except IndexError:
        return None
    if isinstance(match, tuple):
        match = next((m for m in match if m), None)
        if match is None:
            return None
    return str(match).strip()


def normalise_answer(text: str, rule: AnswerRule) -> str:
    """exact_match's options in its own order: ignored regexes, then case, then punctuation."""
    for pattern in rule.regexes_to_ignore:
        text = re.sub(pattern, "", text)
    if rule.ignore_case:
        text = text.lower()
    if rule.ignore_punctuation:
        text = text.translate(str.maketrans("", "", string.punctuation))
    return text


def extract(task: Task, output: str, sample: Sample) -> str | None:
    if task.kind == "short_answer":
        return extract_match(output, task.answer_rule)
    if task.kind == "classification":
        return extract_label(output, task.labels)
    if task.kind == "multiple_choice":
        if not task.labels:  # choices that vary per item, answered by their text
            return extract_label(output, sample.choices)
        return extract_letter(output, task.labels, sample.choices)
    if task.kind == "numeric":
        return extract_number(output)
    return extract_summary(output)


@cache
def _rouge():  # type: ignore[no-untyped-def]
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def rouge(prediction: str, references: Sequence[str]) -> dict[str, float]:
    """ROUGE F-measures against the best-matching reference for each variant of ROUGE."""
    best = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for ref in references:
        scores = _rouge().score(ref, prediction)
        for k in best:
            best[k] = max(best[k], scores[k].fmeasure)
    return best


def score(task: Task, prediction: str | None, sample: Sample) -> dict[str, float]:
    """Per-item scores. `correct` for label/letter/number tasks, ROUGE for summaries."""
    if task.kind == "generation":
        return rouge(prediction or "", sample.golds) if prediction else {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    if task.kind == "numeric":
        gold = _clean_number(sample.target)
        return {"correct": float(prediction is not None and prediction == gold)}
    if task.kind == "short_answer":
        rule = task.answer_rule
        return {
            "correct": float(
                prediction is not None and normalise_answer(prediction, rule) == normalise_answer(sample.target, rule)
            )
        }
    return {"correct": float(prediction == sample.target)}
