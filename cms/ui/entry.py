"""The ``cms`` console script: ``cms hook EVENT`` without the command line's weight.

Hook events run on every tool call of a child and at every prompt, start and stop of
the user's sessions, so ``cms hook EVENT`` must cost about what the child's own hook
command costs: an interpreter and the standard library. This module looks at the
arguments first and imports the click CLI (:mod:`cms.ui.cli`) only for every other
command. Standard library only.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing's: importing typing costs the hook a few milliseconds
if TYPE_CHECKING:
    from typing import NoReturn


def main(argv: list[str] | None = None) -> int:
    """Run ``cms ARGS``: a hook event directly, anything else through the CLI."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) >= 2 and args[0] == "hook":
        from cms.ui.hookrun import run_hook

        code = run_hook(args[1])
        if argv is None:  # the console script's process: it ends now, as the CLI's does
            from cms.hooks.events import leave

            leave(code)
        return code
    if args == ["statusline"]:  # Claude Code runs it at every update of its status line
        from cms.hooks import caps

        return caps.main(["statusline"])
    main_and_leave(args)


def main_and_leave(args: list[str]) -> NoReturn:
    """The click CLI (:func:`cms.ui.cli.main`) as a process runs it, then the process
    ends at once: with the output flushed nothing is left to do, and tearing down an
    interpreter that loaded click and the API costs tens of milliseconds of every
    command (a delegation's fixed cost; README, Performance). An uncaught exception
    still ends it the usual way."""
    import os

    from cms.ui import cli  # the command line, only for the commands that need it

    code = 0
    try:
        cli.main(args)
    except SystemExit as exc:
        if isinstance(exc.code, int):
            code = exc.code
        elif exc.code is not None:
            sys.stderr.write(f"{exc.code}\n")
            code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
