"""The `harness` command: a command that runs a model re-executes itself once with tcmalloc
preloaded (harness.allocator says when and why), then the CLI runs. Kept apart from
harness.cli.main, which tests and embedding programs call inside their own process: replacing that
process is this entry's job only.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    from harness import allocator

    env = allocator.relaunch_env(os.environ, sys.argv[1:], allocator.tcmalloc(), allocator.gpu_machine())
    if env is not None:
        # the same interpreter, options and arguments (a console script, `python -m`, `-c`), the same
        # process id: whatever waits on this process waits on the relaunched one
        os.execve(sys.executable, sys.orig_argv, env)
    from harness.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
