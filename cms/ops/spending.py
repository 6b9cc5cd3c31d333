"""The project's spend over all of Claude Code: the caps ``cms budget`` sets over the
user's own sessions, their subagents and the day (held by :mod:`cms.hooks.caps`), and
the rows ``cms cost`` shows for the user's sessions beside cms's.

Spend of the user's sessions is read from Claude Code's transcripts by
:mod:`cms.hooks.spend`; cms's own sessions are reported from their records (the CLI's
``total_cost_usd``, their subagents included), so a transcript that belongs to a cms
session is never counted twice.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cms.base import files
from cms.base.errors import BadInput
from cms.engine.models import ProjectConfig
from cms.hooks import caps as hook_caps
from cms.hooks import prices, spend
from cms.ops.nesting import refuse_in_child
from cms.ops.project import Project

#: ``cms budget`` options of the caps over all of Claude Code, by the limit's key.
CAP_OPTIONS = hook_caps.OPTIONS
#: What a cap option was given as, to remove that cap.
REMOVE = "none"


def parse_cap(value: str | None, option: str) -> float | str | None:
    """A cap as given on the command line: None (not given), :data:`REMOVE`, or a
    positive finite amount; anything else is bad input."""
    if value is None:
        return None
    text = value.strip()
    if text.lower() == REMOVE:
        return REMOVE
    try:
        amount = float(text)
    except ValueError:
        raise BadInput(
            f"invalid {option} {value[:40]!r}: give an amount in USD, e.g. 5, or none"
        ) from None
    if not math.isfinite(amount) or amount <= 0:
        raise BadInput(f"invalid {option} {value[:40]!r}: give an amount above 0 in USD, or none")
    if amount > 100_000:
        raise BadInput(f"invalid {option} {value[:40]!r}: more than $100,000 is surely a typo")
    return amount


def apply_caps(project: Project, changes: Mapping[str, float | str]) -> None:
    """Set or remove the caps in ``changes`` (by limit key), and keep the marker the
    plugin's hook tests in the shell in step with them."""
    refuse_in_child(project, "the project's limits")

    def change(config: ProjectConfig) -> None:
        for key, value in changes.items():
            setattr(config.limits, key, None if value == REMOVE else value)

    config = project.store.update_project(change)
    sync_marker(project, config)


def sync_marker(project: Project, config: ProjectConfig) -> None:
    """``$CMS_HOME/capped/<key>`` exists exactly when the project has a cap over all
    of Claude Code."""
    home = project.paths.home
    marker = hook_caps.marker(home, project.paths.key)
    capped = any(getattr(config.limits, key) is not None for key in hook_caps.CAP_KEYS)
    if capped:
        limits = {key: getattr(config.limits, key) for key in hook_caps.CAP_KEYS}
        os.makedirs(marker.parent, mode=files.DIR_MODE, exist_ok=True)
        content = {"project": str(project.directory), "limits": limits}
        files.atomic_write(marker, json.dumps(content) + "\n")
        return
    with contextlib.suppress(FileNotFoundError):
        marker.unlink()
    with contextlib.suppress(OSError):
        marker.parent.rmdir()  # the last capped project: the hooks.json test says no


@dataclass
class ClaudeSpend:
    """The project's transcripts read: the user's sessions (and their subagents) and
    the subagents of every session, apart from cms's own sessions."""

    user: list[dict[str, Any]] = field(default_factory=list)  # main transcripts
    user_subagents: list[dict[str, Any]] = field(default_factory=list)
    cms_subagents: list[dict[str, Any]] = field(default_factory=list)
    cms_main: list[dict[str, Any]] = field(default_factory=list)

    @property
    def user_total(self) -> float:
        return sum(float(s["total"]) for s in (*self.user, *self.user_subagents))

    def unknown_models(self) -> list[str]:
        every = (*self.user, *self.user_subagents, *self.cms_subagents, *self.cms_main)
        return sorted({m for s in every for m in s.get("unknown", [])})

    def first_prompt(self, session_id: str) -> str:
        for state in self.user:
            if state.get("session_id") == session_id:
                return str(state.get("first_prompt") or "")
        return ""


def claude_spend(project: Project, cms_session_ids: set[str]) -> ClaudeSpend:
    """Every transcript of the project, brought up to date and sorted into whose."""
    ledger = spend.Ledger(project.paths, project.env)
    folders = hook_caps.project_folders(project.paths, project.env)
    found = ClaudeSpend()
    for state in ledger.read_all(folders):
        mine = state.get("session_id") in cms_session_ids or state.get("cms_name")
        if state.get("agent_id"):
            (found.cms_subagents if mine else found.user_subagents).append(state)
        else:
            (found.cms_main if mine else found.user).append(state)
    return found


