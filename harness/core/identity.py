"""A run's identity: everything that determines its records. Pure.

The plan alone does not: the same plan over an edited template, changed data, another model or
another backend produces other answers. The default run directory is named by the digest of the
whole identity, so a changed condition starts a fresh run (unchanged variants still come free from
the response cache) and `gate` can compare the two; an explicit --run-id whose stored identity
differs is refused with what changed, so a resume never mixes records made under two conditions.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import Any

from harness.core.errors import UserError

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
PLAN_NAME_MAX = 128 - 1 - 8  # the default run folder is <plan name>-<8-character digest>


def plain_name(name: str, most: int = 128) -> bool:
    """A plain folder name: no separators, no '..', nothing absolute, at most `most` characters."""
    return len(name) <= most and RUN_ID.match(name) is not None and ".." not in name


# control characters, format characters (bidirectional overrides and isolates, zero-width joiners),
# line and paragraph separators, surrogates, private use and unassigned code points
_ODD = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def odd_character(text: str) -> str | None:
    """The first character that would change how a name reads where it is shown (a terminal, a
    report, a verdict sentence: U+202E reverses what follows), described; None when there is none."""
    for ch in text:
        category = unicodedata.category(ch)
        if category in _ODD:
            return f"U+{ord(ch):04X} ({unicodedata.name(ch, 'a control character' if category == 'Cc' else category)})"
    return None


def check_shown_name(name: str, what: str) -> str:
    """A name that reaches the terminal and the reports (a task, variant, label or template): no
    character that would change how it, or the sentence around it, reads."""
    odd = odd_character(name)
    if odd is not None:
        raise UserError(
            f"{what} {name!r} contains {odd}, which would change how it reads in the terminal and the reports; "
            "use visible characters"
        )
    return name


def check_run_id(run_id: str) -> str:
    """A run id is a plain folder name: no separators, no '..', nothing absolute."""
    if not plain_name(run_id):
        raise UserError(
            f"--run-id {run_id!r} is not a plain name: use letters, digits, '.', '_' and '-' "
            "(no '/', no '..'; at most 128 characters)"
        )
    return run_id


def digest(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def changes(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The dotted keys whose values differ (added, removed or changed), sorted."""
    a, b = _flatten(stored), _flatten(current)
    return sorted(k for k in a.keys() | b.keys() if a.get(k, object()) != b.get(k, object()))


def check_same(run_dir: str, stored: dict[str, Any] | None, current: dict[str, Any]) -> None:
    """Refuse to resume a run made under other conditions, naming what changed."""
    if stored is None:
        raise UserError(
            f"{run_dir} was made by an older harness that did not record its conditions; "
            "omit --run-id (or pass a new one) for a fresh run"
        )
    changed = changes(stored, current)
    if changed:
        shown = ", ".join(changed[:6]) + (f" and {len(changed) - 6} more" if len(changed) > 6 else "")
        raise UserError(
            f"{run_dir} holds records made under other conditions (changed: {shown}); "
            "omit --run-id for a fresh run named by the new conditions, or pass a new one"
        )
