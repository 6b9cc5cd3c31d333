"""Hook entry points that run inside child sessions: ``python -m cms.hook EVENT``.

This module owns what a Claude Code hook of a cms child does (DESIGN.md, "Safety
presets" and "Architecture notes"). ``pre-tool-use`` runs before every tool call of
every child: it denies every call once the session's record says stop (aborted, out of
budget, past its deadline, project cap spent), and otherwise asks :mod:`cms.policy`
whether the session's preset allows the call. The parent's events
(``session-start``, ``stop``, ``user-prompt-submit``) are passed to
:mod:`cms.parent_hooks`.

It is on the hot path, so it imports only the standard library plus :mod:`cms.paths`
and :mod:`cms.policy` (both standard library only), reads the TOML records with
:mod:`tomllib` directly (the field names are those of :mod:`cms.models`), and never
imports pydantic, click, rich, filelock or the store. A bug here must never block a
session by accident: everything is caught at the top and the call is allowed, with one
line on stderr. The exception is the session's own record: when it says stop, the
call is denied.

Protocol (Claude Code 2.1.x): the hook reads one JSON object on stdin; it denies by
printing ``{"hookSpecificOutput": {"hookEventName": "PreToolUse",
"permissionDecision": "deny", "permissionDecisionReason": ...}}`` and exiting 0, and
allows by printing nothing.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import tomllib
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

from cms import paths, policy

#: A hook handler reads the event's JSON from ``stdin`` and returns what to print on
#: stdout ("" for nothing). Handlers must not print themselves.
Handler = Callable[[BinaryIO, Mapping[str, str]], str]


def _warn(message: str) -> None:
    # Claude Code shows a hook's stderr in verbose/debug output only; it never reaches
    # the model, so this is for whoever debugs a session.
    try:
        sys.stderr.write(f"cms hook: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


# ------------------------------------------------------------------------ records


def _load_toml(path: str, what: str, missing_ok: bool = False) -> dict[str, Any] | None:
    """The TOML file at ``path``, or None (with one line on stderr) when it cannot be
    read. The store replaces files atomically, so a read never sees half a file."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        if not missing_ok:
            _warn(f"{what} {path} not found; allowing the call")
        return None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        _warn(f"cannot read {what} {path} ({exc}); allowing the call")
        return None


def _number(data: Mapping[str, Any], key: str) -> float | None:
    """A finite number field, or None when absent or not a number (bools are not)."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        _warn(f"ignoring {key} = {value!r}: not a finite number")
        return None
    return float(value)


def _usd(amount: float) -> str:
    return f"${amount:.4f}" if 0 < amount < 0.01 else f"${amount:.2f}"


def session_stop_reason(name: str, record: Mapping[str, Any], now: float) -> str | None:
    """Why the session's own record says every tool call must stop (None: it does not)."""
    if record.get("status") == "aborted" or record.get("abort_requested") is True:
        return f"cms: session '{name}' was aborted; stop now and end your turn"
    cost, max_cost = _number(record, "cost_usd"), _number(record, "max_cost_usd")
    if max_cost is not None and (cost or 0.0) >= max_cost:
        return (
            f"cms: session '{name}' has spent {_usd(cost or 0.0)} of its "
            f"{_usd(max_cost)} budget; stopping"
        )
    # The CLI enforces --max-turns itself and still runs the tool calls of the last turn;
    # this only catches a session that is already past its limit.
    turns, max_turns = _number(record, "turns"), _number(record, "max_turns")
    if max_turns is not None and turns is not None and turns > max_turns:
        return f"cms: session '{name}' has used {turns:g} of its {max_turns:g} turns; stopping"
    deadline = _number(record, "deadline")
    if deadline is not None and now >= deadline:
        return (
            f"cms: session '{name}' is past its deadline (the turn's timeout ran out "
            f"{now - deadline:.0f}s ago); stopping"
        )
    return None


