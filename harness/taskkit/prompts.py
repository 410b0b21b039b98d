"""Jinja2 templates -> chat messages, and few-shot selection. Pure: no model libraries.

A template renders the *user turn* for one sample. Few-shot examples are rendered with the
same template as earlier user turns, each answered by the task's gold completion as an
assistant turn. Chat models are trained on exactly that shape, the shots look like the
test item, and the same (user turn, completion) pair is what LoRA training learns from, so
prompting and fine-tuning cannot drift apart.

A template may set, at its top level (`{% set name = value %}`):
  system       a system prompt
  completion   "answer" or "cot": the form of the assistant turn
  max_tokens   the answer budget (default: the task's)
  stop         a list of strings that end the answer (not part of it)
  temperature  0 (greedy, the default) or more to sample, seeded by the run's seed
  strip        false keeps the rendered user turn byte for byte; by default leading and
               trailing whitespace is removed (line breaks around `{% set %}` lines)
A plan's variant may set max_tokens, stop and temperature too, which win over the template's.
"""

from __future__ import annotations

import random
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox
import numpy as np

from harness.core.errors import UserError, closest, not_utf8
from harness.core.files import file_sha256
from harness.core.types import Message, Sample
from harness.taskkit import sandbox
from harness.taskkit.data import round_robin
from harness.taskkit.formats import Layout, perturb
from harness.taskkit.registry import Task, builtin_dir

# "bootstrap": drawn from the pool examples the base model answers right (harness.experiment.bootstrap
# narrows the pool first; over a pool as given it draws like "balanced")
SELECTIONS = ("random", "balanced", "similar", "fixed", "bootstrap")
# per-item draws: the prompt search's default space (a `fixed` set is one draw, asked for by name)
PER_ITEM_SELECTIONS = ("random", "balanced", "similar", "bootstrap")
LABEL_ORDERS = ("given", "reversed", "sorted", "shuffled")


@dataclass(frozen=True)
class PromptFormat:
    """Meaning-preserving choices a prompt search may vary besides the template's wording."""

    cue: str = ""  # appended on its own line to every user turn, e.g. "Answer:"
    label_order: str = "given"  # order of `labels` in templates that list them
    seed: int = 0  # for "shuffled"
    layout: Layout = field(default_factory=Layout)  # separators, casing, spacing, field names (harness.taskkit.formats)

    def labels(self, labels: Sequence[str]) -> list[str]:
        if self.label_order not in LABEL_ORDERS:
            raise UserError(f"unknown label order {self.label_order!r} (choose from {', '.join(LABEL_ORDERS)})")
        out = list(labels)
        if self.label_order == "reversed":
            out.reverse()
        elif self.label_order == "sorted":
            out.sort(key=str.lower)
        elif self.label_order == "shuffled":
            random.Random(f"labels:{self.seed}").shuffle(out)
        return out


PLAIN = PromptFormat()


