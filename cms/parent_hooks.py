"""Hooks of the parent session (the user's own Claude Code, with the plugin loaded).

- ``session-start``: the strategy guide (CLAUDE.md) and, when the project has sessions
  that are running, queued, interrupted, or completed and not yet read, a short note
  naming them and how to continue. Nothing about sessions when there are none.
- ``stop``: when the parent is about to stop while sessions it started are still
  running, or ended with results it has not read, hold the stop once with a reason
  naming them. Never twice in a row (``stop_hook_active``), never a parent that
  started none.
- ``user-prompt-submit``: runs the plugin's argument-taking slash commands
  (``/cms:delegate``, ``/cms:send``, ...). The prompt arrives here as JSON, so what the
  user typed reaches cms as data: no shell ever sees it (a ``!`` pre-execution line
  with ``$ARGUMENTS`` would hand it to a shell). The outcome goes back to the model
  as additional context of that very prompt.

``session-start`` and ``stop`` read the records with :mod:`tomllib` and the standard
library only: they run at every start and every stop of the user's sessions.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from cms import paths, procs

ACTIVE = ("running", "queued")
ENDED = ("completed", "failed", "cost_exceeded", "turns_exceeded", "timed_out", "aborted")
#: Longest response text put into the parent's context (characters).
CONTEXT_LIMIT = 20_000


def _records(env: Mapping[str, str], cwd: str | None) -> list[dict[str, Any]]:
    project = paths.resolve_project(None, env, Path(cwd) if cwd else None)
    where = paths.ProjectPaths.for_project(project, paths.cms_home(env))
    found: list[dict[str, Any]] = []
    try:
        names = sorted(os.listdir(where.sessions_dir))
    except OSError:
        return found
    for entry in names:
        if not entry.endswith(".toml") or entry.startswith("."):
            continue
        try:
            with open(where.sessions_dir / entry, "rb") as handle:
                data = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            continue
        if data.get("status") == "running" and not _supervisor_alive(data):
            data["status"] = "interrupted"
        found.append(data)
    return found


def _supervisor_alive(record: Mapping[str, Any]) -> bool:
    """:func:`cms.procs.supervisor_alive` on a record read with tomllib."""

    def field(key: str, kind: type) -> Any:
        value = record.get(key)
        return value if isinstance(value, kind) and not isinstance(value, bool) else None

    marked_at = field("turn_started_at", datetime) or field("updated_at", datetime)
    return procs.supervisor_alive(field("pid", int), field("pid_started", int), marked_at)


def _names(records: list[dict[str, Any]]) -> str:
    return ", ".join(f"{r.get('name')} ({r.get('status')})" for r in records)


#: The strategy guide for the parent, shipped as the plugin's skill.
GUIDE = Path(__file__).resolve().parent.parent / "skills" / "delegating" / "SKILL.md"


def _guide() -> str:
    """The guide's text without its frontmatter."""
    try:
        text = GUIDE.read_text(encoding="utf-8")
    except OSError:
        return ""
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end >= 0:
            text = text[end + 4 :]
    return text.strip()


def session_start(event: Mapping[str, Any], env: Mapping[str, str]) -> str:
    if env.get("CMS_SESSION"):
        return ""  # a cms child: no guide, no recovery note
    records = _records(env, event.get("cwd") if isinstance(event.get("cwd"), str) else None)
    pending = [
        r
        for r in records
        if r.get("status") in (*ACTIVE, "interrupted")
        or (r.get("status") in ENDED and not r.get("result_read", False))
    ]
    parts = []
    guide = _guide()
    if guide:
        parts.append(guide)
    if pending:
        lines = [
            "cms sessions of this project that need you: " + _names(pending) + ".",
            "See them with /cms:sessions (or `cms list`); read a result with "
            "`cms result NAME`; continue an interrupted one with `cms resume NAME`; "
            "wait for running ones with `cms wait NAME`.",
        ]
        parts.append("\n".join(lines))
    if not parts:
        return ""
    output = {
        "hookSpecificOutput": {
            "hookEventName": "SessionStart",
            "additionalContext": "\n\n".join(parts),
        }
    }
    return json.dumps(output)


def stop(event: Mapping[str, Any], env: Mapping[str, str]) -> str:
    if event.get("stop_hook_active"):
        return ""  # held once already: never twice in a row
    parent = event.get("session_id")
    if not isinstance(parent, str) or not parent:
        return ""
    records = _records(env, event.get("cwd") if isinstance(event.get("cwd"), str) else None)
    mine = [r for r in records if r.get("parent_session_id") == parent]
    running = [r for r in mine if r.get("status") in ACTIVE]
    unread = [r for r in mine if r.get("status") in ENDED and not r.get("result_read", False)]
    if not running and not unread:
        return ""
    reasons = []
    if running:
        names = " ".join(str(r.get("name")) for r in running)
        reasons.append(
            f"sessions you started are still running: {_names(running)}; wait for them "
            f"(`cms wait {names}`) or abort them"
        )
    if unread:
        names = " ".join(str(r.get("name")) for r in unread)
        reasons.append(
            f"sessions you started ended with results you have not read: {_names(unread)}; "
            f"read them with `cms result NAME` ({names})"
        )
    return json.dumps({"decision": "block", "reason": "cms: " + "; ".join(reasons) + "."})