def project_stop_reason(project_paths: paths.ProjectPaths) -> str | None:
    """Why the project's spend cap stops every session (None: no cap, or not reached)."""
    config = _load_toml(str(project_paths.project_file), "project file", missing_ok=True)
    limits = config.get("limits") if config else None
    if not isinstance(limits, dict):
        return None
    cap = _number(limits, "max_cost_usd")
    if cap is None:
        return None
    total = 0.0
    sessions_dir = str(project_paths.sessions_dir)
    try:
        entries = sorted(e.name for e in os.scandir(sessions_dir) if e.name.endswith(".toml"))
    except OSError as exc:
        _warn(f"cannot list {sessions_dir} ({exc}); project cap not checked")
        return None
    for entry in entries:
        record = _load_toml(os.path.join(sessions_dir, entry), "session record", missing_ok=True)
        if record:
            total += _number(record, "cost_usd") or 0.0
    if total >= cap:
        return (
            f"cms: the project has spent {_usd(total)} of its {_usd(cap)} cap over all "
            f"sessions; stopping"
        )
    return None


# ------------------------------------------------------------------------ events


def _deny(reason: str) -> str:
    return json.dumps(
        {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": reason,
            }
        }
    )


def pre_tool_use(stdin: BinaryIO, env: Mapping[str, str], now: float | None = None) -> str:
    """The PreToolUse decision: "" to allow, a deny JSON object to deny."""
    name = env.get("CMS_SESSION", "")
    if not name:
        return ""  # not a session cms manages (the user's own session)
    if not paths.valid_name(name):
        _warn(f"CMS_SESSION={name!r} is not a valid session name; allowing the call")
        return ""
    # Read all of stdin before deciding: Claude Code writes the whole call (a Write's
    # content too) and should never meet a closed pipe.
    raw = stdin.read()
    home = paths.cms_home(env)
    project = paths.resolve_project(env=env)
    project_paths = paths.ProjectPaths.for_project(project, home)
    record = _load_toml(str(project_paths.session_file(name)), "session record")
    if record is None:
        return ""

    reason = session_stop_reason(name, record, time.time() if now is None else now)
    if reason is None:
        reason = project_stop_reason(project_paths)
    if reason is not None:
        return _deny(reason)

    try:
        payload = json.loads(raw)
    except ValueError as exc:
        _warn(f"hook input is not JSON ({exc}); allowing the call")
        return ""
    tool_name = payload.get("tool_name") if isinstance(payload, dict) else None
    if not isinstance(tool_name, str) or not tool_name:
        _warn("hook input has no tool_name; allowing the call")
        return ""
    tool_input = payload.get("tool_input")
    if not isinstance(tool_input, dict):
        tool_input = {}
    shell_cwd = payload.get("cwd")

    preset = record.get("preset", "edit")
    worktree = record.get("cwd") or env.get("CMS_PROJECT") or shell_cwd
    if not isinstance(worktree, str) or not worktree:
        worktree = str(project)
    # No temp folders: DESIGN.md's edit preset denies every write outside the tree.
    temp_dirs: list[str] = []
    decision = policy.decide(
        preset if isinstance(preset, str) else repr(preset),
        tool_name,
        tool_input,
        worktree,
        str(home),
        cwd=shell_cwd if isinstance(shell_cwd, str) and shell_cwd else None,
        home=env.get("HOME") or None,
        temp_dirs=temp_dirs,
    )
    return "" if decision.allow else _deny(decision.reason)


HANDLERS: Mapping[str, Handler] = {
    "pre-tool-use": pre_tool_use,
}
#: Hooks of the parent session live in cms.parent_hooks (also standard library only).
PARENT_EVENTS = ("session-start", "stop", "user-prompt-submit")


def main(argv: list[str] | None = None) -> int:
    """Run the hook for ``argv[0]`` (an event name); always exits 0.

    Exit status 2 would make Claude Code block the call, so even a usage error returns
    0: a misconfigured hook must not stop the session.
    """
    args = sys.argv[1:] if argv is None else argv
    event = args[0] if args else ""
    if event in PARENT_EVENTS:
        from cms import parent_hooks

        return parent_hooks.main([event])
    try:
        handler = HANDLERS.get(event)
        if handler is None:
            _warn(f"unknown hook event {event!r} (expected one of {', '.join(HANDLERS)})")
            return 0
        output = handler(sys.stdin.buffer, os.environ)
        if output:
            sys.stdout.write(output + "\n")
            sys.stdout.flush()
    except BaseException as exc:  # a bug must never block a session by accident
        _warn(f"internal error in the {event} hook ({type(exc).__name__}: {exc}); allowing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