@cache
def _environment(prompts_dir: Path) -> sandbox.SafeEnvironment:
    """Templates are untrusted text (a task folder from elsewhere, an imported lm-eval YAML): they
    render in the sandbox and read only their own folder (and the built-in shared macros)."""
    env = sandbox.SafeEnvironment(
        loader=sandbox.FolderLoader(prompts_dir, builtin_dir("prompts")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
    )
    env.add_filter("regex_replace", sandbox.regex_replace)
    return env


def load_template(task: Task, name: str) -> jinja2.Template:
    if name not in task.templates:
        raise UserError(
            f"task {task.name} has no template {name!r}{closest(name, task.templates)} "
            f"(templates: {', '.join(task.templates) or 'none'})"
        )
    assert task.prompts_dir is not None
    where = f"template {task.name}/{name}.j2"
    try:
        return sandbox.load(_environment(task.prompts_dir), f"{name}.j2", where)
    except jinja2.TemplateSyntaxError as exc:
        raise UserError(f"{where} line {exc.lineno}: {exc.message}") from None
    except UnicodeDecodeError as exc:  # templates are UTF-8
        raise not_utf8(f"template {task.name}/{name}.j2", exc) from None
    except jinja2.TemplateNotFound as exc:
        raise UserError(f"{where} includes or imports {exc.name!r}, which is not in {task.prompts_dir}") from None
    except sandbox.TemplateRefused as exc:
        raise UserError(f"{where} is refused by the sandbox: {exc}") from None


def template_hash(task: Task, name: str) -> str:
    """One template's content hash: an edited wording changes what it names."""

    src = Path(load_template(task, name).filename or "")
    return file_sha256(src)[:16] if src.is_file() else "?"


def template_hashes(task: Task) -> dict[str, str]:
    """Every template of the task by content hash."""
    return {t: template_hash(task, t) for t in sorted(task.templates)}


@dataclass(frozen=True)
class Turn:
    user: str
    system: str | None
    style: str  # "answer" | "cot"
    max_tokens: int | None
    stop: tuple[str, ...] = ()
    temperature: float = 0.0


def render_turn(task: Task, template: str, sample: Sample, fmt: PromptFormat = PLAIN) -> Turn:
    tmpl = load_template(task, template)
    # a row's own field named id, choices or labels is what its template means (lm-eval's ARC has `choices`)
    context = {"choices": list(sample.choices), "labels": fmt.labels(task.labels), "id": sample.id, **sample.fields}
    where = f"template {task.name}/{template}.j2"
    module = _rendered(task, tmpl, context, sample.id, where)
    style = getattr(module, "completion", "answer")
    if style not in ("answer", "cot"):
        raise UserError(f"template {task.name}/{template}.j2 sets completion={style!r}; use 'answer' or 'cot'")
    max_tokens = getattr(module, "max_tokens", None)
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 0 < max_tokens <= 1_000_000
    ):
        raise UserError(f"template {task.name}/{template}.j2 sets max_tokens={max_tokens!r}; use a positive whole number")
    stop = _stop(getattr(module, "stop", ()), where)
    temperature = getattr(module, "temperature", 0.0)
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 <= temperature <= 5:
        raise UserError(f"{where} sets temperature={temperature!r}; use a number from 0 (greedy) to 5")
    strip = getattr(module, "strip", True)
    if not isinstance(strip, bool):
        raise UserError(f"{where} sets strip={strip!r}; use true or false")
    system = getattr(module, "system", None)
    text = str(module)
    if not fmt.layout.plain:  # the user turn only: the system prompt states the task, not a format
        text = perturb(lambda ctx: str(_rendered(task, tmpl, dict(ctx), sample.id, where)), context, text, fmt.layout, where)
    user = text.strip() if strip else text
    return Turn(
        f"{user}\n{fmt.cue}" if fmt.cue else user,
        str(system).strip() if system else None,
        style,
        max_tokens,
        stop,
        float(temperature),
    )


def _rendered(task: Task, tmpl: jinja2.Template, context: dict[str, Any], row: str, where: str) -> Any:
    """The template rendered in the sandbox (its text and the names its `{% set %}` lines export);
    whatever goes wrong is the template's, said in one line with the row."""
    try:
        return sandbox.render_module(tmpl, context, where)
    except jinja2.UndefinedError as exc:
        raise UserError(
            f"{where}: {exc.message} (row {row}, whose fields are {', '.join(sorted(context))}; "
            "the task's to_sample sets them)"
        ) from None
    except jinja2.sandbox.SecurityError as exc:  # an attribute, a size or a time the sandbox refuses
        raise UserError(f"{where} is refused by the sandbox on row {row}: {exc}") from None
    except jinja2.TemplateNotFound as exc:
        raise UserError(f"{where} includes or imports {exc.name!r}, which is not in {task.prompts_dir}") from None
    except jinja2.TemplateError as exc:
        raise UserError(f"{where}: {exc} (row {row})") from None
    except Exception as exc:  # a template is user code: whatever it raises (1/0, a bad filter) is theirs to fix
        raise UserError(f"{where} failed on row {row}: {type(exc).__name__}: {exc}") from None


def _stop(value: object, where: str) -> tuple[str, ...]:
    """`stop` as a tuple of non-empty strings (a single string is one stop sequence)."""
    items = (value,) if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(x, str) and x for x in items):
        raise UserError(f"{where} sets stop={value!r}; use a list of non-empty strings")
    return tuple(items)


def render(
    task: Task, template: str, sample: Sample, shots: Sequence[Sample] = (), fmt: PromptFormat = PLAIN
) -> tuple[Message, ...]:
    """The exact chat messages a model sees for `sample` with the given few-shot examples."""
    return render_with_turn(task, template, sample, shots, fmt)[0]


def render_with_turn(
    task: Task,
    template: str,
    sample: Sample,
    shots: Sequence[Sample] = (),
    fmt: PromptFormat = PLAIN,
    shot_users: MutableMapping[str, str] | None = None,
) -> tuple[tuple[Message, ...], Turn]:
    """The messages and the sample's rendered turn, whose settings (budget, stop, temperature)
    decide the request's decoding: one rendering for both.

    `shot_users` keeps each shot's rendered user turn by its id across calls with the same task,
    template and format: a `fixed` set of 6 shots was rendered again for every request, 6 of every
    7 renderings of a few-shot evaluation."""
    turn = render_turn(task, template, sample, fmt)
    messages: list[Message] = []
    if turn.system:
        messages.append(Message("system", turn.system))
    memo: MutableMapping[str, str] = {} if shot_users is None else shot_users
    for shot in shots:
        if shot.id not in memo:
            memo[shot.id] = render_turn(task, template, shot, fmt).user
        messages.append(Message("user", memo[shot.id]))
        messages.append(Message("assistant", task.completion(shot, turn.style)))
    messages.append(Message("user", turn.user))
    return tuple(messages), turn


