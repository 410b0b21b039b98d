"""The layout's rules, checked on every run of the unit tier (import-linter checks the layers and
cycles in `make lint`): small modules, short functions, and an import inside a function only to
defer a heavy third-party library (HEAVY), never to dodge a cycle."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[1] / "harness"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
# The process entry re-executes itself before the CLI loads: its one import of the harness waits.
DEFERRED_ON_PURPOSE = {"cli/launch.py"}
# What a function may import where it is used: libraries that take a noticeable part of a second
# (or seconds) to import and that most commands never need. Anything else, a module's top.
HEAVY = {
    "torch", "transformers", "peft", "vllm", "tokenizers", "safetensors", "huggingface_hub", "datasets", "evaluate",
    "rouge_score", "scipy", "sklearn", "pandas", "matplotlib", "ray", "optuna",
}  # fmt: skip


def _modules() -> list[Path]:
    return sorted(HARNESS.rglob("*.py"))


def _functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def test_no_module_is_over_500_lines():
    long = {str(p.relative_to(HARNESS)): n for p in _modules() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, long


def test_no_function_is_over_80_lines():
    long = {}
    for p in _modules():
        for f in _functions(ast.parse(p.read_text())):
            start = f.decorator_list[0].lineno if f.decorator_list else f.lineno
            if (n := f.end_lineno - start + 1) > MAX_FUNCTION_LINES:
                long[f"{p.relative_to(HARNESS)}:{f.name}"] = n
    assert not long, long


def test_imports_inside_functions_defer_heavy_libraries_only():
    found = []
    for p in _modules():
        if str(p.relative_to(HARNESS)) in DEFERRED_ON_PURPOSE:
            continue
        for f in _functions(ast.parse(p.read_text())):
            for node in ast.walk(f):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or "."]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                for name in names:
                    top = name.split(".")[0]
                    if top not in HEAVY:
                        found.append(f"{p.relative_to(HARNESS)}:{node.lineno} {f.name} imports {name}")
    assert not found, found


def test_the_rules_can_fail(tmp_path, monkeypatch):
    """A module that breaks each rule is caught: the checks above are not vacuous."""
    bad = tmp_path / "harness"
    bad.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(90))
    (bad / "m.py").write_text(
        "def f():\n    import json\n    import numpy\n    from harness import core\n    import torch\n"
        + body + "\n" + "#\n" * 420
    )  # fmt: skip
    monkeypatch.setattr(sys.modules[__name__], "HARNESS", bad)
    for check in (test_no_module_is_over_500_lines, test_no_function_is_over_80_lines,
                  test_imports_inside_functions_defer_heavy_libraries_only):  # fmt: skip
        try:
            check()
        except AssertionError as exc:
            caught = str(exc)
            continue
        raise AssertionError(f"{check.__name__} passed a module that breaks it")
    # the standard library, a light library and the harness are each caught; a heavy one is not
    assert all(f"imports {name}" in caught for name in ("json", "numpy", "harness")), caught
    assert "imports torch" not in caught, caught
