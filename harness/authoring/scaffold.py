"""`harness new-task NAME --data DIR`: a task file and a zero-shot template written from the data's
own fields and labels. A scaffold to read and edit: every choice it made is in the files it writes."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import UserError
from harness.taskkit.data import read_jsonl
from harness.taskkit.registry import file_for

TARGET_NAMES = ("label", "answer", "target", "output", "summary", "summaries", "category", "class", "intent", "sentiment")
TEST_SPLITS = ("test", "validation", "dev")
VAL_SPLITS = ("validation", "dev")
MAX_LABELS = 100  # without labels.json or --kind: more distinct string answers than this read as free text
SCAFFOLD_KINDS = ("classification", "multiple_choice", "numeric", "generation")
LETTERS = "ABCDEFGHIJ"
NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Inferred:
    """What the data says about a task; the files are written from this alone."""

    name: str
    splits: dict[str, int]  # split -> rows
    test_split: str
    train_split: str
    val_split: str | None
    id_field: str | None
    target: str
    kind: str
    labels: tuple[str, ...]
    input_field: str
    fields: tuple[str, ...]  # what templates see, besides id, choices and labels
    choices_field: str | None
    references: bool  # the target is a list of reference strings


def read_rows(path: Path) -> list[dict[str, Any]]:
    rows = [row for _, row in read_jsonl(path)]
    if not rows:
        raise UserError(f"{path} is empty")
    return rows


def infer(
    name: str, data: Path, target: str | None = None, input_field: str | None = None, kind: str | None = None
) -> Inferred:
    if not NAME.match(name):
        raise UserError(f"task name {name!r} must be lower-case letters, digits and '_', starting with a letter")
    if kind is not None and kind not in SCAFFOLD_KINDS:
        raise UserError(f"--kind must be one of {', '.join(SCAFFOLD_KINDS)}, got {kind!r}")
    if not data.is_dir():
        raise UserError(f"--data {data} is not a folder of <split>.jsonl files")
    files = {p.stem: p for p in sorted(data.glob("*.jsonl"))}
    if "train" not in files:
        raise UserError(f"{data} has no train.jsonl (splits found: {', '.join(files) or 'none'}); adapters train on it")
    test_split = next((s for s in TEST_SPLITS if s in files), None)
    if test_split is None:
        raise UserError(f"{data} has no test.jsonl, validation.jsonl or dev.jsonl to evaluate on")
    val_split = next((s for s in VAL_SPLITS if s in files and s != test_split), None)
    rows = {s: read_rows(p) for s, p in files.items() if s in {"train", test_split, val_split}}
    train = rows["train"]
    keys = list(dict.fromkeys(k for r in train[:200] for k in r))
    target = target or next((k for k in TARGET_NAMES if k in keys), None)
    if target is None or target not in keys:
        raise UserError(f"cannot tell which field is the answer (fields: {', '.join(keys)}); name it with --target FIELD")
    values = [r.get(target) for r in train]
    id_field = "id" if "id" in keys else None
    text_fields = [k for k in keys if k not in (target, id_field) and all(isinstance(r.get(k), str) for r in train[:200])]
    list_fields = [k for k in keys if k not in (target, id_field) and all(isinstance(r.get(k), list) for r in train[:200])]
    kind, labels, choices_field, references = _kind(values, list_fields, data, kind)
    if input_field is None:
        if not text_fields:
            raise UserError(f"no text field besides the answer (fields: {', '.join(keys)}); name one with --input FIELD")
        input_field = "text" if "text" in text_fields else max(text_fields, key=lambda k: _mean_len(train, k))
    elif input_field not in keys:
        raise UserError(f"--input {input_field!r} is not a field of {data / 'train.jsonl'} (fields: {', '.join(keys)})")
    fields = tuple(k for k in keys if k not in (target, id_field))
    return Inferred(
        name, {s: len(r) for s, r in rows.items()}, test_split, "train", val_split, id_field, target, kind,
        labels, input_field, fields, choices_field, references,
    )  # fmt: skip


def _mean_len(rows: list[dict[str, Any]], key: str) -> float:
    return sum(len(str(r.get(key, ""))) for r in rows[:200]) / max(1, min(len(rows), 200))


def _kind(
    values: list[Any], list_fields: list[str], data: Path, kind: str | None = None
) -> tuple[str, tuple[str, ...], str | None, bool]:
    """(kind, labels, choices field, references) from the answer's values. What the researcher said
    wins over any guess: --kind, then a labels.json listing the label set (a 151-intent set is a
    classification task, however many labels it has)."""
    as_text = [str(v) for v in values]
    listed = _labels_file(data, as_text)
    kind = kind or ("classification" if listed is not None else None)
    references = all(isinstance(v, list) and v and all(isinstance(x, str) for x in v) for v in values)
    if kind == "classification":
        if references:
            raise UserError("--kind classification: the answers are lists of strings, not one label each")
        return "classification", listed or tuple(sorted(set(as_text))), None, False
    if kind == "multiple_choice":
        if not list_fields or not all(v in LETTERS for v in as_text):
            raise UserError(
                f"--kind multiple_choice needs a list field of options and answers that are letters {LETTERS[0]}-"
                f"{LETTERS[-1]}"
            )
        return "multiple_choice", _letters(as_text), list_fields[0], False
    if kind in ("numeric", "generation"):
        return kind, (), None, references and kind == "generation"
    if references:
        return "generation", (), None, True
    if all(isinstance(v, str) and v in LETTERS for v in values) and list_fields:
        return "multiple_choice", _letters(as_text), list_fields[0], False
    numbers = all((isinstance(v, int | float) and not isinstance(v, bool)) or _numeric(str(v)) for v in values)
    if numbers and len(set(as_text)) > 20:  # a few distinct numbers are labels (0/1), many are answers
        return "numeric", (), None, False
    distinct = Counter(as_text)
    if len(distinct) <= MAX_LABELS and len(distinct) < max(2, len(values) // 2):
        return "classification", tuple(sorted(distinct)), None, False
    return "generation", (), None, False


def _letters(answers: list[str]) -> tuple[str, ...]:
    n = max(LETTERS.index(v) for v in answers) + 1
    return tuple(LETTERS[: max(n, 2)])


def _labels_file(data: Path, answers: list[str]) -> tuple[str, ...] | None:
    """DATA/labels.json: the label set in its order, which must cover every answer; None without one."""
    path = data / "labels.json"
    if not path.is_file():
        return None
    try:
        given = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise UserError(f"{path} is not JSON ({getattr(exc, 'msg', exc)}); it should list the labels") from None
    if not isinstance(given, list) or not given or not all(isinstance(x, str) and x for x in given):
        raise UserError(f"{path} must be a JSON list of label strings")
    if len(set(given)) != len(given):
        raise UserError(f"{path} lists a label twice")
    missing = sorted(set(answers) - set(given))
    if missing:
        raise UserError(f"{path} leaves out {len(missing)} label(s) the training data uses, e.g. {missing[0]!r}")
    return tuple(given)


def _numeric(text: str) -> bool:
    return bool(re.fullmatch(r"-?\d[\d,]*(\.\d+)?", text.strip()))


def task_source(t: Inferred) -> str:
    """The task file: plain code, each setting where a researcher would look for it."""
    sample_id = f'str(row["{t.id_field}"])' if t.id_field else 'stable_id("row", json.dumps(row, sort_keys=True))'
    target = f'row["{t.target}"][0]' if t.references else f'str(row["{t.target}"])'
    extra = ""
    if t.references:
        extra += f'\n        references=tuple(row["{t.target}"]),'
    if t.choices_field:
        extra += f'\n        choices=tuple(row["{t.choices_field}"]),'
    metrics = {
        "classification": ("accuracy", "macro_f1"),
        "multiple_choice": ("accuracy",),
        "numeric": ("exact_match",),
        "generation": ("rougeL", "rouge1", "rouge2"),
    }[t.kind]
    required = tuple(x for x in (t.id_field, t.input_field, t.target, t.choices_field) if x)
    imports = "import json\n\n" if not t.id_field else ""
    stable = ", stable_id" if not t.id_field else ""
    labels = "\n    labels=LABELS," if t.labels else ""
    label_const = f"LABELS = {tuple_source(t.labels)}\n" if t.labels else ""
    val = f'\n    val_split="{t.val_split}",' if t.val_split else ""
    sizes = ", ".join(f"{s} {n:,}" for s, n in t.splits.items())
    return f'''"""{t.name}: written by `harness new-task` from the data ({sizes} rows); edit freely."""

{imports}from harness.tasks import Fixtures, Task{stable}
from harness.types import Sample

FIELDS = {tuple_source(t.fields)}  # what templates see as variables (besides id, choices and labels)
{label_const}

def to_sample(row: dict) -> Sample:
    return Sample(
        id={sample_id},
        fields={{k: row.get(k) for k in FIELDS}},
        target={target},{extra}
    )


TASK = Task(
    name="{t.name}",
    version=1,
    domain="",  # e.g. "finance"
    kind="{t.kind}",  # classification | multiple_choice | numeric | generation | short_answer
    description="",  # one line for `harness tasks` and the report
    to_sample=to_sample,
    test_split="{t.test_split}",
    train_split="{t.train_split}",{val}
    metrics={tuple_source(metrics)},  # the first one decides the verdict{labels}
    required_fields={tuple_source(required, 4)},
    input_field="{t.input_field}",  # what 'similar' shot selection, the validation carve-out and overlap checks compare
    adapter_template="zero_shot",  # the prompt an adapter is trained and served with
    # Hand-written rows for `harness check-task` and the test suite. These are placeholders: replace
    # them with a few short rows you write yourself (never copy rows from the data).
    fixtures=Fixtures(
        rows={json_source(_fixture_rows(t), 8)},
        wrong={json.dumps(_wrong(t), ensure_ascii=False)},
    ),
)
'''


def tuple_source(items: tuple[str, ...], indent: int = 0) -> str:
    """A tuple literal on one line, or one item a line when that would be long (77 intents)."""
    parts = [json.dumps(x, ensure_ascii=False) for x in items]
    inner = ", ".join(parts)
    if len(inner) > 90:
        pad = " " * (indent + 4)
        return "(\n" + "".join(f"{pad}{p},\n" for p in parts) + " " * indent + ")"
    return f"({inner},)" if len(items) == 1 else f"({inner})"


def json_source(value: Any, indent: int) -> str:
    """JSON of strings, lists and objects is Python too; indented to sit inside the Task call."""
    return json.dumps(value, indent=4, ensure_ascii=False).replace("\n", "\n" + " " * indent)


def _placeholder(t: Inferred, i: int, answer: Any) -> dict[str, Any]:
    row: dict[str, Any] = {}
    if t.id_field:
        row[t.id_field] = f"fx-{i}"
    for k in t.fields:
        row[k] = [f"option {c}" for c in "abcd"] if k == t.choices_field else f"example {k} {i}"
    row[t.target] = answer
    return row


def _answers(t: Inferred) -> list[Any]:
    if t.references:
        return [["a short reference answer"], ["another reference"], ["a third reference"]]
    if t.labels:
        return [t.labels[i % len(t.labels)] for i in range(3)]
    if t.kind == "numeric":
        return ["12", "7", "40"]
    return ["a short reference answer", "another reference", "a third reference"]


def _fixture_rows(t: Inferred) -> dict[str, list[dict[str, Any]]]:
    answers = _answers(t)
    return {
        t.train_split: [_placeholder(t, i, a) for i, a in enumerate(answers[:2], 1)],
        t.test_split: [_placeholder(t, 3, answers[2])],
    }


def _wrong(t: Inferred) -> str:
    gold = _answers(t)[2]
    if t.labels:
        return next(lab for lab in t.labels if lab != gold)
    return "999" if t.kind == "numeric" else "bananas are yellow"


def template_source(t: Inferred) -> str:
    lines = ["{# Written by `harness new-task`: edit the wording. Every field of a row is a variable. #}"]
    if t.kind == "classification":
        lines.append('{% set system = "Answer with exactly one label: " ~ labels | join(", ") ~ "." %}')
    elif t.kind == "multiple_choice":
        lines.append('{% set system = "Answer with the letter of the correct option." %}')
    elif t.kind == "numeric":
        lines.append('{% set system = "Answer with the final number only." %}')
    else:
        lines.append('{% set system = "Answer in one sentence." %}')
    shown = [f for f in t.fields if f != t.choices_field]
    shown = [t.input_field] + [f for f in shown if f != t.input_field]
    lines += [f"{f.replace('_', ' ').capitalize()}: {{{{ {f} }}}}" for f in shown]
    if t.choices_field:
        lines.append('{% for c in choices %}{{ "ABCDEFGHIJ"[loop.index0] }}. {{ c }}\n{% endfor %}Answer:')
    return "\n".join(lines) + "\n"


def write(t: Inferred, root: Path) -> tuple[Path, Path]:
    return write_files(root, t.name, task_source(t), template_source(t), "new-task")


def write_files(root: Path, name: str, task_src: str, template_src: str, command: str) -> tuple[Path, Path]:
    """ROOT/tasks/NAME.py and ROOT/prompts/NAME/zero_shot.j2, where --tasks-dir ROOT/tasks finds them."""

    task_file = root / "tasks" / f"{name}.py"
    template = root / "prompts" / name / "zero_shot.j2"
    other = file_for(name)
    if other is not None and other.resolve() != task_file.resolve():  # two files of one name: every command refuses
        raise UserError(f"a task named {name} is already defined in {other}; {command} needs a new name")
    for p in (task_file, template):
        if p.exists():
            raise UserError(f"{p} exists; {command} never overwrites (delete it or pick another --out)")
    task_file.parent.mkdir(parents=True, exist_ok=True)
    template.parent.mkdir(parents=True, exist_ok=True)
    task_file.write_text(task_src, encoding="utf-8")
    template.write_text(template_src, encoding="utf-8")
    return task_file, template
