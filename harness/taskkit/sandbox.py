"""Jinja2 for text that users and third parties write (prompt templates, lm-eval's doc_to_* strings,
a model's chat template): it can never run code, read a file or hang the program.

- Code: `ImmutableSandboxedEnvironment` refuses every attribute that starts with an underscore and
  the internals of functions, frames and code objects (`lipsum.__globals__`, `cycler.__init__`),
  and the methods that change a list or dict. `lipsum` is gone: a template has no use for it.
- Files: a template's loader reads only its own folder (and the shared `_macros.j2` beside the
  built-in prompts); `{% include %}` of anything else, `..` or a link that leads outside, is refused.
- Time: a render that runs past `RENDER_SECONDS` is stopped by a watchdog thread, which raises in
  the rendering thread (CPython's `PyThreadState_SetAsyncExc`): pure-Python loops of any shape stop.
- Memory: what one bytecode could allocate for minutes (`'a' * 10**10`, `9 ** 9 ** 9`, a list
  nested in itself and printed, `s | replace('', s)`) is sized before it runs: `range`,
  repetition, powers, concatenation (`~`, `+`), list and dict literals, string padding and the
  filters that grow text are refused past `MAX_VALUE`; the rendered text past `MAX_OUTPUT`.

Written here rather than taken from a library: no maintained package bounds Jinja's time and size
(jinja2's own sandbox caps `range` only), and these checks sit on Jinja's documented extension
points (`intercepted_binops`, `call`, `code_generator_class`, the filter table).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import inspect
import itertools
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import jinja2
import regex
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.environment import TemplateModule
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter, SecurityError
from markupsafe import Markup

MAX_OUTPUT = 1_000_000  # characters one rendering may produce
MAX_VALUE = 4_000_000  # characters plus items of any value a template builds
MAX_ITEMS = 100_000  # numbers a range may hold (jinja2's own sandbox limit)
MAX_INT_BITS = 1 << 16  # a whole number a template computes (about 20,000 digits)
MAX_SOURCE = 1_000_000  # characters of a template's own text
RENDER_SECONDS = 5.0  # wall time of one rendering (or one compilation)
_POLL_S = 0.1


class TemplateRefused(SecurityError):
    """Something a template asked for that the sandbox does not allow: its text says what."""


class RenderTimeout(BaseException):
    """Raised in a rendering thread by the watchdog; a BaseException, so no `except Exception`
    inside Jinja or a filter can swallow it."""


# ---------------------------------------------------------------- time: the watchdog


def _raise_in(thread_id: int, exc: type[BaseException] | None) -> None:
    """Make `exc` pending in a thread (None clears a pending one); it is raised at the thread's next
    bytecode boundary, which a loop of any shape reaches."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc else None)


