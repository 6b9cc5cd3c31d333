"""The plugin's argument-taking slash commands, run from the UserPromptSubmit hook.

:func:`run` takes a command already parsed from the prompt (by
:func:`cms.parent_hooks.parse_command`), calls :mod:`cms.api` exactly as the CLI would,
and returns the text put into the parent model's context: what happened, the session's
status, cost and response, or the one-line error and what to do. It never raises.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from cms import api
from cms.errors import CmsError
from cms.models import SessionRecord

#: How long a slash command waits for a turn before answering "still running"
#: (seconds). Stays under the hook's own timeout in hooks/hooks.json (600 s).
WAIT_S = 540.0


def _number(options: Mapping[str, str | bool], key: str, kind: type) -> Any:
    value = options.get(key)
    if value is None or isinstance(value, bool):
        return None
    try:
        return kind(value)
    except ValueError:
        raise CmsError(f"invalid {key} {value!r}: give a number", 2) from None


def describe(record: SessionRecord, verb: str) -> str:
    lines = [
        f"cms {verb}: session {record.name} is {record.status.value} "
        f"(preset {record.preset.value}, cost ${record.cost_usd:.4f}, turns {record.turns})."
    ]
    if record.status.active:
        lines.append(
            f"It is still running. Check it later with /cms:result {record.name} "
            f"or `cms wait {record.name}`."
        )
    if record.notice:
        lines.append(f"Note: {record.notice}")
    if record.error:
        lines.append(f"Error: {record.error}")
    if record.response:
        lines.append(f"Response of {record.name}:")
        lines.append(record.response)
    return "\n".join(lines)


def _split_name(text: str) -> tuple[str, str]:
    match = re.match(r"\s*(\S+)\s?", text)
    if match is None:
        raise CmsError("give the session's name first", 2)
    return match.group(1), text[match.end() :]


def run(
    command: str,
    options: Mapping[str, str | bool],
    text: str,
    event: Mapping[str, Any],
    env: Mapping[str, str],
) -> str:
    """Run one slash command; the outcome (or error) as text for the model."""
    try:
        return _run(command, options, text, event, env)
    except CmsError as exc:
        return f"cms {command} failed: {exc.message}"


def _run(
    command: str,
    options: Mapping[str, str | bool],
    text: str,
    event: Mapping[str, Any],
    env: Mapping[str, str],
) -> str:
    child_env = dict(env)
    parent = event.get("session_id")
    if isinstance(parent, str) and parent:
        child_env["CLAUDE_CODE_SESSION_ID"] = parent
    cwd = event.get("cwd") if isinstance(event.get("cwd"), str) else os.getcwd()
    project = api.open_project(cwd, child_env)
    background = bool(options.get("--background"))

    def finish_turn(record: SessionRecord, verb: str) -> str:
        if not background and record.status.active:
            [record] = api.wait_sessions(project, [record.name], timeout_s=WAIT_S)
        return describe(record, verb)

    if command == "delegate":
        opts = api.Options(
            preset=str(options["--preset"]) if options.get("--preset") else None,
            model=str(options["--model"]) if options.get("--model") else None,
            max_cost_usd=_number(options, "--max-cost", float),
            max_turns=_number(options, "--max-turns", int),
            timeout_s=_number(options, "--timeout", float),
            cwd=str(options["--cwd"]) if options.get("--cwd") else None,
            worktree=bool(options.get("--worktree")),
            sandbox=not options.get("--no-sandbox"),
        )
        name = str(options["--name"]) if options.get("--name") else None
        return finish_turn(api.delegate(project, text, name, opts), "delegate")
    name, rest = _split_name(text)
    if command == "send":
        return finish_turn(api.send_message(project, name, rest), "send")
    if command == "continue":
        record = api.continue_task(
            project,
            name,
            rest,
            _number(options, "--add-cost", float),
            _number(options, "--add-turns", int),
        )
        return finish_turn(record, "continue")
    if command == "result":
        return describe(api.get_session(project, name, mark_read=True), "result")
    if command == "abort":
        return describe(api.abort_session(project, name), "abort")
    if command == "finish":
        return describe(api.finish_session(project, name), "finish")
    if command == "resume":
        record = api.resume_session(project, name, rest or None, fresh=bool(options.get("--fresh")))
        return finish_turn(record, "resume")
    if command == "fork":
        new, message = _split_name(rest)
        return finish_turn(api.fork_session(project, name, new, message or None), "fork")
    raise CmsError(f"unknown command {command!r}", 2)
