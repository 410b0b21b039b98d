"""The model's tokenizer for counting prompt tokens, loaded without transformers' model stack.

Every command that checks prompts against the context (compare's preflight, the many-shot fill,
the format spread's fit, preview) counts tokens exactly as the engine will: the chat template
rendered in transformers' own jinja environment, the text encoded by the `tokenizers` library from
the model's tokenizer.json, special tokens not added (what `apply_chat_template` does). Importing
`AutoTokenizer` pulls in torch and the auto-model machinery, about 4 s on 2 cores: a cached
rerun paid that for nothing. A folder without tokenizer.json (a slow, sentencepiece-only
tokenizer) gets transformers' tokenizer, which counts the same tokens more slowly.
"""

from __future__ import annotations

import datetime
import functools
import json
import json as _json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
from jinja2.ext import loopcontrols

from harness.core.errors import UserError
from harness.taskkit.sandbox import SafeEnvironment, TemplateRefused, compile_string, render

# What transformers passes to a chat template beside the messages (its SPECIAL_TOKENS_ATTRIBUTES).
_SPECIAL = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


class CountingTokenizer:
    """The slice of a transformers tokenizer that harness.engines.chat and the data check call."""

    def __init__(self, tokenizer: Any, chat_template: str | None, special: dict[str, str]):
        self._tok = tokenizer
        self.chat_template = chat_template
        self._special: dict[str, Any] = special
        eos = special.get("eos_token")
        self.eos_token_id = tokenizer.token_to_id(eos) if eos else None

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": list(self._tok.encode(text, add_special_tokens=add_special_tokens).ids)}

    def apply_chat_template(
        self, chat: Sequence[dict[str, str]], tokenize: bool = True, add_generation_prompt: bool = False
    ) -> Any:
        if not self.chat_template:
            raise ValueError("this tokenizer has no chat template")
        text = _render(self.chat_template, list(chat), add_generation_prompt, self._special)
        return self(text, add_special_tokens=False)["input_ids"] if tokenize else text


@functools.cache
def _compiled(template: str) -> Any:
    """The chat template in the environment transformers renders it in (its chat_template_utils:
    sandboxed, trim_blocks, lstrip_blocks, loop controls, its tojson, raise_exception and
    strftime_now), compiled once: importing transformers for this alone cost a second per command.
    A model folder is someone else's text too: the harness's sandbox also bounds its time and size."""

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(
        x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None, sort_keys: bool = False
    ) -> str:
        return _json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = SafeEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.add_filter("tojson", tojson)
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
    return compile_string(env, template, "the model's chat template")


def _render(template: str, chat: list[dict[str, str]], add_generation_prompt: bool, special: dict[str, Any]) -> str:
    if re.search(r"\{%-?\s*generation\s*-?%\}", template):
        # a template marking assistant spans for training masks: transformers' own extension renders it
        from transformers.utils.chat_template_utils import render_jinja_template

        out: Any = render_jinja_template(  # (texts, generation spans), though annotated as a str
            conversations=[chat], chat_template=template, add_generation_prompt=add_generation_prompt, **special
        )
        return str(out[0][0])

    variables = {"messages": chat, "tools": None, "documents": None, "add_generation_prompt": add_generation_prompt}
    try:
        return render(_compiled(template), {**variables, **special}, "the model's chat template")
    except TemplateRefused as exc:  # the model folder's text, not the harness: the user's to replace
        raise UserError(f"the model's chat template is refused by the sandbox: {exc}") from None


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):  # an AddedToken saved as {"content": ..., ...}
        value = value.get("content")
    return value if isinstance(value, str) else None


def _chat_template(model_dir: Path, config: dict[str, Any]) -> str | None:
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    template = config.get("chat_template")
    if isinstance(template, str):
        return template
    if (model_dir / "chat_template.json").is_file():
        value = json.loads((model_dir / "chat_template.json").read_text(encoding="utf-8")).get("chat_template")
        return value if isinstance(value, str) else None
    return None  # a named-template list or none: transformers' tokenizer decides


@functools.cache
def counting_tokenizer(model_dir: Path) -> Any:
    """The model's tokenizer for token counts, loaded once per process."""
    config_file, fast_file = model_dir / "tokenizer_config.json", model_dir / "tokenizer.json"
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    template = _chat_template(model_dir, config)
    if fast_file.is_file() and (template is not None or "chat_template" not in config):
        from tokenizers import Tokenizer

        special = {k: t for k in _SPECIAL if (t := _token_text(config.get(k))) is not None}
        return CountingTokenizer(Tokenizer.from_file(str(fast_file)), template, special)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)
