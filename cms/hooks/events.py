"""Every hook event cms handles, in one table, and the one way each is run.

Claude Code runs a hook as a command with the event's JSON on stdin; it reads what the
command prints. Every entry point of cms's hooks ends here: ``cms hook EVENT`` (the
console script, :mod:`cms.ui.hookrun`), :func:`cms.hooks.child.main` (the child's
``--settings`` hook, :func:`cms.engine.claude.hook_command`; also ``python -m
cms.hooks.child EVENT``), ``python -m cms.hooks.parent EVENT``, and what
``scripts/cms-hook`` runs once its shell tests found work: ``python -m
cms.hooks.events EVENT`` (standard library) or ``python -m cms.ui.hookrun EVENT``
(with the API).
Each :class:`Hook` names its handler as ``module:function``, imported only when its
event comes, so an event costs only its own modules; every handler has one type,
:data:`Handler`: the raw stdin in, what to print out ("" for nothing).

An event whose handler needs the whole of cms (the slash commands need the API) also
names its standard-library part (``light``): what the module entries of
:mod:`cms.hooks` run, for the shell entry, which knows when the rest has nothing to do.

Failing: an event that runs inside a cms child (``in_child``) fails closed there (no
``CMS_SESSION``: open), any other fails open; an unknown event is said on stderr, and
inside a child also denied. The exit status is always 0: 2 would make Claude Code
block the call or the prompt for a misconfigured hook.

Standard library only, and light, since every tool call of every child starts here:
no dataclasses (they load :mod:`inspect`), no NamedTuple or other :mod:`typing` (it
loads :mod:`re`), no :mod:`json` but to deny (:mod:`cms.base.readers` reads).
"""

from __future__ import annotations

import os
import sys

from cms.base import readers, vocab

TYPE_CHECKING = False  # not typing's: see above
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, NoReturn, TypeAlias

    #: A hook handler: the event's JSON as it came on stdin, the environment; returns
    #: what to print on stdout ("" for nothing). Handlers never print themselves.
    Handler: TypeAlias = Callable[[bytes, Mapping[str, str]], str]


class Hook:
    """How one event is handled: ``handler`` as ``module:function``; ``light`` (when the
    handler needs more than the standard library) its standard-library part;
    ``in_child``: it runs inside a cms child (and fails closed there)."""

    __slots__ = ("handler", "in_child", "light")

    def __init__(self, handler: str, light: str | None = None, in_child: bool = False) -> None:
        self.handler, self.light, self.in_child = handler, light, in_child


#: The one table of hook events.
EVENTS: Mapping[str, Hook] = {
    "pre-tool-use": Hook("cms.hooks.child:pre_tool_use", in_child=True),
    "session-start": Hook("cms.hooks.parent:session_start"),
    "stop": Hook("cms.hooks.parent:stop"),
    # The slash commands (the API), else the line of what ended (cms.hooks.parent).
    "user-prompt-submit": Hook(
        "cms.ui.slash:user_prompt_submit", light="cms.hooks.parent:user_prompt_submit"
    ),
    # session-start's output when no session needs the parent (scripts/cms-hook keeps it).
    "guide": Hook("cms.hooks.parent:guide_only"),
    # Not a hook: Claude Code's status line command (``cms statusline``).
    "statusline": Hook("cms.hooks.caps:statusline"),
}


def read_event(raw: bytes) -> dict[str, Any]:
    """The hook's JSON object (an empty input is an empty event); ValueError when it
    is not an object, which fails a hook of the user's session open."""
    event = readers.json_loads(raw or b"{}")
    if not isinstance(event, dict):
        raise ValueError("hook input is not a JSON object")
    return event


def deny(reason: str) -> str:
    """A PreToolUse denial with its one-line reason, as Claude Code 2.1 reads it."""
    import json  # only to deny: allowing prints nothing

    decision = {
        "hookEventName": "PreToolUse",
        "permissionDecision": "deny",
        "permissionDecisionReason": reason,
    }
    return json.dumps({"hookSpecificOutput": decision})


def handler_of(hook: Hook, light: bool = False) -> Handler:
    """The function that handles ``hook`` (its standard-library part with ``light``)."""
    module, _, function = (hook.light if light and hook.light else hook.handler).partition(":")
    __import__(module)  # not importlib: one module fewer on every tool call
    found: Handler = getattr(sys.modules[module], function)
    return found


def warn(message: str) -> None:
    """A line for whoever debugs a session: Claude Code shows a hook's stderr in its
    verbose output only; it never reaches the model."""
    try:
        sys.stderr.write(f"cms hook: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None, *, light: bool = False) -> int:
    """Run the hook for ``argv[0]`` (an event name), its JSON on stdin; always 0."""
    args = sys.argv[1:] if argv is None else argv
    event = args[0] if args else ""
    managed = bool(os.environ.get("CMS_SESSION"))
    hook = EVENTS.get(event)
    if hook is None or len(args) != 1:
        warn(f"unknown hook event {event!r} (expected one of {', '.join(EVENTS)})")
        if managed:
            _emit(deny(f"cms: the cms hook was called for an unknown event {event!r}"))
        return 0
    try:
        output = handler_of(hook, light)(sys.stdin.buffer.read(), os.environ)
    except Exception as exc:
        # In the user's own session a bug must never block the work; inside a managed
        # child it must never let a call through unchecked.
        what = f"{type(exc).__name__}: {vocab.one_line(str(exc), 120, '...')}"
        if not (hook.in_child and managed):
            warn(f"internal error in the {event} hook ({what}); allowing")
            return 0
        warn(f"internal error in the {event} hook ({what}); denying")
        output = deny(f"cms: denied because the cms hook failed ({what}); the call was not checked")
    _emit(output)
    return 0


def leave(code: int) -> NoReturn:
    """End a hook's own process now, its output flushed: nothing is left to do, and
    the interpreter's teardown (every module freed, one by one) costs a hook about a
    fifth of an interpreter's start. Only for a process run for the hook alone (its
    entry point called without arguments), never inside another program."""
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 (contextlib is not loaded on the hook path)
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _emit(output: str) -> None:
    if output:
        try:
            sys.stdout.write(output + "\n")
            sys.stdout.flush()
        except (OSError, ValueError):
            pass


if __name__ == "__main__":  # scripts/cms-hook: python -m cms.hooks.events EVENT
    sys.exit(main(light=True))
