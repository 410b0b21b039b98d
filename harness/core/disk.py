"""Bytes a path takes, without following links (a linked folder is another's, and is not ours to count)."""

from __future__ import annotations

import os
from pathlib import Path


def bytes_under(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            try:
                total += (Path(folder) / name).lstat().st_size
            except OSError:
                continue  # removed while we walked
    return total
