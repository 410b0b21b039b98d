"""Files the harness writes and reads back: whole files replaced atomically, JSON read with one-line
errors, folders built under a temporary name, the cache's root. No harness imports but errors."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.core.errors import UserError


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes files private; results are meant to be shared and read
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path} not found: is {path.parent} a run directory?") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is corrupt (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:  # 100,000 nested brackets: no file the harness writes
        raise UserError(f"{path} is corrupt (nested too deeply)") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is corrupt (not UTF-8 at byte {exc.start})") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None


@contextlib.contextmanager
def staged_dir(target: Path) -> Iterator[Path]:
    """Build a directory under a temporary name beside `target`, then rename it into place: a
    crash leaves no half-built directory that a later run would trust."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; caches are shared by the machine's users
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def check_writable(directory: Path, what: str = "results folder") -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".probe-"):
            pass
    except OSError as exc:
        raise UserError(f"{what} {directory} is not writable ({exc.strerror})") from None


def cache_root() -> Path:
    """HARNESS_CACHE, else ~/.cache/harness: a folder (missing is fine, it is made when written)."""
    root = Path(os.environ.get("HARNESS_CACHE") or Path.home() / ".cache" / "harness")
    if root.exists() and not root.is_dir():
        raise UserError(f"HARNESS_CACHE={root} is a file; point it at a folder (made if missing) or unset it")
    return root


_SHA_MEMO: dict[tuple[str, int, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, memoised on (path, inode, size, mtime): validating adapters on every
    generate() call must not re-read their weights each time."""
    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = _sha256(path)
    return _SHA_MEMO[key]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
