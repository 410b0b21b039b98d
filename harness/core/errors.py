"""User-facing errors: the CLI prints them as one line and exits with status 2."""

import difflib
import os
import stat


class UserError(Exception):
    """A mistake in what the user asked for (a name, a path, a size). Never a bug."""


# The names other tools give our settings (transformers' TrainingArguments, peft's LoraConfig):
# spelling distance alone would not lead a user from one to the other.
SYNONYMS = {
    "learning_rate": "lr", "num_train_epochs": "epochs", "num_epochs": "epochs", "r": "rank", "lora_rank": "rank",
    "lora_r": "rank", "lora_alpha": "alpha", "lora_dropout": "dropout", "per_device_train_batch_size": "batch_size",
    "gradient_accumulation_steps": "grad_accum", "max_length": "max_seq_len", "lr_scheduler_type": "schedule",
    "warmup": "warmup_ratio", "n_shots": "shots", "num_shots": "shots", "k": "shots", "prompt": "template",
}  # fmt: skip


def closest(name: str, known: list[str] | tuple[str, ...]) -> str:
    """A ', did you mean X?' suffix when a close known name exists, else ''."""

    if SYNONYMS.get(name) in known:
        return f"; did you mean {SYNONYMS[name]}?"
    hits = difflib.get_close_matches(name, list(known), n=2, cutoff=0.5)
    return f"; did you mean {' or '.join(hits)}?" if hits else ""


def not_utf8(what: str, exc: UnicodeDecodeError) -> UserError:
    """A file the user wrote in another encoding (Latin-1, Windows-1252): where, and what to do."""
    raw = bytes(exc.object)
    line = raw.count(b"\n", 0, exc.start) + 1
    column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
    return UserError(
        f"{what} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line}, column {column}); save it as UTF-8"
    )


def shown(value: object) -> str:
    """A path or name as a message shows it: as written, or quoted with escapes when it holds
    whitespace or an invisible character (a trailing newline in HARNESS_DATA_DIR printed as a space)."""
    text = str(value)
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        return repr(text)
    return text


def file_kind(path: object) -> str:
    """What a path that is not a regular file is, for a message ("a named pipe", "a folder")."""

    try:
        mode = os.stat(str(path)).st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    for test, what in (
        (stat.S_ISREG, "a file"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe, not a file"),
        (stat.S_ISSOCK, "a socket, not a file"),
        (stat.S_ISCHR, "a device, not a file"),
        (stat.S_ISBLK, "a device, not a file"),
    ):
        if test(mode):
            return what
    return "not a regular file"
