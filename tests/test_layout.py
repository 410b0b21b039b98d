"""The layout's rules, checked on every run of the unit tier (import-linter checks the layers and
cycles in `make lint`): small modules, short functions, and an import inside a function only to
defer a heavy third-party library, never to dodge a cycle."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[1] / "harness"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
# The process entry re-executes itself before the CLI loads: its one import of the harness waits.
DEFERRED_ON_PURPOSE = {"cli/launch.py"}


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


def test_imports_inside_functions_defer_third_party_libraries_only():
    stdlib = set(sys.stdlib_module_names)
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
                    if top in ("harness", "", ".") or top in stdlib:
                        found.append(f"{p.relative_to(HARNESS)}:{node.lineno} {f.name} imports {name}")
    assert not found, found


def test_the_rules_can_fail(tmp_path, monkeypatch):
    """A module that breaks each rule is caught: the checks above are not vacuous."""
    bad = tmp_path / "harness"
    bad.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(90))
    (bad / "m.py").write_text("def f():\n    import json\n    from harness import core\n" + body + "\n" + "#\n" * 420)
    monkeypatch.setattr(sys.modules[__name__], "HARNESS", bad)
    for check in (test_no_module_is_over_500_lines, test_no_function_is_over_80_lines,
                  test_imports_inside_functions_defer_third_party_libraries_only):  # fmt: skip
        try:
            check()
        except AssertionError:
            continue
        raise AssertionError(f"{check.__name__} passed a module that breaks it")
