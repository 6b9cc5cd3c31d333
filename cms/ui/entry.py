"""The ``cms`` console script: ``cms hook EVENT`` without the command line's weight.

Hook events run on every tool call of a child and at every prompt, start and stop of
the user's sessions, so ``cms hook EVENT`` must cost about what the child's own hook
command costs: an interpreter and the standard library. This module looks at the
arguments first and imports the click CLI (:mod:`cms.ui.cli`) only for every other
command. Standard library only.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run ``cms ARGS``: a hook event directly, anything else through the CLI."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) >= 2 and args[0] == "hook":
        from cms.ui.hookrun import run_hook

        return run_hook(args[1])
    if args == ["statusline"]:  # Claude Code runs it at every update of its status line
        from cms.hooks import caps

        return caps.main(["statusline"])
    from cms.ui import cli  # the command line, only for the commands that need it

    cli.main_and_leave(args)


if __name__ == "__main__":
    sys.exit(main())
