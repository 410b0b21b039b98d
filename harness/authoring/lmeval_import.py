"""lm-evaluation-harness task YAML -> a harness task file and template (`harness import-lm-eval`),
and the functions the written task files call to read a document as lm-eval does.

The common subset converts: data (`dataset_path`, `dataset_name`, `dataset_kwargs.data_files` and `.revision`,
splits), the prompt (`doc_to_text`, `description`), the answer (`doc_to_target`, a fixed
`doc_to_choice` list, or per-document choices: a field or template, scored by log-likelihood as lm-eval
scores them), decoding (`generation_kwargs`: `until`, `max_gen_toks`, `do_sample`,
`temperature`), scoring (a regex + take_first filter, `exact_match` with its options, `acc`,
`acc_norm`). Everything else is refused by name: Python hooks (`!function`, `process_docs`),
`include` chains, other metrics.

With `--apply_chat_template --fewshot_as_multiturn`, lm-eval sends the description as the system
turn, each shot as a user turn (doc_to_text) answered by an assistant turn (doc_to_target), then
the document's doc_to_text: the shape this harness renders, so the written template is doc_to_text
itself, kept byte for byte (`strip = false`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox
import yaml
from jinja2 import meta

from harness.authoring.scaffold import json_source, tuple_source, write_files
from harness.core.errors import UserError
from harness.taskkit import lmeval_docs, sandbox

# ---------------------------------------------------------------- reading a document as lm-eval does


# ---------------------------------------------------------------- the importer


@dataclass(frozen=True)
class FunctionRef:
    """A `!function module.name` value: Python code the importer cannot convert."""

    target: str


class _Loader(yaml.SafeLoader):
    """YAML as lm-eval writes it: `!function` becomes a FunctionRef, refused by key afterwards."""


_Loader.add_constructor("!function", lambda loader, node: FunctionRef(str(loader.construct_scalar(node))))  # type: ignore[arg-type]

KEYS = {
    "task", "tag", "dataset_path", "dataset_name", "dataset_kwargs", "training_split", "validation_split",
    "test_split", "fewshot_split", "output_type", "doc_to_text", "doc_to_target", "doc_to_choice", "description",
    "target_delimiter", "fewshot_delimiter", "num_fewshot", "generation_kwargs", "filter_list", "metric_list",
    "metadata", "repeats", "should_decontaminate", "doc_to_decontamination_query",
}  # fmt: skip
REFUSED = {
    "include": "an include chain: import the YAML it includes, with this file's keys merged in by hand",
    "process_docs": "Python that rewrites documents",
    "process_results": "Python that scores",
    "fewshot_config": "a custom few-shot sampler",
    "use_prompt": "a promptsource prompt",
    "group": "a group of tasks: import each task's YAML",
    "task_alias": "an alias of another task",
    "class": "a Python task class",
    "custom_dataset": "a Python dataset loader",
    "gen_prefix": "an assistant-turn prefix",
    "doc_to_image": "images",
    "doc_to_audio": "audio",
    "unsafe_code": "executed code",
}
GENERATION_KWARGS = {"until", "max_gen_toks", "do_sample", "temperature"}
METRICS = {"exact_match": "exact_match", "acc": "accuracy", "acc_norm": "accuracy"}
EXACT_MATCH_OPTIONS = {"ignore_case", "ignore_punctuation", "regexes_to_ignore"}
METRIC_META = {"metric", "aggregation", "higher_is_better"}


@dataclass(frozen=True)
class Converted:
    name: str
    source: Path
    kind: str
    task_file: str
    template: str
    notes: tuple[str, ...]  # what was converted approximately or left out, for the user
    num_fewshot: int


def _refuse(path: Path, key: str, why: str) -> UserError:
    return UserError(f"{path}: {key}: {why}; the importer converts lm-eval's common subset only")


def load_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"lm-eval task file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    try:
        raw = yaml.load(text, Loader=_Loader)  # a SafeLoader with one extra tag
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise UserError(f"{path} is not an lm-eval task file (nested too deeply)") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: an lm-eval task file is a mapping of keys, got {type(raw).__name__}")
    _no_functions(path, raw, "")
    return raw


def _no_functions(path: Path, value: Any, where: str) -> None:
    if isinstance(value, FunctionRef):
        raise _refuse(path, where, f"!function {value.target} is Python code, which the importer cannot convert")
    if isinstance(value, dict):
        for k, v in value.items():
            _no_functions(path, v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _no_functions(path, v, f"{where}[{i}]")


def convert(path: Path, name: str | None = None) -> Converted:
    raw = load_yaml(path)
    for key in raw:
        if key in REFUSED:
            raise _refuse(path, key, REFUSED[key])
        if key not in KEYS:
            raise _refuse(path, key, "not a key the importer knows")
    notes: list[str] = []
    task_name = _name(path, name or raw.get("task"))
    output_type = raw.get("output_type", "generate_until")
    if output_type not in ("generate_until", "multiple_choice"):
        raise _refuse(path, "output_type", f"{output_type!r} has no generation equivalent")
    if raw.get("repeats", 1) != 1:
        raise _refuse(path, "repeats", "several samples per document")
    for key in ("doc_to_text", "doc_to_target"):
        if key not in raw:
            raise UserError(f"{path}: {key} is missing")
    doc_to_text = raw["doc_to_text"]
    if not isinstance(doc_to_text, str):
        raise _refuse(path, "doc_to_text", "only a field name or a Jinja template converts")
    to_choice = raw.get("doc_to_choice")
    labels: tuple[str, ...] = ()
    per_document = output_type == "multiple_choice" and isinstance(to_choice, str)
    if per_document:  # ARC, HellaSwag, PIQA, MMLU-style: each document names its own choices
        notes.append(
            "the choices vary per document: lm-eval ranks them by log-likelihood, as the task's 'loglik' (acc) "
            "and 'loglik_norm' (acc_norm) arms do"
        )
    elif output_type == "multiple_choice":
        if not isinstance(to_choice, list) or not to_choice:
            raise _refuse(path, "doc_to_choice", "a list, a field name or a template of the document's choices")
        labels = tuple(str(c) for c in to_choice)
        target = raw["doc_to_target"]
        if isinstance(target, int) and not isinstance(target, bool) and not 0 <= target < len(labels):
            # a constant index: every row would fail to load, so say it here, not at the first row
            raise UserError(f"{path}: doc_to_target {target} is not an index of the {len(labels)} choices in doc_to_choice")
        notes.append(
            "lm-eval ranks the choices by log-likelihood; here the model answers in words, and the "
            "'constrained' variant (choice among the labels) is the closest equivalent"
        )
    elif to_choice is not None:
        raise _refuse(path, "doc_to_choice", "choices with output_type generate_until")
    _no_private_attributes(path, raw)
    splits = _splits(path, raw, notes)
    metrics, rule = _metrics(path, raw, output_type)
    pattern, group = _filters(path, raw, notes)
    decoding = _decoding(path, raw)
    kind = "classification" if labels else "multiple_choice" if per_document else "short_answer"
    if kind == "classification" and pattern is not None:
        notes.append("filter_list is not used: answers are read as one of the labels")
    variables = _variables(doc_to_text) if doc_to_text not in _fields_hint(raw) else [doc_to_text]
    template = _template(doc_to_text, raw.get("description"), decoding)
    rule_args = {**rule, **({"pattern": pattern, "group_select": group} if kind == "short_answer" and pattern else {})}
    task_file = _task_source(path, task_name, raw, kind, labels, splits, metrics, rule_args, variables, to_choice)
    return Converted(task_name, path, kind, task_file, template, tuple(notes), int(raw.get("num_fewshot") or 0))


def _no_private_attributes(path: Path, raw: dict[str, Any]) -> None:
    """A template that reaches for `__globals__` or `__class__` is an attempt to run code: refused at
    import, by name (the sandbox would refuse it at every render anyway)."""
    for key in ("doc_to_text", "doc_to_target", "doc_to_choice", "description"):
        value = raw.get(key)
        if not isinstance(value, str):
            continue
        try:
            name = sandbox.private_attribute(lmeval_docs.environment(), value)
        except jinja2.TemplateSyntaxError as exc:
            raise UserError(f"{path}: {key} is not a valid Jinja template (line {exc.lineno}: {exc.message})") from None
        if name is not None:
            raise UserError(
                f"{path}: {key} reads the attribute {name!r}: a template that reaches into Python objects would "
                "never run here (templates render in a sandbox); this file is not safe to import"
            )


def _name(path: Path, raw: Any) -> str:
    if not isinstance(raw, str) or not raw:
        raise UserError(f"{path}: task is missing; name the task with --name")
    name = re.sub(r"[^a-z0-9_]", "_", raw.lower())
    if not re.match(r"^[a-z]", name):
        name = f"lm_{name}"
    return name


def _fields_hint(raw: dict[str, Any]) -> set[str]:
    """doc_to_text names a field when it is a bare identifier (lm-eval checks the dataset's columns)."""
    text = raw["doc_to_text"]
    return {text} if re.fullmatch(r"\w+", text) else set()


def _variables(template: str) -> list[str]:

    try:
        parsed = lmeval_docs.environment().parse(template)
    except jinja2.TemplateSyntaxError as exc:
        raise UserError(f"doc_to_text is not a valid Jinja template (line {exc.lineno}: {exc.message})") from None
    found = meta.find_undeclared_variables(parsed)
    order = [m.group(1) for m in re.finditer(r"\b(\w+)\b", template) if m.group(1) in found]
    return list(dict.fromkeys(order))


def _splits(path: Path, raw: dict[str, Any], notes: list[str]) -> dict[str, str | None]:
    test = raw.get("test_split") or raw.get("validation_split")
    if not test:
        raise UserError(f"{path}: neither test_split nor validation_split is set; the harness needs items to evaluate")
    train = raw.get("training_split") or raw.get("fewshot_split")
    if not train:
        raise UserError(f"{path}: neither training_split nor fewshot_split is set; adapters and shots need one")
    if not raw.get("training_split"):
        notes.append(f"no training_split: adapters train on the fewshot split {train!r}")
    val = raw.get("validation_split") if raw.get("test_split") and raw.get("validation_split") != test else None
    if not raw.get("test_split"):
        notes.append(f"no test_split: the validation split {test!r} is the test set, as lm-eval uses it")
    return {"test": str(test), "train": str(train), "val": str(val) if val else None}


def _metrics(path: Path, raw: dict[str, Any], output_type: str) -> tuple[tuple[str, ...], dict[str, Any]]:
    listed = raw.get("metric_list") or [{"metric": "exact_match" if output_type == "generate_until" else "acc"}]
    if not isinstance(listed, list):
        raise _refuse(path, "metric_list", "not a list")
    metrics: list[str] = []
    rule: dict[str, Any] = {}
    for i, m in enumerate(listed):
        if not isinstance(m, dict) or not isinstance(m.get("metric"), str):
            raise _refuse(path, f"metric_list[{i}]", "each entry needs a metric name")
        name = m["metric"]
        if name not in METRICS or (output_type == "generate_until") != (name == "exact_match"):
            raise _refuse(path, f"metric_list[{i}].metric", f"{name!r} with output_type {output_type}")
        options = set(m) - METRIC_META
        unknown = options - (EXACT_MATCH_OPTIONS if name == "exact_match" else set())
        if unknown:
            raise _refuse(path, f"metric_list[{i}].{sorted(unknown)[0]}", "an option the importer does not convert")
        for k in options:
            rule[k] = tuple(m[k]) if k == "regexes_to_ignore" else bool(m[k])
        if METRICS[name] not in metrics:
            metrics.append(METRICS[name])
    per_document = isinstance(raw.get("doc_to_choice"), str)  # no label set to average F1 over
    if output_type == "multiple_choice" and "macro_f1" not in metrics and not per_document:
        metrics.append("macro_f1")
    return tuple(metrics), rule


def _filters(path: Path, raw: dict[str, Any], notes: list[str]) -> tuple[str | None, int]:
    pipelines = raw.get("filter_list")
    if not pipelines:
        return None, 0
    if not isinstance(pipelines, list) or not all(isinstance(p, dict) for p in pipelines):
        raise _refuse(path, "filter_list", "not a list of named filter pipelines")
    first = pipelines[0]
    for extra in pipelines[1:]:
        notes.append(f"filter_list pipeline {extra.get('name', '?')!r} left out: the harness scores one way per task")
    pattern, group = None, 0
    for i, f in enumerate(first.get("filter") or []):
        where = f"filter_list[0].filter[{i}]"
        function = f.get("function") if isinstance(f, dict) else None
        if function == "regex":
            pattern = f.get("regex_pattern", r"#### (\-?[0-9\.\,]+)")
            group = int(f.get("group_select", 0))
            try:
                re.compile(pattern)
            except re.error as exc:
                raise _refuse(path, f"{where}.regex_pattern", f"not a valid regex ({exc})") from None
            if f.get("fallback", "[invalid]") != "[invalid]":
                raise _refuse(path, f"{where}.fallback", "a fallback answer")
        elif function != "take_first":
            raise _refuse(path, f"{where}.function", f"filter {function!r} (regex and take_first convert)")
    return pattern, group


def _decoding(path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    kwargs = raw.get("generation_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise _refuse(path, "generation_kwargs", "not a mapping")
    for k in kwargs:
        if k not in GENERATION_KWARGS:
            raise _refuse(path, f"generation_kwargs.{k}", "a decoding setting the importer does not convert")
    until = kwargs.get("until", ["\n\n"] if raw.get("output_type", "generate_until") == "generate_until" else [])
    until = [until] if isinstance(until, str) else list(until)
    out: dict[str, Any] = {"stop": [str(u) for u in until if u]}
    if raw.get("output_type", "generate_until") == "generate_until":
        out["max_tokens"] = int(kwargs.get("max_gen_toks", 256))
    if kwargs.get("do_sample") and float(kwargs.get("temperature", 1.0)) > 0:
        out["temperature"] = float(kwargs.get("temperature", 1.0))
    return out


def _template(doc_to_text: str, description: Any, decoding: dict[str, Any]) -> str:
    """doc_to_text verbatim; the settings after it, so they add no text (the file's last newline
    is not part of the prompt)."""
    body = f"{{{{ {doc_to_text} }}}}" if re.fullmatch(r"\w+", doc_to_text) else doc_to_text
    settings = ["{# settings written by harness import-lm-eval: the user turn is doc_to_text byte for byte #}"]
    settings.append("{% set strip = false %}")
    if description:
        settings.append(f"{{% set system = {json.dumps(str(description))} %}}")
    if decoding.get("stop"):
        settings.append(f"{{% set stop = {json.dumps(decoding['stop'])} %}}")
    if "max_tokens" in decoding:
        settings.append(f"{{% set max_tokens = {decoding['max_tokens']} %}}")
    if "temperature" in decoding:
        settings.append(f"{{% set temperature = {decoding['temperature']} %}}")
    return body + "".join(settings) + "\n"


def _task_source(
    path: Path,
    name: str,
    raw: dict[str, Any],
    kind: str,
    labels: tuple[str, ...],
    splits: dict[str, str | None],
    metrics: tuple[str, ...],
    rule: dict[str, Any],
    variables: list[str],
    to_choice: Any,
) -> str:
    hub_args, data_files = _hub_source(path, raw, splits)
    input_field = variables[0] if variables else "text"
    version = (raw.get("metadata") or {}).get("version", 1) if isinstance(raw.get("metadata"), dict) else 1
    where = f"{raw['dataset_path']}" + (f" ({raw['dataset_name']})" if raw.get("dataset_name") else "")
    where += " through `datasets`" + (" from the files in data_files" if data_files else "")
    lines = [
        f'"""{name}: imported by `harness import-lm-eval` from {path.name}; edit freely.',
        "",
        f"Data: {where}; or, when HARNESS_DATA_DIR is set, its {name}/<split>.jsonl with the same fields.",
        '"""',
        "",
        "from harness.lmeval import sample_from_doc",
        f"from harness.tasks import {'AnswerRule, ' if kind == 'short_answer' and rule else ''}Fixtures, HubSource, Task",
        "from harness.types import Sample",
        "",
        f"DOC_TO_TARGET = {json.dumps(raw['doc_to_target'])}",
        f"DOC_TO_CHOICE = {_py(to_choice)}",
        "",
        "",
        "def to_sample(row: dict) -> Sample:",
        "    return sample_from_doc(row, DOC_TO_TARGET, DOC_TO_CHOICE)",
        "",
        "",
        "TASK = Task(",
        f'    name="{name}",',
        f"    version={_version(version)},",
        '    domain="",',
        f"    kind={json.dumps(kind)},",
        f"    description={json.dumps('lm-eval task ' + str(raw.get('task', name)))},",
        "    to_sample=to_sample,",
        f"    test_split={json.dumps(splits['test'])},",
        f"    train_split={json.dumps(splits['train'])},",
        *([f"    val_split={json.dumps(splits['val'])},"] if splits["val"] else []),
        f"    metrics={tuple_source(metrics)},",
        *([f"    labels={tuple_source(labels, 4)},"] if labels else []),
        f"    hub=HubSource(\n        {(',' + chr(10) + '        ').join(hub_args)},\n    ),",
        f"    input_field={json.dumps(input_field)},",
    ]
    if kind == "short_answer" and rule:
        lines.append("    answer_rule=AnswerRule(")
        lines += [f"        {k}={_py(v)}," for k, v in sorted(rule.items())]
        lines.append("    ),")
    fixtures = _fixtures(variables, raw["doc_to_target"], labels, splits, kind)
    lines += [
        "    # Placeholders: write a few rows of your own (never copied from the data); check-task runs on them.",
        "    fixtures=Fixtures(",
        f"        rows={json_source(fixtures, 8)},",
        f"        wrong={json.dumps('bananas' if not labels else labels[-1])},",
        "    ),",
        ")",
        "",
    ]
    return "\n".join(lines)


def _hub_source(path: Path, raw: dict[str, Any], splits: dict[str, str | None]) -> tuple[list[str], Any]:
    """The task file's HubSource arguments (dataset, config, splits, files, revision), and the data
    files; what the importer cannot convert is refused by key."""
    hub_splits = {s: s for s in dict.fromkeys(v for v in splits.values() if v)}
    data_files = (raw.get("dataset_kwargs") or {}).get("data_files") if isinstance(raw.get("dataset_kwargs"), dict) else None
    kwargs = raw.get("dataset_kwargs")
    if kwargs is not None and (not isinstance(kwargs, dict) or set(kwargs) - {"data_files", "revision"}):
        extra = sorted(set(kwargs) - {"data_files", "revision"}) if isinstance(kwargs, dict) else ["(not a mapping)"]
        raise _refuse(path, f"dataset_kwargs.{extra[0]}", "a loader option the importer does not convert")
    revision = kwargs.get("revision") if isinstance(kwargs, dict) else None
    if revision is not None and not isinstance(revision, str | int):
        raise _refuse(path, "dataset_kwargs.revision", "a commit, tag or branch name converts")
    if data_files is not None and not (
        isinstance(data_files, dict) and all(isinstance(v, str) for v in data_files.values())
    ):
        raise _refuse(path, "dataset_kwargs.data_files", "only a mapping of split to one file converts")
    if not isinstance(raw.get("dataset_path"), str):
        raise UserError(f"{path}: dataset_path is missing")
    hub_args = [json.dumps(raw["dataset_path"]), _py(raw.get("dataset_name")), json.dumps(hub_splits)]
    if data_files:
        hub_args.append(f"data_files={json_source(data_files, 8)}")
    if revision is not None:
        hub_args.append(f"revision={json.dumps(str(revision))}")
    return hub_args, data_files


def _py(value: Any) -> str:
    """Python source for a YAML scalar, list or tuple (JSON spelling, None/True/False for Python)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, tuple):
        return tuple_source(value, 8)
    return json.dumps(value, ensure_ascii=False)


def _version(value: Any) -> int:
    try:
        return max(1, int(float(value)))
    except (TypeError, ValueError):
        return 1


def _fixtures(
    variables: list[str], to_target: Any, labels: tuple[str, ...], splits: dict[str, str | None], kind: str
) -> dict[str, Any]:
    target_field = to_target if isinstance(to_target, str) and re.fullmatch(r"\w+", to_target) else None
    target_vars = [] if target_field else _variables(str(to_target)) if isinstance(to_target, str) else []

    def row(i: int) -> dict[str, Any]:
        r: dict[str, Any] = {"id": f"fx-{i}"}
        for v in [*variables, *target_vars]:
            r.setdefault(v, f"example {v} {i}")
        if target_field:
            r[target_field] = labels[0] if labels else str(10 + i)
        elif target_vars:
            r[target_vars[-1]] = labels[0] if labels else str(10 + i)  # a number: answer patterns look for one
        return r

    return {str(splits["train"]): [row(1), row(2)], str(splits["test"]): [row(3)]}


def write(c: Converted, root: Path) -> tuple[Path, Path]:
    return write_files(root, c.name, c.task_file, c.template, "import-lm-eval")
