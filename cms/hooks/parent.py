"""Hooks of the parent session (the user's own Claude Code, with the plugin loaded).

- ``session-start``: the strategy guide (CLAUDE.md) and, when the project has sessions
  that are running, queued, interrupted, or completed and not yet read, a short note
  naming them and how to continue. Nothing about sessions when there are none.
- ``stop``: when a headless parent (``claude -p``) is about to stop while sessions it
  started are still running, or ended with results it has not read, hold the stop with
  a reason naming them, at most once for each such child (once while it runs, once for
  its unread result: markers in the project's state folder, :func:`held_dir`). Never
  twice in a row (``stop_hook_active``), never a parent that started none, and never
  an attended (interactive) session: Claude Code 2.1.332 gives its hooks
  ``CLAUDE_CODE_SESSION_ATTENDED=1`` there (``0`` under ``-p``), and the next prompt's
  line tells it what ended (:func:`attended`).

- ``user-prompt-submit``: the parent told when work ends. At its next prompt, one
  short line for each session it started that ended since it was last told (name,
  status, cost, how to read the result), from the notes the store left for it
  (:mod:`cms.engine.notices`); each ending is told once, and only to its parent.
  ``scripts/cms-hook`` starts this only when a note for this parent exists.

All read with :mod:`cms.base.readers`, :mod:`json` and the standard library only: they run at
every start, stop and prompt of the user's sessions. (The plugin's argument-taking slash
commands, which need the whole of cms, run from :mod:`cms.ui.slash`.)
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from cms.base import paths, readers, vocab
from cms.engine import notices, procs
from cms.hooks import events

ACTIVE = vocab.ACTIVE
ENDED = vocab.ENDED


def _records(env: Mapping[str, str], cwd: str | None) -> list[dict[str, Any]]:
    project = paths.resolve_project(None, env, Path(cwd) if cwd else None)
    where = paths.ProjectPaths.for_project(project, paths.cms_home(env))
    found = readers.load_records(str(where.sessions_dir))
    for data in found:
        if data.get("status") == "running" and not _supervisor_alive(data):
            data["status"] = "interrupted"
    return found


def _supervisor_alive(record: Mapping[str, Any]) -> bool:
    """:func:`cms.engine.procs.supervisor_alive` on a record as the hooks read it."""

    def field(key: str, kind: type) -> Any:
        value = record.get(key)
        return value if isinstance(value, kind) and not isinstance(value, bool) else None

    marked_at = field("turn_started_at", datetime) or field("updated_at", datetime)
    return procs.supervisor_alive(field("pid", int), field("pid_started", int), marked_at)


def _names(records: list[dict[str, Any]]) -> str:
    return ", ".join(f"{r.get('name')} ({r.get('status')})" for r in records)


#: The strategy guide for the parent, shipped as the plugin's skill.
GUIDE = (paths.plugin_root() or paths.PACKAGE_PARENT) / "skills" / "delegating" / "SKILL.md"


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


def _context(parts: list[str]) -> str:
    """The SessionStart output that puts ``parts`` into the parent's context."""
    if not parts:
        return ""
    output = {
        "hookSpecificOutput": {
            "hookEventName": "SessionStart",
            "additionalContext": "\n\n".join(parts),
        }
    }
    return json.dumps(output)


def guide_only(raw: bytes, env: Mapping[str, str]) -> str:
    """What ``session-start`` prints when no session needs the parent: the guide alone.
    The plugin's hook script keeps it in its data folder and prints it without
    starting Python while the project has nothing to report (scripts/cms-hook)."""
    guide = _guide()
    return _context([guide] if guide else [])


def session_start(raw: bytes, env: Mapping[str, str]) -> str:
    if env.get("CMS_SESSION"):
        return ""  # a cms child: no guide, no recovery note
    event = events.read_event(raw)
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
    return _context(parts)


def attended(env: Mapping[str, str]) -> bool:
    """Whether the hook runs in a session a person is at. Claude Code 2.1.332 sets
    ``CLAUDE_CODE_SESSION_ATTENDED`` for its hooks (``1`` in a terminal, ``0`` under
    ``-p``); an older one without it says ``CLAUDE_CODE_ENTRYPOINT=cli`` in a terminal
    (``sdk-cli`` under ``-p``). The hook's stdin is the same in both. Keep in step with
    ``attended`` in scripts/cms-hook."""
    flag = env.get("CLAUDE_CODE_SESSION_ATTENDED")
    if flag is not None:
        return flag == "1"
    return env.get("CLAUDE_CODE_ENTRYPOINT") == "cli"


