"""The `harness` command line: one module per command group, parsing and printing only."""

from harness.cli.root import app, main

__all__ = ["app", "main"]
