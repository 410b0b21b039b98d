"""Reading a document as lm-evaluation-harness does: what the task files `harness import-lm-eval`
writes call (through harness.lmeval) to turn a row into a Sample. The doc_to_* strings come from a
downloaded YAML: they render in the sandbox."""

from __future__ import annotations

import ast
import json
from functools import cache, lru_cache
from typing import Any

import jinja2
import jinja2.sandbox

from harness.core.errors import UserError
from harness.core.types import Sample
from harness.taskkit import sandbox
from harness.taskkit.registry import stable_id


@cache
def environment() -> sandbox.SafeEnvironment:
    """A downloaded YAML's doc_to_* strings are untrusted: rendered in the sandbox, with no loader."""
    env = sandbox.SafeEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.add_filter("regex_replace", sandbox.regex_replace)
    return env


@lru_cache(maxsize=64)
def _compiled(template: str) -> jinja2.Template:
    return sandbox.compile_string(environment(), template, "an lm-eval template")


def apply_template(template: str, doc: dict[str, Any]) -> str:
    """An lm-eval doc_to_* template rendered for one document; whatever it does wrong, one line."""
    try:
        return sandbox.render(_compiled(template), dict(doc), "an lm-eval template")
    except jinja2.TemplateSyntaxError as exc:
        raise UserError(f"lm-eval template {template[:60]!r} line {exc.lineno}: {exc.message}") from None
    except jinja2.sandbox.SecurityError as exc:
        raise UserError(f"lm-eval template {template[:60]!r} is refused by the sandbox: {exc}") from None
    except jinja2.TemplateError as exc:
        raise UserError(f"lm-eval template {template[:60]!r}: {exc}") from None


def doc_choices(spec: Any, doc: dict[str, Any]) -> list[str]:
    """lm-eval's doc_to_choice: a list, a field, or a template rendering a list literal."""
    if isinstance(spec, list):
        return [str(c) for c in spec]
    if isinstance(spec, dict):
        return [str(c) for c in spec.values()]
    if isinstance(spec, str) and spec in doc:
        return [str(c) for c in doc[spec]]
    text = apply_template(str(spec), doc)
    try:
        return [str(c) for c in ast.literal_eval(text)]
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise UserError(f"doc_to_choice rendered {text[:60]!r}, not a list of choices") from None


def doc_target(spec: Any, doc: dict[str, Any], has_choices: bool) -> Any:
    """lm-eval's doc_to_target: an int, a field, or a template (digits become an index when the
    task has choices; a list literal becomes a list)."""
    if isinstance(spec, int | list):
        return spec
    if spec in doc:
        return doc[spec]
    text = apply_template(str(spec), doc)
    if text.isdigit() and has_choices:
        return ast.literal_eval(text)
    if len(text) >= 2 and text[0] == "[" and text[-1] == "]":
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return text
    return text


def sample_from_doc(doc: dict[str, Any], to_target: Any, to_choice: Any = None) -> Sample:
    """A document as a Sample: every field visible to the template, the gold answer as text (the
    choice itself for tasks with a fixed choice list), several golds as references."""

    key = next((k for k in ("id", "idx") if k in doc), None)
    sample_id = str(doc[key]) if key else stable_id("doc", json.dumps(doc, sort_keys=True, default=str))
    target = doc_target(to_target, doc, to_choice is not None)
    if to_choice is not None:
        choices = doc_choices(to_choice, doc)
        if isinstance(target, int) and not isinstance(target, bool):
            if not 0 <= target < len(choices):
                raise ValueError(f"target index {target} is outside the {len(choices)} choices")
            target = choices[target]
        # choices that vary per document travel with it: they are what a log-likelihood arm scores
        options = () if isinstance(to_choice, list | dict) else tuple(choices)
        return Sample(sample_id, dict(doc), str(target), choices=options)
    if isinstance(target, list):
        refs = tuple(str(t) for t in target)
        return Sample(sample_id, dict(doc), refs[0], references=refs)
    return Sample(sample_id, dict(doc), str(target))
