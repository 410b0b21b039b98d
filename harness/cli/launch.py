"""The `harness` command: a command that runs a model re-executes itself once with tcmalloc
preloaded (harness.core.allocator says when and why), then the CLI runs. Kept apart from
harness.cli.main, which tests and embedding programs call inside their own process: replacing that
process is this entry's job only.
"""

from __future__ import annotations

import os
import sys

from harness.core import allocator


def main() -> None:
    env = allocator.relaunch_env(os.environ, sys.argv[1:], allocator.tcmalloc(), allocator.gpu_machine())
    if env is not None:
        # the same interpreter, options and arguments (a console script, `python -m`, `-c`), the same
        # process id: whatever waits on this process waits on the relaunched one
        os.execve(sys.executable, sys.orig_argv, env)
    # The one import of the harness inside a function: the CLI (typer, rich and every command's
    # modules) loads after the relaunch, not twice.
    from harness import cli

    cli.main()


if __name__ == "__main__":
    main()