def held_dir(env: Mapping[str, str], cwd: str | None, parent: str) -> Path:
    """The folder of a parent's "held once" markers in its project's state folder: a
    file ``NAME.running`` or ``NAME.unread`` once the stop was held for that child."""
    project = paths.resolve_project(None, env, Path(cwd) if cwd else None)
    root = paths.ProjectPaths.for_project(project, paths.cms_home(env)).root
    return root / "held" / parent.replace("/", "_")


def _not_held(folder: Path, records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in records if not (folder / f"{r.get('name')}.{kind}").exists()]


def _mark_held(folder: Path, records: list[dict[str, Any]], kind: str) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for record in records:
        os.close(os.open(folder / f"{record.get('name')}.{kind}", os.O_CREAT | os.O_WRONLY, 0o600))


def stop(raw: bytes, env: Mapping[str, str]) -> str:
    event = events.read_event(raw)
    if event.get("stop_hook_active") or attended(env):
        return ""  # never twice in a row; never an extra turn for a person
    parent = event.get("session_id")
    if not isinstance(parent, str) or not parent:
        return ""
    cwd = event.get("cwd") if isinstance(event.get("cwd"), str) else None
    records = _records(env, cwd)
    mine = [r for r in records if r.get("parent_session_id") == parent]
    folder = held_dir(env, cwd, parent)
    running = _not_held(folder, [r for r in mine if r.get("status") in ACTIVE], "running")
    unread = _not_held(
        folder,
        [r for r in mine if r.get("status") in ENDED and not r.get("result_read", False)],
        "unread",
    )
    if not running and not unread:
        return ""
    _mark_held(folder, running, "running")
    _mark_held(folder, unread, "unread")
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


def _told(note: Mapping[str, Any], here: Path) -> str:
    name, status = str(note.get("name")), str(note.get("status"))
    cost = note.get("cost_usd")
    spent = vocab.usd(float(cost)) if isinstance(cost, int | float) else "-"
    project = note.get("project")
    elsewhere = isinstance(project, str) and Path(project) != here
    where = f" --project {shlex.quote(str(project))}" if elsewhere else ""
    read = "read its result" if status in vocab.SUCCESSFUL else "see why"
    command = f"cms{where} result {name}"
    if status == vocab.INTERRUPTED:
        read, command = "continue it", f"cms{where} resume {name}"
    return f"cms: session {name} ended {status} (cost {spent}); {read} with `{command}`."


def user_prompt_submit(raw: bytes, env: Mapping[str, str]) -> str:
    """One line per session of this parent that ended since it was last told; where
    a project has caps over all of Claude Code, :func:`cms.hooks.caps.user_prompt_submit`
    first (a session at its cap is refused its prompt)."""
    if (paths.cms_home(env) / "capped").is_dir():
        from cms.hooks import caps

        refused = caps.user_prompt_submit(raw, env)
        if refused:
            return refused
    return told_of_endings(events.read_event(raw), env)


def told_of_endings(event: Mapping[str, Any], env: Mapping[str, str]) -> str:
    """:func:`user_prompt_submit` of an event already read."""
    parent = event.get("session_id")
    if not isinstance(parent, str) or not parent:
        parent = env.get("CLAUDE_CODE_SESSION_ID", "")
    notes = notices.take(paths.cms_home(env), parent)
    if not notes:
        return ""
    latest: dict[tuple[str, str], Mapping[str, Any]] = {}
    for note in notes:  # oldest first: a session that ended twice is told its last end
        key = (str(note.get("project")), str(note.get("name")))
        latest.pop(key, None)  # and in the order of its last end
        latest[key] = note
    cwd = event.get("cwd") if isinstance(event.get("cwd"), str) else None
    here = paths.resolve_project(None, env, Path(cwd) if cwd else None)
    lines = [_told(note, here) for note in latest.values()]
    output = {
        "hookSpecificOutput": {
            "hookEventName": "UserPromptSubmit",
            "additionalContext": "\n".join(lines),
        }
    }
    return json.dumps(output)


def main(argv: list[str] | None = None) -> int:
    """``python -m cms.hooks.parent EVENT``: a hook of the user's session from the one
    table (:mod:`cms.hooks.events`), its standard-library part; fails open."""
    return events.main(argv, light=True)


if __name__ == "__main__":
    sys.exit(main())
