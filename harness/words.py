"""Counts in sentences a reader sees: "1 trial", "2 trials", "1,024 rows". Pure."""

from __future__ import annotations


def counted(n: int, noun: str) -> str:
    """`n` and the noun, plural unless n is 1 (regular plurals: every noun the harness counts)."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
