"""User-facing errors: the CLI prints them as one line and exits with status 2."""


class UserError(Exception):
    """A mistake in what the user asked for (a name, a path, a size). Never a bug."""


def closest(name: str, known: list[str] | tuple[str, ...]) -> str:
    """A ', did you mean X?' suffix when a close known name exists, else ''."""
    import difflib

    hits = difflib.get_close_matches(name, list(known), n=2, cutoff=0.5)
    return f"; did you mean {' or '.join(hits)}?" if hits else ""
