"""The hook of every child session: ``pre-tool-use``, run as ``python -m
cms.hooks.child pre-tool-use`` from the child's ``--settings`` (the event table is
:mod:`cms.hooks.events`; this module's :func:`main` runs it).

This module owns what a Claude Code hook of a cms child does (docs/DESIGN.md, "Safety
presets" and "Architecture notes"). ``pre-tool-use`` runs before every tool call of
every child: it denies every call once :func:`cms.policy.budget.judge` says the
exchange may not go on (aborted, out of budget, past its deadline, project cap
spent), and otherwise asks :mod:`cms.policy.decide` whether the session's preset
allows the call.

It is on the hot path, so it imports only the standard library plus :mod:`cms.base`,
:mod:`cms.hooks.events` and :mod:`cms.policy` (all standard library only), reads the
TOML records directly (the field names are those of :mod:`cms.engine.models`), and
never imports pydantic, click, rich, filelock or the store. Nor, on the common path
(a call allowed or denied by the preset), :mod:`json`, :mod:`tomllib`, :mod:`re`,
:mod:`pathlib` or :mod:`typing`: each costs a good part of an interpreter's start,
and together more than all of it (README, Performance). The JSON and TOML are read by
:mod:`cms.base.readers`, paths are strings.

Inside a managed child (``CMS_SESSION`` set) it fails closed: a call it cannot read
(not JSON, a NUL, a lone surrogate, an input that is not an object), a record it
cannot parse (a child may corrupt its own on purpose), a budget that is not a number,
or an internal error is a denial with a one-line reason. In the user's own session it
fails open: cms breaking must never block the user's work.

Protocol (Claude Code 2.1.x): the hook reads one JSON object on stdin; it denies by
printing ``{"hookSpecificOutput": {"hookEventName": "PreToolUse",
"permissionDecision": "deny", "permissionDecisionReason": ...}}`` and exiting 0, and
allows by printing nothing.
"""

from __future__ import annotations

import os
import sys
import time

from cms.base import paths, readers, vocab
from cms.hooks import events
from cms.policy import budget
from cms.policy import decide as policy

TYPE_CHECKING = False  # not typing's: the hook does without typing (and its re)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


class Refusal(Exception):
    """Inside a managed child, what the hook cannot read or check: a denial whose
    one-line reason is the message (failing closed, since a child may break its own
    record, or send a call the checker cannot read, on purpose)."""


# ------------------------------------------------------------------------ records


def _load_toml(path: str, what: str, missing_ok: bool = False) -> dict[str, Any] | None:
    """The TOML file at ``path``; None when it is missing and ``missing_ok``. Any file
    that cannot be read is a :class:`Refusal`: the store replaces files atomically, so
    a half-written file is never seen and an unreadable one was broken on purpose or
    by hand."""
    try:
        return readers.load_toml(path)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise Refusal(f"its {what} {path} is missing") from None
    except (OSError, ValueError) as exc:  # tomllib.TOMLDecodeError, UnicodeDecodeError
        raise Refusal(f"its {what} {path} cannot be read ({_one_line(str(exc))})") from None


def _one_line(text: str, limit: int = 160) -> str:
    return vocab.one_line(text, limit, "...")


def _number(data: Mapping[str, Any], key: str) -> float | None:
    """A finite number field, or None when absent; any other value is a Refusal (a
    budget that is not a number would otherwise switch the limit off)."""
    try:
        return budget.number(data, key)
    except budget.Unreadable as exc:
        raise Refusal(str(exc)) from None


def stop_reason(name: str, record: Mapping[str, Any], state: str, now: float) -> str | None:
    """Why every tool call of the session must stop (None: it may go on), as
    :func:`cms.policy.budget.judge` finds it over the record and the spend of the
    project whose state folder is ``state`` (:func:`cms.base.paths.state_dir`)."""
    cap = project_cap(state)
    spent = project_spend(state) if cap is not None else None
    try:
        verdict = budget.judge(
            name, record, project_spend=spent, project_cap=cap, now=now, starting=False
        )
    except budget.Unreadable as exc:
        raise Refusal(str(exc)) from None
    return verdict.for_child() if verdict else None


def project_cap(state: str) -> float | None:
    """The project's spend cap (None: none set)."""
    project_file = os.path.join(state, paths.PROJECT_FILE)
    config = _load_toml(project_file, "project file", missing_ok=True)
    limits = config.get("limits") if config else None
    if limits is None:
        return None
    if not isinstance(limits, dict):
        raise Refusal(f"[limits] in {project_file} is not a table")
    return _number(limits, "max_cost_usd")


def project_spend(state: str) -> float:
    """Every session's spend together, from their records (the store's sum, read here
    without the store)."""
    total = 0.0
    sessions_dir = os.path.join(state, paths.SESSIONS)
    try:
        entries = sorted(e.name for e in os.scandir(sessions_dir) if e.name.endswith(".toml"))
    except OSError as exc:
        raise Refusal(f"cannot list {sessions_dir} to check the project's cap ({exc})") from None
    for entry in entries:
        if entry.startswith("."):
            continue
        record = _load_toml(os.path.join(sessions_dir, entry), "session record", missing_ok=True)
        if record:
            total += _number(record, "cost_usd") or 0.0
    return total


