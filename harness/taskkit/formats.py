"""Meaning-preserving format perturbations of a prompt (the FormatSpread idea of Sclar et al.
2023, "Quantifying language models' sensitivity to spurious features in prompt design"). Pure.

A layout changes only the template's own text: the descriptors that name a field ("Tweet:"),
the separator after them, their casing, the spacing between lines. A field's content and the
label set are never touched: the template is rendered a second time with every field value
replaced by a placeholder, the layout edits the text between placeholders, and the values go
back in. A template that changes a field's text as it prints it (a filter, a slice) cannot be
perturbed that way and is refused, since a perturbation could then change the content.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from harness.core.errors import UserError

SEPARATORS = (": ", " - ", ":: ", ":\n", " = ")
CASINGS = ("given", "upper", "lower", "title")
SPACINGS = ("given", "double", "single")
NAMINGS = ("given", "alternative")
# Synonyms for the descriptors the built-in templates use; a descriptor not listed keeps its name.
ALTERNATIVE_NAMES = {
    "abstract": "Paper abstract",
    "answer": "Response",
    "clause": "Contract clause",
    "hypothesis": "Statement",
    "intent": "Category",
    "message": "Customer message",
    "options": "Choices",
    "paper": "Article",
    "premise": "Context",
    "problem": "Word problem",
    "question": "Query",
    "text": "Input",
    "title": "Paper title",
    "tldr": "Summary",
    "tweet": "Post",
}

_OPEN, _CLOSE = "\ue000", "\ue001"  # private-use characters: no data or template contains them
_PLACEHOLDER = re.compile(f"{_OPEN}(\\d+){_CLOSE}")
# A descriptor: a short name at the start of a line, then a colon that ends the line or is
# followed by a space. Placeholders cannot be part of one (not in the character class).
_DESCRIPTOR = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9 '()/-]{0,40}?)[ \t]*:(?:[ \t]+|(?=\n)|$)", re.MULTILINE)


@dataclass(frozen=True)
class Layout:
    separator: str = ": "
    casing: str = "given"
    spacing: str = "given"
    naming: str = "given"

    def __post_init__(self) -> None:
        for value, allowed, what in (
            (self.separator, SEPARATORS, "separator"),
            (self.casing, CASINGS, "casing"),
            (self.spacing, SPACINGS, "spacing"),
            (self.naming, NAMINGS, "naming"),
        ):
            if value not in allowed:
                raise UserError(f"unknown format {what} {value!r} (choose from {', '.join(map(repr, allowed))})")

    @property
    def plain(self) -> bool:
        return self == Layout()

    def encode(self) -> str:
        """The layout as a variant stores it: "" when plain, else JSON (separators hold line breaks)."""
        return "" if self.plain else json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def decode(cls, text: str) -> Layout:
        if not text:
            return cls()
        try:
            raw = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            raise UserError(f"not a format layout: {text!r}") from None
        if not isinstance(raw, dict) or set(raw) - {"separator", "casing", "spacing", "naming"}:
            raise UserError(f"not a format layout: {text!r}")
        return cls(**raw)

    def describe(self) -> str:
        parts = []
        if self.separator != ": ":
            parts.append(f"separator {self.separator!r}")
        if self.casing != "given":
            parts.append(f"{self.casing} case")
        if self.spacing != "given":
            parts.append(f"{self.spacing} spacing")
        if self.naming != "given":
            parts.append("other field names")
        return ", ".join(parts) or "as written"


def _name(name: str, layout: Layout) -> str:
    if layout.naming == "alternative":
        name = ALTERNATIVE_NAMES.get(name.lower(), name)
    if layout.casing == "upper":
        return name.upper()
    if layout.casing == "lower":
        return name.lower()
    if layout.casing == "title":
        return name.title()
    return name


def apply(text: str, layout: Layout) -> str:
    """The layout applied to a rendering whose field values are placeholders."""
    if layout.plain:
        return text

    def descriptor(m: re.Match[str]) -> str:
        at_end = m.end() == len(text) or text[m.end()] == "\n"
        sep = layout.separator.rstrip(" \n") if at_end else layout.separator
        return _name(m["name"], layout) + sep

    out = _DESCRIPTOR.sub(descriptor, text)
    if layout.spacing == "double":
        out = re.sub(r"\n+", "\n\n", out)
    elif layout.spacing == "single":
        out = re.sub(r"\n{2,}", "\n", out)
    return out


def placeholders(context: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The template context with every non-empty string (alone or in a list) replaced by a
    placeholder, and the values in placeholder order. Empty strings stay: `{% if title %}` must
    take the same branch."""
    values: list[str] = []

    def hold(v: Any) -> Any:
        if isinstance(v, str) and v:
            values.append(v)
            return f"{_OPEN}{len(values) - 1}{_CLOSE}"
        if isinstance(v, list | tuple) and all(isinstance(x, str) for x in v):
            return type(v)(hold(x) for x in v)
        return v

    return {k: hold(v) for k, v in context.items()}, values


def restore(text: str, values: Sequence[str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values[int(m[1])], text)


def perturb(
    render: Callable[[Mapping[str, Any]], str], context: Mapping[str, Any], plain: str, layout: Layout, where: str
) -> str:
    """`plain` (= `render(context)`) with the layout applied to the template's own text only. UserError
    when the template changes a field's text as it prints it, where a perturbation could change it."""
    if layout.plain:
        return plain
    held, values = placeholders(context)
    skeleton = render(held)
    if restore(skeleton, values) != plain:
        raise UserError(
            f"{where}: the template changes a field's text as it prints it (a filter, a slice or a test on its "
            "value), so a format perturbation could change the content; print fields as they are, or run "
            "without the format spread (--formats 0)"
        )
    changed = apply(skeleton, layout)
    if sorted(_PLACEHOLDER.findall(changed)) != sorted(_PLACEHOLDER.findall(skeleton)):  # held by construction
        raise UserError(f"{where}: format {layout.describe()} would change a field's content")
    return restore(changed, values)


@dataclass(frozen=True)
class Format:
    """One perturbed format of a prompt: a layout and a label-list order."""

    layout: Layout
    label_order: str = "given"

    def describe(self) -> str:
        base = self.layout.describe()
        if self.label_order == "given":
            return base
        order = f"labels {self.label_order}"
        return order if base == "as written" else f"{base}, {order}"


def candidates(seed: int, label_orders: Sequence[str]) -> list[Format]:
    """Every format of the grammar but the unperturbed one, in a seeded order: the formats a
    spread draws from (the caller keeps those that change its template's text)."""
    grid = [
        Format(Layout(sep, case, space, naming), order)
        for sep, case, space, naming, order in itertools.product(SEPARATORS, CASINGS, SPACINGS, NAMINGS, label_orders)
    ]
    rest = [f for f in grid if not (f.layout.plain and f.label_order == label_orders[0])]
    random.Random(f"formats:{seed}").shuffle(rest)
    return rest
