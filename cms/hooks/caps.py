"""The project's caps over all of Claude Code, held by the hooks: ``--session-cap`` (each
of the user's own sessions), ``--subagent-cap`` (each native subagent, in any session,
cms's children too) and ``--daily-cap`` (everything the project spends in one local
day), set with ``cms budget`` (docs/DESIGN.md, "Budgets over all of Claude Code").

- ``pre-tool-use``: once a cap is reached, the session's (or the subagent's, named by
  the hook input's ``agent_id``) tool calls are denied with one line: what was spent,
  which cap, and the ``cms budget`` command that raises it.
- ``user-prompt-submit``: the same line refuses a new prompt of a session at its cap
  (:mod:`cms.hooks.parent`'s prompt hook asks first; otherwise it says what ended).
- ``statusline``: one short line for Claude Code's ``statusLine`` setting.

They run from the one table of hook events (:mod:`cms.hooks.events`): ``statusline``
directly; ``pre-tool-use`` outside cms's children and ``user-prompt-submit`` through
:mod:`cms.hooks.child` and :mod:`cms.hooks.parent`, once ``$CMS_HOME/capped`` exists.

Spend comes from the transcripts (:mod:`cms.hooks.spend`). The caps live in the
project's ``project.toml`` (``[limits]`` ``session_cap_usd``, ``subagent_cap_usd``,
``daily_cap_usd``); a project with any of them set also has a marker file
``$CMS_HOME/capped/<project key>`` holding them as JSON, which ``cms budget`` writes
with the project's file: ``scripts/cms-hook`` tests it in the shell, so a project
without caps starts no interpreter per tool call, and the hook reads the caps from it.

In the user's own session every error of cms's is an allow (never block the user's
work because cms broke); a reached cap is a denial. Inside a cms child the child hook
calls :func:`child_reason`, whose errors it turns into denials (it fails closed).
Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from cms.base import paths, readers
from cms.hooks import events, spend

if TYPE_CHECKING:
    from typing import Any

CAP_KEYS = ("session_cap_usd", "subagent_cap_usd", "daily_cap_usd")
#: The ``cms budget`` option of each cap.
OPTIONS = {
    "session_cap_usd": "--session-cap",
    "subagent_cap_usd": "--subagent-cap",
    "daily_cap_usd": "--daily-cap",
}


def marker(home: Path, key: str) -> Path:
    """The file that says, to the shell, that project ``key`` has caps over Claude Code."""
    return home / "capped" / key


def project_of(event: Mapping[str, Any], env: Mapping[str, str]) -> Path:
    """The project of a hook call: ``$CMS_PROJECT``, else the folder Claude Code was
    started in (``$CLAUDE_PROJECT_DIR``), else the call's cwd; its git top-level.
    ``scripts/cms-hook`` finds the same in the shell."""
    start = env.get("CMS_PROJECT") or env.get("CLAUDE_PROJECT_DIR")
    if not start:
        cwd = event.get("cwd")
        start = cwd if isinstance(cwd, str) and cwd else os.getcwd()
    return paths.find_project_root(Path(start))


def read_caps(where: paths.ProjectPaths) -> dict[str, float]:
    """The caps of the project, from its marker file, which ``cms budget`` writes with
    the project's file (JSON, so the hook needs no TOML reader: ``tomllib`` and the
    ``typing`` it loads cost a user's tool call a tenth of an interpreter's start). A
    value that is not a positive finite number is no cap."""
    try:
        with open(marker(where.home, where.key), "rb") as handle:
            config = json.load(handle)
    except FileNotFoundError:
        return {}
    limits = config.get("limits") if isinstance(config, dict) else None
    caps: dict[str, float] = {}
    if isinstance(limits, dict):
        for key in CAP_KEYS:
            value = limits.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if math.isfinite(value) and value > 0:
                caps[key] = float(value)
    return caps


def _raise_with(where: paths.ProjectPaths, key: str) -> str:
    import shlex

    return f"`cms --project {shlex.quote(str(where.project))} budget {OPTIONS[key]} USD`"


def usd(amount: float | None) -> str:
    """:func:`cms.base.vocab.usd`, loaded only when a line is written."""
    from cms.base import vocab

    return vocab.usd(amount)


class Spent:
    """What one hook call's session has spent, read once per call."""

    def __init__(self, where: paths.ProjectPaths, event: Mapping[str, Any], env: Mapping[str, str]):
        self.where = where
        self.env = env
        self.ledger = spend.Ledger(where, env)
        sid, transcript = event.get("session_id"), event.get("transcript_path")
        self.session_id = sid if spend.valid_id(sid) else None
        self.transcript = transcript if isinstance(transcript, str) and transcript else None
        agent = event.get("agent_id")
        self.agent_id = agent if spend.valid_id(agent) else None
        tool_use_id = event.get("tool_use_id")
        self.tool_use_id = tool_use_id if isinstance(tool_use_id, str) and tool_use_id else None
        agent_type = event.get("agent_type")
        self.agent_type = agent_type if isinstance(agent_type, str) else None

    def subagent(self) -> float | None:
        if not (self.session_id and self.transcript and self.agent_id):
            return None
        path = spend.subagent_transcript(self.transcript, self.session_id, self.agent_id)
        state = self.ledger.read_through(
            path, self.session_id, self.agent_id, self.tool_use_id, agent_type=self.agent_type
        )
        return float(state["total"])

    def session(self) -> float | None:
        """The session's spend: its transcript and its subagents'."""
        if not (self.session_id and self.transcript):
            return None
        tool_use_id = None if self.agent_id else self.tool_use_id
        main = self.ledger.read_through(self.transcript, self.session_id, None, tool_use_id)
        subs = self.ledger.subagents(self.transcript, self.session_id)
        return float(main["total"]) + sum(float(s["total"]) for s in subs)

    def today(self, now: float) -> float:
        """Everything the project spent today (local time): the transcripts written
        today, of the user's sessions, cms's and their subagents."""
        day = spend.today(now)
        if self.session_id and self.transcript:
            # The call's own message may reach its transcript after the hook started
            # (Claude Code writes it some time after the reply came): wait for it, as
            # the session and subagent caps do, so the call is judged with its price.
            tool_use_id = None if self.agent_id else self.tool_use_id
            cms_name = self.env.get("CMS_SESSION")
            self.ledger.read_through(
                self.transcript, self.session_id, None, tool_use_id, cms_name=cms_name
            )
            if self.agent_id:
                self.subagent()
            self.ledger.subagents(self.transcript, self.session_id)
        midnight = time.mktime(time.strptime(day, "%Y-%m-%d"))
        states = self.ledger.read_all(project_folders(self.where, self.env), since=midnight)
        return sum(float(s["days"].get(day, 0.0)) for s in states)


