"""Running one hook event: ``cms hook EVENT`` from the console script or the CLI.

Standard library only: it is on the path of every hook call that comes through the
``cms`` command.
"""

from __future__ import annotations

#: Where each hook event is handled: the standard-library hooks, or (for the slash
#: commands, which need the API) the UI's runner.
HOOK_MODULES = {
    "pre-tool-use": "cms.hooks.child",
    "session-start": "cms.hooks.parent",
    "stop": "cms.hooks.parent",
    "user-prompt-submit": "cms.ui.slash",
}


def run_hook(event: str) -> int:
    """Run one hook event (its JSON on stdin). An unknown event goes to the child
    hook, which says so (and, in a child, denies): a misconfigured hook must not exit
    2, which would block the call."""
    import importlib

    module = importlib.import_module(HOOK_MODULES.get(event, "cms.hooks.child"))
    code: int = module.main([event])
    return code
