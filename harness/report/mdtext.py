"""Text from a run (names, labels, answers, sentences built from them) made literal in Markdown. Pure.

A variant named `<script>` or `[x](javascript:...)` is a name, not markup: every character Markdown
or the HTML inside it would act on is backslash-escaped (CommonMark escapes any ASCII punctuation),
a line break becomes a space, and an underscore inside a word (`few_shot_8`) stays as it is, since
it never starts emphasis there.
"""

from __future__ import annotations

import re
from typing import Any

_SPECIAL = re.compile(r"[\\`*\[\]<>&|#~]|(?<!\w)_|_(?!\w)")


def md(text: Any) -> str:
    return _SPECIAL.sub(lambda m: "\\" + m.group(0), " ".join(str(text).splitlines()))


def code(text: Any) -> str:
    """`text` as inline code where it can be (code shows every character as it is), else escaped."""
    value = " ".join(str(text).splitlines())
    return f"`{value}`" if value and "`" not in value else md(value)


def table(df: Any, **options: Any) -> str:
    """A DataFrame as a Markdown table with every header and cell literal."""
    return str(df.rename(columns=md).map(md).to_markdown(index=False, **options))