class _Watchdog:
    """One daemon thread for the process, polling only while a render is under way. Firing and
    disarming hold one lock, so an exception is never left pending once a render has ended."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy = threading.Event()
        self._armed: dict[int, list[Any]] = {}  # token -> [thread id, deadline, fired]
        self._tokens = itertools.count()
        self._pid: int | None = None
        self._local = threading.local()

    def arm(self, seconds: float) -> int | None:
        """A token for the outermost render of this thread (None for a nested one, which the outer
        one's deadline already covers)."""
        if getattr(self._local, "depth", 0):
            self._local.depth += 1
            return None
        self._local.depth = 1
        with self._lock:
            if self._pid != os.getpid():  # first use, or a forked child, which has no watchdog thread
                self._pid = os.getpid()
                threading.Thread(target=self._watch, name="harness-template-watchdog", daemon=True).start()
            token = next(self._tokens)
            self._armed[token] = [threading.get_ident(), time.monotonic() + seconds, False]
            if not self._busy.is_set():
                self._busy.set()
        return token

    def disarm(self, token: int | None) -> None:
        self._local.depth -= 1
        if token is None:
            return
        while True:  # an exception delivered while disarming must not leave the render armed
            try:
                with self._lock:
                    entry = self._armed.pop(token, None)
                    if entry is not None and entry[2]:
                        _raise_in(entry[0], None)
                return
            except RenderTimeout:
                continue

    def _watch(self) -> None:
        while True:
            self._busy.wait()
            time.sleep(_POLL_S)
            now = time.monotonic()
            with self._lock:
                for entry in self._armed.values():
                    if now >= entry[1]:
                        entry[2] = True
                        _raise_in(entry[0], RenderTimeout)  # again on each poll until disarmed
                if not self._armed:
                    self._busy.clear()


_WATCHDOG = _Watchdog()


@contextlib.contextmanager
def time_limit(what: str, seconds: float | None = None) -> Iterator[None]:
    """Run a block for at most `seconds` (default RENDER_SECONDS); TemplateRefused past that."""
    token = _WATCHDOG.arm(RENDER_SECONDS if seconds is None else seconds)
    try:
        try:
            yield
        finally:
            _WATCHDOG.disarm(token)
    except RenderTimeout:
        if token is None:  # a nested block: the outermost one reports it
            raise
        limit = RENDER_SECONDS if seconds is None else seconds
        raise TemplateRefused(f"{what} ran for over {limit:g} s and was stopped (a loop that does not end?)") from None
    except RecursionError:
        raise TemplateRefused(f"{what} nests or recurses too deeply (a macro or include that calls itself?)") from None
    except MemoryError:
        raise TemplateRefused(f"{what} ran out of memory") from None


# ---------------------------------------------------------------- memory: sizing values before they are made


def weight(value: Any, budget: int = MAX_VALUE) -> int:
    """Characters plus items of `value` as printed, counted until `budget` is passed: a list that
    holds another twice at every level weighs what printing it would produce, not what it stores.
    Each container is weighed once (by identity), so a value shared a million times costs one visit."""
    if isinstance(value, str):  # nearly every call, on every `~` and filter of every render: no walk
        return len(value)
    if not isinstance(value, list | tuple | set | frozenset | dict):
        return 1
    memo: dict[int, int] = {}
    over = budget + 1

    def weigh(v: Any, depth: int) -> int:
        if isinstance(v, str):
            return len(v)
        if not isinstance(v, list | tuple | set | frozenset | dict):
            return 1
        if id(v) in memo:
            return memo[id(v)]
        if depth > 200:  # no template or data row nests this deep; a cycle would
            return over
        memo[id(v)] = over  # while it is being weighed: a cycle back to it weighs too much
        total = 1
        for item in itertools.chain(v.keys(), v.values()) if isinstance(v, dict) else v:
            total += weigh(item, depth + 1)
            if total > budget:
                break
        memo[id(v)] = total
        return total

    return weigh(value, 0)


def _refuse_over(size: int, what: str) -> None:
    if size > MAX_VALUE:
        raise TemplateRefused(f"{what} would make a value of over {MAX_VALUE:,} characters")


def _checked(value: Any, what: str) -> Any:
    if isinstance(value, str | list | tuple | dict | set | frozenset):
        _refuse_over(weight(value), what)
    return value


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_binop(op: str, left: Any, right: Any) -> None:
    if op == "*":
        for seq, n in ((left, right), (right, left)):
            if _whole(n) and isinstance(seq, str | list | tuple) and n > 0:
                _refuse_over(weight(seq) * n, "'*'")
        if _whole(left) and _whole(right) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise TemplateRefused(f"'*' would make a number of over {MAX_INT_BITS:,} bits")
    elif op == "**":
        big = _whole(left) and _whole(right) and right > 0 and abs(left) > 1
        if big and right * (abs(left).bit_length() - 1) > MAX_INT_BITS:
            raise TemplateRefused(f"'**' would make a number of over {MAX_INT_BITS:,} bits")
    elif op == "+":
        if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
            _refuse_over(weight(left) + weight(right), "'+'")
    elif op == "%" and isinstance(left, str):
        _check_percent_format(left)


# a %-conversion whose width or precision is a '*' or a number of five digits or more
_WIDE_PERCENT = re.compile(r"%[-#0 +]*(?:\*|\d{5,}|\d*\.(?:\*|\d{5,}))")
_WIDE_SPEC = re.compile(r"\d{5,}")


def _check_percent_format(fmt: str) -> int:
    if _WIDE_PERCENT.search(fmt.replace("%%", "")):
        raise TemplateRefused("a %-format with a '*' or a width over 9,999 characters")
    return len(fmt)


# (filter or str method name) -> bound arguments -> the size its result can reach
def _grown_by_replace(s: Any, old: Any, new: Any, count: Any) -> int:
    s, old, new = str(s), str(old), str(new)
    hits = len(s) + 1 if not old else s.count(old)
    if _whole(count) and count >= 0:
        hits = min(hits, count)
    return len(s) + hits * max(0, len(new) - len(old))


def _numbers_only(start: Any) -> int:
    if not isinstance(start, int | float):  # lists or strings added up copy quadratically
        raise TemplateRefused("the filter 'sum' adds numbers only (start must be a number)")
    return 0


def _lines(s: Any) -> int:
    return str(s).count("\n") + 1


_FILTER_SIZES: dict[str, Callable[[Mapping[str, Any]], int]] = {
    "center": lambda a: max(weight(a["value"]), a["width"] if _whole(a["width"]) else 0),
    "indent": lambda a: weight(a["s"]) + _lines(a["s"]) * (a["width"] if _whole(a["width"]) else len(str(a["width"]))),
    "replace": lambda a: _grown_by_replace(a["s"], a["old"], a["new"], a["count"]),
    "join": lambda a: weight(a["value"]) + len(str(a["d"])) * (len(a["value"]) if hasattr(a["value"], "__len__") else 0),
    "wordwrap": lambda a: weight(a["s"]) * (2 + len(str(a["wrapstring"] or ""))),
    "batch": lambda a: a["linecount"] if _whole(a["linecount"]) else 0,
    "slice": lambda a: a["slices"] if _whole(a["slices"]) else 0,
    "sum": lambda a: _numbers_only(a["start"]),
    "format": lambda a: _check_percent_format(a["value"]) if isinstance(a["value"], str) else 0,
    # every position may take the replacement: sized before the regex runs
    "regex_replace": lambda a: weight(a["text"]) + (len(str(a["text"])) + 1) * len(str(a["repl"])),
}
_METHOD_SIZES: dict[str, Callable[[str, tuple[Any, ...]], int]] = {
    "center": lambda s, a: a[0] if a and _whole(a[0]) else len(s),
    "ljust": lambda s, a: a[0] if a and _whole(a[0]) else len(s),
    "rjust": lambda s, a: a[0] if a and _whole(a[0]) else len(s),
    "zfill": lambda s, a: a[0] if a and _whole(a[0]) else len(s),
    "expandtabs": lambda s, a: len(s) * (a[0] if a and _whole(a[0]) and a[0] > 0 else 8),
    "replace": lambda s, a: _grown_by_replace(s, a[0], a[1], a[2] if len(a) > 2 else -1) if len(a) >= 2 else len(s),
    "join": lambda s, a: weight(a[0]) + len(s) * len(a[0]) if a and isinstance(a[0], list | tuple) else len(s),
}


def _checked_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    size = _FILTER_SIZES.get(name)
    signature = inspect.signature(func) if size else None

    @functools.wraps(func)  # keeps jinja2's pass_context / pass_environment marks
    def run(*args: Any, **kwargs: Any) -> Any:
        if signature is not None and size is not None:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                pass  # the filter itself says what is wrong with its arguments
            else:
                bound.apply_defaults()
                _refuse_over(size(bound.arguments), f"the filter {name!r}")
        return _checked(func(*args, **kwargs), f"the filter {name!r}")

    return run


class _Formatter(SandboxedFormatter):
    """str.format in the sandbox, with no field wider than 9,999 characters."""

    def format_field(self, value: Any, format_spec: str) -> Any:
        if _WIDE_SPEC.search(format_spec):
            raise TemplateRefused("a format field wider than 9,999 characters")
        return super().format_field(value, format_spec)


class _CodeGenerator(CodeGenerator):
    """Jinja's code generator, with `~` and list, tuple and dict literals sized as they are built
    (the two ways a template makes a value bigger than its parts that no hook intercepts)."""

    def visit_Concat(self, node: jinja2.nodes.Concat, frame: Frame) -> None:
        self.write("environment.sized_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_List(self, node: jinja2.nodes.List, frame: Frame) -> None:
        self.write("environment.sized(")
        super().visit_List(node, frame)
        self.write(")")

    def visit_Dict(self, node: jinja2.nodes.Dict, frame: Frame) -> None:
        self.write("environment.sized(")
        super().visit_Dict(node, frame)
        self.write(")")

    def visit_Tuple(self, node: jinja2.nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # a target (`{% for a, b in ... %}`), not a value
            super().visit_Tuple(node, frame)
            return
        self.write("environment.sized(")
        super().visit_Tuple(node, frame)
        self.write(")")


def _range(*args: Any) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_ITEMS:
        raise TemplateRefused(f"range of {len(numbers):,} numbers (at most {MAX_ITEMS:,})")
    return numbers


class SafeEnvironment(ImmutableSandboxedEnvironment):
    """The one Jinja environment for untrusted templates (see the module's docstring)."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})
    code_generator_class = _CodeGenerator

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals.pop("lipsum", None)
        self.globals["range"] = _range
        self.filters = {name: _checked_filter(name, f) for name, f in self.filters.items()}

    def add_filter(self, name: str, func: Callable[..., Any]) -> None:
        self.filters[name] = _checked_filter(name, func)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_binop(operator, left, right)
        return _checked(self.binop_table[operator](left, right), repr(operator))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            method = getattr(__obj, "__name__", "")
            if method in ("translate", "maketrans"):
                raise TemplateRefused(f"str.{method} is not available in templates")
            size = _METHOD_SIZES.get(method)
            if size is not None:
                _refuse_over(size(owner, args), f"str.{method}")
        for value in (*args, *kwargs.values()):
            _checked(value, "a call's argument")
        return _checked(super().call(__context, __obj, *args, **kwargs), "a call")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None or isinstance(value.__self__, Markup):
            return wrapped
        f_self, is_map = value.__self__, value.__name__ == "format_map"

        def fmt(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                return str(_Formatter(self).vformat(f_self, (), args[0]))
            return str(_Formatter(self).vformat(f_self, args, kwargs))

        return functools.update_wrapper(fmt, value)

    def sized(self, value: Any) -> Any:
        return _checked(value, "a literal")

    def sized_concat(self, parts: tuple[Any, ...]) -> str:
        _refuse_over(sum(weight(p) for p in parts), "'~'")
        return "".join(map(str, parts))


def regex_replace(text: str, pattern: str, repl: str, count: int = 0) -> str:
    """The one filter lm-evaluation-harness adds to Jinja, so its templates render the same here. The
    `regex` module's matcher (re's syntax) takes a timeout, which `re`'s cannot: a pattern that
    backtracks for ever ('(a+)+$') is stopped like any other runaway render."""

    try:
        return str(regex.sub(pattern, repl, text, count=count, timeout=RENDER_SECONDS))
    except TimeoutError:
        raise TemplateRefused(f"regex_replace with {pattern!r} ran for over {RENDER_SECONDS:g} s") from None


# ---------------------------------------------------------------- files: a loader that stays in its folder


class FolderLoader(jinja2.BaseLoader):
    """Templates from one folder (subfolders included); a name with no folder that starts with '_'
    may also come from `shared` (the built-in `_macros.j2`). Anything else, `..`, an absolute path or
    a link leading outside, is refused by name."""

    def __init__(self, folder: Path, shared: Path | None = None):
        self.folder, self.shared = folder, shared

    def _refuse(self, name: str) -> TemplateRefused:
        shared = " and the shared _*.j2 beside the built-in prompts" if self.shared else ""
        return TemplateRefused(
            f"{name!r} is outside the template's folder {self.folder}; a template may include or import only "
            f"templates in its own folder{shared}"
        )

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        pieces = template.replace("\\", "/").split("/")
        if template.startswith(("/", "\\")) or any(p in ("..", "") for p in pieces) or "\x00" in template:
            raise self._refuse(template)
        roots = [self.folder]
        if self.shared is not None and len(pieces) == 1 and template.startswith("_"):
            roots.append(self.shared)
        for root in roots:
            path = root.joinpath(*pieces)
            if not path.is_file():
                continue
            real = path.resolve()
            if not real.is_relative_to(root.resolve()):  # a link that leads out of the folder
                raise self._refuse(template)
            source = real.read_text(encoding="utf-8-sig")  # a byte-order mark would otherwise open every prompt
            if len(source) > MAX_SOURCE:
                raise TemplateRefused(f"{template!r} is {len(source):,} characters long (at most {MAX_SOURCE:,})")
            mtime = real.stat().st_mtime_ns
            return source, str(path), functools.partial(_unchanged, real, mtime)
        raise jinja2.TemplateNotFound(template)


def _unchanged(path: Path, mtime: int) -> bool:
    try:
        return path.stat().st_mtime_ns == mtime
    except OSError:
        return False


def private_attribute(env: jinja2.Environment, source: str) -> str | None:
    """The first underscore attribute a template's text reads (`x.__class__`, `x['_y']`), found
    without running it: what an importer refuses up front, since the sandbox would refuse it later."""

    for node in env.parse(source).find_all((nodes.Getattr, nodes.Getitem)):
        name = node.attr if isinstance(node, nodes.Getattr) else getattr(getattr(node, "arg", None), "value", None)
        if isinstance(name, str) and name.startswith("_"):
            return name
    return None


# ---------------------------------------------------------------- compiling and rendering, bounded


def compile_string(env: jinja2.Environment, source: str, what: str) -> jinja2.Template:
    if len(source) > MAX_SOURCE:
        raise TemplateRefused(f"{what} is {len(source):,} characters long (at most {MAX_SOURCE:,})")
    with time_limit(f"compiling {what}"):
        return env.from_string(source)


def load(env: jinja2.Environment, name: str, what: str) -> jinja2.Template:
    with time_limit(f"compiling {what}"):
        return env.get_template(name)


def _stream(template: jinja2.Template, context: jinja2.runtime.Context, what: str) -> list[str]:
    out: list[str] = []
    total = 0
    for chunk in template.root_render_func(context):
        total += len(chunk)
        if total > MAX_OUTPUT:
            raise TemplateRefused(f"{what} renders over {MAX_OUTPUT:,} characters")
        out.append(chunk)
    return out


def render_module(template: jinja2.Template, variables: dict[str, Any], what: str) -> TemplateModule:
    """`template.make_module(variables)` (the text and the names its `{% set %}` lines export),
    within the sandbox's time and size limits."""
    context = template.new_context(variables)
    with time_limit(what):
        body = _stream(template, context, what)
    return TemplateModule(template, context, body)


def render(template: jinja2.Template, variables: dict[str, Any], what: str) -> str:
    return str(render_module(template, variables, what))