# ------------------------------------------------------------------------ events


def _unreadable(value: Any, where: str = "tool_input") -> str | None:
    """Where the call holds text the checker cannot read faithfully: a NUL (the shell
    and the kernel stop a path or an argument there, the checker would not) or a lone
    surrogate (no file name or command can hold one)."""
    if isinstance(value, str):
        if "\x00" in value:
            return f"{where} holds a NUL character"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{where} holds a lone surrogate (not valid Unicode)"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _unreadable(key, where) or _unreadable(item, f"{where}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _unreadable(item, f"{where}[{index}]")
            if found:
                return found
    return None


def _call(raw: bytes) -> tuple[str, dict[str, Any], str | None]:
    """(tool name, tool input, the shell's cwd) of the hook's input, or a Refusal."""
    try:
        payload = readers.json_loads(raw)
    except ValueError as exc:
        raise Refusal(f"the hook's input is not JSON ({_one_line(str(exc))})") from None
    if not isinstance(payload, dict):
        raise Refusal("the hook's input is not a JSON object")
    tool_name = payload.get("tool_name")
    if not isinstance(tool_name, str) or not tool_name:
        raise Refusal("the hook's input names no tool")
    tool_input = payload.get("tool_input", {})
    if not isinstance(tool_input, dict):
        raise Refusal(f"the input of {tool_name} is not an object")
    problem = _unreadable(tool_name, "tool_name") or _unreadable(tool_input)
    if problem:
        raise Refusal(problem)
    shell_cwd = payload.get("cwd")
    if shell_cwd is not None and (not isinstance(shell_cwd, str) or _unreadable(shell_cwd)):
        raise Refusal("the hook's input has an unreadable cwd")
    return tool_name, tool_input, shell_cwd or None


def pre_tool_use(raw: bytes, env: Mapping[str, str], now: float | None = None) -> str:
    """The PreToolUse decision: "" to allow, a deny JSON object to deny.

    In a session cms does not manage (no ``CMS_SESSION``) it allows at once. In a
    managed child every problem is a denial (:class:`Refusal`)."""
    name = env.get("CMS_SESSION", "")
    if not name:  # the user's own session: only caps over all of Claude Code apply
        if not os.path.isdir(os.path.join(paths.home_dir(env), "capped")):
            return ""
        from cms.hooks import caps

        return caps.pre_tool_use(raw, env)
    try:
        return _decide(name, raw, env, time.time() if now is None else now)
    except Refusal as refusal:
        reason = f"cms: denied because {refusal}; the call was not checked, so it is refused"
        return events.deny(reason)


def _decide(name: str, raw: bytes, env: Mapping[str, str], now: float) -> str:
    if not paths.valid_name(name):
        raise Refusal(f"CMS_SESSION={name[:80]!r} is not a valid session name")
    home = paths.home_dir(env)
    project = paths.project_dir(env=env)
    key = paths.project_key(project)
    state = paths.state_dir(home, key)
    record = _load_toml(os.path.join(state, paths.SESSIONS, f"{name}.toml"), "session record")
    assert record is not None
    reason = stop_reason(name, record, state, now)
    if reason is None and os.path.exists(os.path.join(home, "capped", key)):
        from cms.hooks import caps  # only in a project with caps over all of Claude Code

        reason = caps.child_reason(raw, env, now)
    if reason is not None:
        return events.deny(reason)
    tool_name, tool_input, shell_cwd = _call(raw)
    preset = record.get("preset", "edit")
    if not isinstance(preset, str):
        raise Refusal(f"preset = {preset!r} in its record is not a preset name")
    worktree = record.get("cwd") or env.get("CMS_PROJECT") or shell_cwd
    if not isinstance(worktree, str) or not worktree:
        worktree = project
    temp = record.get("temp_dir")
    decision = policy.decide(
        preset,
        tool_name,
        tool_input,
        worktree,
        home,
        cwd=shell_cwd,
        home=env.get("HOME") or None,
        # The turn's private temp folder (its commands' TMPDIR), never /tmp itself.
        temp_dirs=[temp] if isinstance(temp, str) and temp else [],
        # Records written before the sandbox existed lack the key: strict, as they ran.
        sandboxed=record.get("sandbox") is True,
    )
    return "" if decision.allow else events.deny(decision.reason)


def main(argv: list[str] | None = None) -> int:
    """The child's hook command (``python -S -P -c ...main()`` or ``python -m
    cms.hooks.child EVENT``): the hook of the one table (:mod:`cms.hooks.events`),
    standard library only; always exits 0. Called without ``argv``, as those command
    lines call it, it ends the process itself (:func:`cms.hooks.events.leave`)."""
    code = events.main(argv, light=True)
    if argv is None:
        events.leave(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
