"""Running one hook event: ``cms hook EVENT`` from the console script or the CLI,
through the one table of hook events (:mod:`cms.hooks.events`).

Standard library only: it is on the path of every hook call that comes through the
``cms`` command.
"""

from __future__ import annotations

import sys


def run_hook(event: str) -> int:
    """Run one hook event (its JSON on stdin), with the whole of its handler: ``cms``
    is installed with its dependencies. An unknown event is said on stderr (and, in a
    child, denied): a misconfigured hook must not exit 2, which would block the call."""
    from cms.hooks import events

    return events.main([event])


if __name__ == "__main__":  # scripts/cms-hook: python -m cms.ui.hookrun EVENT
    sys.exit(run_hook(sys.argv[1] if len(sys.argv) == 2 else ""))