def max_tokens_for(task: Task, template: str, sample: Sample) -> int:
    return budget(task, render_turn(task, template, sample))


def budget(task: Task, turn: Turn) -> int:
    if turn.max_tokens is not None:
        return turn.max_tokens
    return task.cot_max_tokens if turn.style == "cot" else task.max_tokens


def training_pair(task: Task, template: str, sample: Sample) -> tuple[tuple[Message, ...], str]:
    """(prompt messages, gold completion) — the LoRA training example for one sample."""
    turn = render_turn(task, template, sample)
    completion = task.completion(sample, turn.style)
    if not completion.strip():
        raise UserError(f"template {task.name}/{template}.j2 renders no completion for row {sample.id}")
    return render(task, template, sample), completion


class ShotSelector:
    """Picks k few-shot examples from a training pool for each test item, never the item itself."""

    def __init__(self, task: Task, pool: Sequence[Sample], k: int, method: str = "random", seed: int = 0):
        if method not in SELECTIONS:
            raise UserError(
                f"unknown selection {method!r}{closest(method, SELECTIONS)} (choose from {', '.join(SELECTIONS)})"
            )
        if k < 0:
            raise UserError(f"--shots must be >= 0, got {k}")
        if k > len(pool):
            raise UserError(f"--shots {k} is larger than the training pool ({len(pool)} examples)")
        self.task, self.pool, self.k, self.method, self.seed = task, list(pool), k, method, seed
        self._vectorizer = None
        self._fixed: list[Sample] = []
        if method == "fixed" and k:
            # One set for every item, balanced over labels where there are labels, in one order: the
            # shots are then a prefix every request shares, which the engine computes once (prefix
            # caching). One spare stands in for an item that is itself in the set.

            rng = random.Random(f"{seed}:fixed")
            spare = min(k + 1, len(self.pool))
            self._fixed = round_robin(self.pool, spare, rng) if task.labels else rng.sample(self.pool, spare)
            rng.shuffle(self._fixed)
        if method == "similar" and k:
            self._vectorizer, self._matrix = _tfidf(tuple(self._text(s) for s in self.pool))

    def _text(self, s: Sample) -> str:
        return str(s.fields.get(self.task.input_field, ""))

    def select(self, sample: Sample) -> tuple[Sample, ...]:
        if self.k == 0:
            return ()
        if self.method == "fixed":
            return tuple([s for s in self._fixed if s.id != sample.id][: self.k])
        if self.method == "similar":
            return self._similar(sample)
        rng = random.Random(f"{self.seed}:{sample.id}")
        candidates = [s for s in self.pool if s.id != sample.id]
        if self.method == "random":
            return tuple(rng.sample(candidates, self.k))

        picked = round_robin(candidates, self.k, rng)  # balanced (and bootstrap, over its narrowed pool)
        rng.shuffle(picked)
        return tuple(picked)

    def _similar(self, sample: Sample) -> tuple[Sample, ...]:
        """The k pool examples nearest the sample (TF-IDF cosine), ties by pool order, most similar last."""

        assert self._vectorizer is not None
        scores = (self._matrix @ self._vectorizer.transform([self._text(sample)]).T).toarray().ravel()
        # a stable sort of -score is the order of (-score, index); a Python sort keyed per row took
        # 6 of the 13 s a fully cached demo rerun spent (10k-row banking77 pool, 400 requests)
        chosen: list[Sample] = []
        for i in np.argsort(-scores, kind="stable"):
            if self.pool[i].id != sample.id:
                chosen.append(self.pool[i])
                if len(chosen) == self.k:
                    break
        return tuple(reversed(chosen))  # most similar last, nearest to the question


@lru_cache(maxsize=4)
def _tfidf(texts: tuple[str, ...]) -> tuple[Any, Any]:
    """The TF-IDF model of a shot pool and its matrix, fitted once per pool: compare builds the same
    variant's requests for its context check, validation, test and format spread (12 fits of the
    banking77 pool in a demo run, 2.5 s)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    return vectorizer, vectorizer.fit_transform(list(texts))
