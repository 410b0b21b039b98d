"""Counts in sentences a reader sees: "1 trial", "2 trials", "1,024 rows". Pure."""

from __future__ import annotations


def counted(n: int, noun: str) -> str:
    """`n` and the noun, plural unless n is 1 (regular plurals: every noun the harness counts)."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def verb(n: int, plural: str) -> str:
    """The present-tense verb that agrees with a count of n: verb(1, "appear") is "appears"."""
    return plural + "s" if n == 1 else plural
