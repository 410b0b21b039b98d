"""The machine ran out of disk or memory, or a folder the harness must write is read-only: one
line saying so and what helps, for an exception raised anywhere (libraries wrap the cause: an
OSError inside a RuntimeError, SQLite's text, safetensors' `StorageFull`, torch's
`OutOfMemoryError`). Not a bug and not the user's typo, so neither an "internal error" nor a
traceback. Finished work is saved: a rerun resumes, and a record the full disk cut short is dropped
and asked again (measured on a full tmpfs: 60 of 60 records, none doubled, no broken line)."""

from __future__ import annotations

import errno

from harness.core.files import cache_root
from harness.engines import cache_usage as cu


def describe(exc: BaseException) -> str | None:
    """The one line for a full disk, exhausted memory or a file the harness may not write, anywhere
    in the chain, else None."""
    return _disk_full(exc) or _out_of_memory(exc) or _not_permitted(exc)


def _not_permitted(exc: BaseException) -> str | None:
    """A folder it must write is read-only or another user's (a shared HARNESS_CACHE, a mounted
    results folder): the file and what to do, found wherever the write was (a model pull's, a
    library's); checked last, so a full disk is said as such."""

    for seen in _chain(exc):
        if isinstance(seen, OSError) and seen.errno in (errno.EACCES, errno.EROFS, errno.EPERM) and seen.filename:
            return (
                f"{(seen.strerror or 'not permitted').lower()}: {seen.filename}; finished work is saved; give the "
                "harness folders it can write (HARNESS_CACHE for its cache, --results for runs) and rerun the same command"
            )
    return None


def _disk_full(exc: BaseException) -> str | None:
    """One line for a full disk (or quota) anywhere in the exception's chain, else None: an OSError
    of ENOSPC/EDQUOT, SQLite's "database or disk is full", or a library's wrapping of either."""

    for seen in _chain(exc):
        text = str(seen)
        if (isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT)) or any(
            s in text for s in ("No space left on device", "database or disk is full", "StorageFull", "Disk quota")
        ):
            where = f" writing {seen.filename}" if isinstance(seen, OSError) and seen.filename else ""
            said = f"no space left on device{where}: finished work is saved; free space and rerun the same command to resume"
            try:
                root = cache_root()
                held = cu.human(sum(u.bytes for u in cu.usage(root)))
            except Exception:  # the hint is a courtesy: the error line must come out whatever the cache's state
                return said
            hint = f"the harness cache, {root}, holds {held}: `harness cache` lists its parts and what clearing each costs"
            return f"{said} ({hint})"
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and those it was raised from or during (libraries wrap the cause)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 16:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _out_of_memory(exc: BaseException) -> str | None:
    """One line for memory exhausted anywhere in the chain (Python's MemoryError, torch's
    OutOfMemoryError on CUDA, its CPU allocator's refusal), else None."""
    for seen in _chain(exc):
        text = str(seen)
        if "less than requested memory for kv" in text:  # vLLM's CPU worker, sizing its KV cache at start
            return (
                "not enough free memory for the engine's KV cache: finished work is saved; set VLLM_CPU_KVCACHE_SPACE "
                "to fewer GiB (room for one full-length request is the least vLLM takes), free memory or use a "
                "smaller model, and rerun the same command to resume"
            )
        gpu = type(seen).__name__ == "OutOfMemoryError" or "CUDA out of memory" in text
        if gpu or isinstance(seen, MemoryError) or "can't allocate memory" in text or "not enough memory" in text:
            return (
                f"out of {'GPU ' if gpu else ''}memory: finished work is saved; hold less at once (training: a "
                "smaller [task.train] batch_size with a larger grad_accum keeps the effective batch, or a smaller "
                "max_seq_len; else a smaller model) and rerun the same command to resume"
            )
    return None