def project_folders(where: paths.ProjectPaths, env: Mapping[str, str]) -> list[Path]:
    """Claude Code's transcript folders of the project: the project's own, and those of
    cms's sessions that run elsewhere (worktrees)."""
    folders = {spend.claude_folder(where.project, env)}
    folders.update(spend.claude_folder(cwd, env) for cwd in _record_cwds(where))
    return sorted(folders)


def _record_cwds(where: paths.ProjectPaths) -> list[str]:
    """The working folders of the project's sessions, kept in the spend folder against
    the listing of their records (name, size, modification time), so a hook call parses
    the records only after one of them changed."""
    try:
        listing = sorted(
            [e.name, e.stat().st_size, e.stat().st_mtime_ns]
            for e in os.scandir(where.sessions_dir)
            if e.name.endswith(".toml") and not e.name.startswith(".")
        )
    except OSError:
        return []
    cache = where.root / "spend" / ".cwds.json"
    try:
        with open(cache, "rb") as handle:
            kept = json.load(handle)
        if kept["listing"] == listing:
            return [str(cwd) for cwd in kept["cwds"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    cwds = sorted({r["cwd"] for r in records(where) if isinstance(r.get("cwd"), str) and r["cwd"]})
    with contextlib.suppress(OSError):
        cache.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        spend.replace_file(cache, json.dumps({"listing": listing, "cwds": cwds}).encode())
    return cwds


def records(where: paths.ProjectPaths) -> list[dict[str, Any]]:
    """The project's session records, as the hooks read them
    (:func:`cms.base.readers.load_records`)."""
    return readers.load_records(str(where.sessions_dir))


def reason(event: Mapping[str, Any], env: Mapping[str, str], now: float) -> str | None:
    """Why this call's session (or subagent) must stop: the first cap it has reached."""
    where = paths.ProjectPaths.for_project(project_of(event, env), paths.cms_home(env))
    caps = read_caps(where)
    if not caps:
        return None
    spent = Spent(where, event, env)
    cap = caps.get("subagent_cap_usd")
    if cap is not None and spent.agent_id:
        amount = spent.subagent()
        if amount is not None and amount >= cap:
            kind = f" ({spent.agent_type})" if spent.agent_type else ""
            return (
                f"cms: this subagent{kind} has spent {usd(amount)}, at the project's "
                f"subagent cap of {usd(cap)}; stop now (raise it with "
                f"{_raise_with(where, 'subagent_cap_usd')})"
            )
    cap = caps.get("session_cap_usd")
    if cap is not None and not env.get("CMS_SESSION"):  # cms's children have their own caps
        amount = spent.session()
        if amount is not None and amount >= cap:
            return (
                f"cms: this session has spent {usd(amount)}, at the project's session "
                f"cap of {usd(cap)}; raise it with {_raise_with(where, 'session_cap_usd')}"
            )
    cap = caps.get("daily_cap_usd")
    if cap is not None:
        amount = spent.today(now)
        if amount >= cap:
            return (
                f"cms: the project has spent {usd(amount)} today, at its daily cap of "
                f"{usd(cap)}; raise it with {_raise_with(where, 'daily_cap_usd')}"
            )
    return None


def child_reason(raw: bytes, env: Mapping[str, str], now: float) -> str | None:
    """:func:`reason` for a call of a cms child (its hook's raw input). Errors are the
    caller's to turn into denials."""
    try:
        event = json.loads(raw)
    except ValueError:
        return None  # the child hook refuses an unreadable call itself
    return reason(event, env, now) if isinstance(event, dict) else None


# ------------------------------------------------------------------------ events


def pre_tool_use(raw: bytes, env: Mapping[str, str]) -> str:
    """A tool call of the user's session refused at a cap (the child hook's path for
    a call outside cms's children)."""
    found = reason(events.read_event(raw), env, time.time())
    if found is None:
        return ""
    output = {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": found,
        }
    }
    return json.dumps(output)


def user_prompt_submit(raw: bytes, env: Mapping[str, str]) -> str:
    """Refuse the prompt at a cap ("" otherwise: the parent's prompt hook, which calls
    this first, then says what ended)."""
    event = events.read_event(raw)
    found = reason({k: v for k, v in event.items() if k != "agent_id"}, env, time.time())
    if found is not None:
        return json.dumps({"decision": "block", "reason": found})
    return ""


def statusline(raw: bytes, env: Mapping[str, str]) -> str:
    """``cms statusline``: this session's spend and cap, today's project spend and the
    daily cap, in one short line."""
    event = events.read_event(raw)
    workspace = event.get("workspace")
    project_dir = workspace.get("project_dir") if isinstance(workspace, dict) else None
    scoped = dict(env)
    if isinstance(project_dir, str) and project_dir and not env.get("CMS_PROJECT"):
        scoped["CLAUDE_PROJECT_DIR"] = project_dir
    where = paths.ProjectPaths.for_project(project_of(event, scoped), paths.cms_home(env))
    caps = read_caps(where)
    spent = Spent(where, event, scoped)
    session = spent.session()
    day = spent.today(time.time())

    def of(amount: float | None, key: str) -> str:
        cap = caps.get(key)
        shown = usd(amount) if amount is not None else "-"
        return f"{shown}/{usd(cap)}" if cap is not None else shown

    return f"cms: session {of(session, 'session_cap_usd')} · today {of(day, 'daily_cap_usd')}"


def main(argv: list[str] | None = None) -> int:
    """``python -m cms.hooks.caps EVENT``: an event of the one table
    (:mod:`cms.hooks.events`), its standard-library part; fails open in the user's
    session."""
    return events.main(argv, light=True)


if __name__ == "__main__":
    sys.exit(main())