# -- slash commands through UserPromptSubmit -------------------------------------------

COMMANDS = ("delegate", "send", "continue", "result", "abort", "fork", "resume", "finish")
VALUE_OPTIONS = {
    "--name",
    "--preset",
    "--model",
    "--max-cost",
    "--max-turns",
    "--timeout",
    "--cwd",
    "--add-cost",
    "--add-turns",
}
FLAG_OPTIONS = {"--background", "--worktree", "--fresh", "--no-sandbox"}


_TOKEN = re.compile(r"\s*(\S+)")


def parse_command(prompt: str, bare_ok: bool) -> tuple[str, dict[str, str | bool], str] | None:
    """``/cms:delegate --preset x TEXT`` -> ("delegate", {"--preset": "x"}, "TEXT").

    Options are read only before the text, as whitespace-separated words (``--`` ends
    them); the text is the rest of the prompt from its first word on, byte for byte:
    quotes, ``$(...)``, backticks, ``;`` and newlines stay text. None when the prompt
    is not a cms command.
    """
    head = re.match(r"\s*/(\S+)", prompt)
    if head is None:
        return None
    word = head.group(1)
    if word.startswith("cms:"):
        command = word[4:]
    elif bare_ok and word == "delegate":
        command = word
    else:
        return None
    if command not in COMMANDS:
        return None
    options: dict[str, str | bool] = {}
    pos = head.end()
    text = ""
    while True:
        token = _TOKEN.match(prompt, pos)
        if token is None:
            break
        word = token.group(1)
        key, eq, inline = word.partition("=")
        if word == "--":
            text = prompt[token.end() :].lstrip(" \t\n")
            break
        if word in FLAG_OPTIONS:
            options[word] = True
            pos = token.end()
        elif eq and key in VALUE_OPTIONS:
            options[key] = inline
            pos = token.end()
        elif word in VALUE_OPTIONS:
            value = _TOKEN.match(prompt, token.end())
            options[word] = value.group(1) if value else ""
            pos = value.end() if value else token.end()
        else:
            text = prompt[token.start(1) :]
            break
    return command, options, text


def _bare_delegate_is_ours(env: Mapping[str, str], cwd: str | None) -> bool:
    """A bare /delegate is cms's only when the command file there is the one setup wrote."""
    marker = "cms-setup: managed"
    config = env.get("CLAUDE_CONFIG_DIR") or str(Path(env.get("HOME") or Path.home()) / ".claude")
    homes = [Path(config) / "commands"]
    if cwd:
        # Project scope: the project's own .claude/commands, from any folder inside it.
        root = paths.find_project_root(Path(cwd))
        homes[:0] = [Path(cwd) / ".claude" / "commands", root / ".claude" / "commands"]
    for folder in homes:
        try:
            if marker in (folder / "delegate.md").read_text(encoding="utf-8"):
                return True
        except OSError:
            continue
    return False


def user_prompt_submit(event: Mapping[str, Any], env: Mapping[str, str]) -> str:
    prompt = event.get("prompt")
    if not isinstance(prompt, str):
        return ""
    cwd = event.get("cwd") if isinstance(event.get("cwd"), str) else None
    parsed = parse_command(prompt, bare_ok=True)
    if parsed is None:
        return ""
    command, options, text = parsed
    if not prompt.lstrip().startswith("/cms:") and not _bare_delegate_is_ours(env, cwd):
        return ""
    from cms import slash  # the full cms: only for a cms command

    context = slash.run(command, options, text, event, env)
    output = {
        "hookSpecificOutput": {
            "hookEventName": "UserPromptSubmit",
            "additionalContext": context[:CONTEXT_LIMIT],
        }
    }
    return json.dumps(output)


HANDLERS = {
    "session-start": session_start,
    "stop": stop,
    "user-prompt-submit": user_prompt_submit,
}


def main(argv: list[str] | None = None) -> int:
    """Run one parent hook; any failure allows (prints nothing) and says why on stderr."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in HANDLERS:
        sys.stderr.write(f"cms hook: unknown event {args!r}; use {', '.join(HANDLERS)}\n")
        return 0
    try:
        raw = sys.stdin.buffer.read()
        event = json.loads(raw or b"{}")
        if not isinstance(event, dict):
            raise ValueError("hook input is not a JSON object")
        output = HANDLERS[args[0]](event, os.environ)
    except Exception as exc:  # never break the user's session
        sys.stderr.write(f"cms hook {args[0]}: {type(exc).__name__}: {exc}\n")
        return 0
    if output:
        sys.stdout.write(output + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