@dataclass
class CapsReport:
    """The caps over all of Claude Code and what each has spent so far."""

    caps: dict[str, float | None]
    session_spent: tuple[str, float] | None  # the user's session that spent most
    subagent_spent: tuple[str, float] | None  # the subagent that spent most
    today_spent: float
    day: str
    timezone: str

    def as_json(self) -> dict[str, Any]:
        def top(found: tuple[str, float] | None) -> dict[str, Any] | None:
            return None if found is None else {"id": found[0], "spent_usd": round(found[1], 6)}

        return {
            **self.caps,
            "session_spent": top(self.session_spent),
            "subagent_spent": top(self.subagent_spent),
            "today_spent_usd": round(self.today_spent, 6),
            "day": self.day,
            "timezone": self.timezone,
            "prices_dated": prices.PRICED_ON,
        }


def caps_report(project: Project, config: ProjectConfig) -> CapsReport:
    ids = _cms_session_ids(project)
    found = claude_spend(project, ids)
    by_session: dict[str, float] = {}
    for state in (*found.user, *found.user_subagents):
        sid = str(state.get("session_id"))
        by_session[sid] = by_session.get(sid, 0.0) + float(state["total"])
    subagents = {
        f"{s.get('agent_type') or 'agent'} {str(s.get('agent_id'))[:8]}": float(s["total"])
        for s in (*found.user_subagents, *found.cms_subagents)
    }
    now = datetime.now().astimezone()
    day = now.date().isoformat()
    today = sum(
        float(s["days"].get(day, 0.0))
        for s in (*found.user, *found.user_subagents, *found.cms_subagents, *found.cms_main)
    )
    return CapsReport(
        caps={key: getattr(config.limits, key) for key in hook_caps.CAP_KEYS},
        session_spent=_top({k[:8]: v for k, v in by_session.items()}),
        subagent_spent=_top(subagents),
        today_spent=today,
        day=day,
        timezone=now.tzname() or "local",
    )


def _top(amounts: Mapping[str, float]) -> tuple[str, float] | None:
    if not amounts:
        return None
    key = max(amounts, key=lambda k: (amounts[k], k))
    return key, amounts[key]


def _cms_session_ids(project: Project) -> set[str]:
    ids = set()
    for record in hook_caps.records(project.paths):
        sid = record.get("session_id")
        if isinstance(sid, str) and sid:
            ids.add(sid)
    return ids


def claude_rows(found: ClaudeSpend, by: str, add: Any) -> None:
    """Add the rows of the user's sessions and of all subagents to a cost report
    (``add(key, cost, kind, sessions)``). cms's sessions' own rows come from their
    records, which hold their subagents' spend: ``--by agent`` moves that part from
    the cms sessions' row to the subagents' types, so the rows still add up."""

    def subs_of(sid: str) -> float:
        return sum(float(s["total"]) for s in found.user_subagents if s.get("session_id") == sid)

    if by == "session":
        for state in found.user:
            sid = str(state.get("session_id"))
            subs = subs_of(sid)
            prompt = state.get("first_prompt") or ""
            add(f"{sid[:8]} {prompt}".strip(), float(state["total"]) + subs, "claude")
        orphans = {str(s.get("session_id")) for s in found.user_subagents}
        orphans -= {str(s.get("session_id")) for s in found.user}
        for sid in sorted(orphans):  # a session whose own transcript is gone
            add(sid[:8], subs_of(sid), "claude")
    elif by == "model":
        for state in (*found.user, *found.user_subagents):
            for model, cost in state["models"].items():
                add(model, float(cost), "claude")
    elif by == "day":
        for state in (*found.user, *found.user_subagents):
            for day, cost in state["days"].items():
                add(day, float(cost), "claude")
    elif by == "agent":
        for state in found.user:
            add("(your sessions)", float(state["total"]), "claude")
        for state in found.user_subagents:
            add(str(state.get("agent_type") or "agent"), float(state["total"]), "claude")
        for state in found.cms_subagents:
            add(str(state.get("agent_type") or "agent"), float(state["total"]), "cms")
            add("(cms sessions)", -float(state["total"]), "cms", 0)
