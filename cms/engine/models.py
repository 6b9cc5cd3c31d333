"""Typed records of what cms keeps on disk: a session and a project's settings.

The field names here are the on-disk contract: the hook entry points read the same
TOML files with :mod:`tomllib` alone (no pydantic on that path), through the keys of
:class:`cms.base.vocab.Record`, which a test holds equal to these fields.
``schema_version`` lets a later cms migrate older records; a record from a newer cms
is refused by name rather than misread.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from cms.base import vocab

SCHEMA_VERSION = 1


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class Status(StrEnum):
    QUEUED = vocab.QUEUED
    RUNNING = vocab.RUNNING
    COMPLETED = vocab.COMPLETED
    FAILED = vocab.FAILED
    COST_EXCEEDED = vocab.COST_EXCEEDED
    TURNS_EXCEEDED = vocab.TURNS_EXCEEDED
    TIMED_OUT = vocab.TIMED_OUT
    ABORTED = vocab.ABORTED
    INTERRUPTED = vocab.INTERRUPTED
    FINISHED = vocab.FINISHED

    @property
    def active(self) -> bool:
        """An exchange is in progress or waiting to start."""
        return self.value in vocab.ACTIVE


#: Statuses after which ``send``/``continue`` may run the next exchange directly.
SENDABLE = frozenset(Status(s) for s in vocab.ENDED)
#: `wait` succeeds (exit 0) only when every session it waited for ended in one of these.
SUCCESSFUL = frozenset(Status(s) for s in vocab.SUCCESSFUL)


class Preset(StrEnum):
    READ_ONLY = "read-only"
    REVIEW = "review"
    PLAN = "plan"
    EDIT = "edit"
    FULL = "full"


def _finite_non_negative(value: float | None, what: str) -> float | None:
    if value is None:
        return None
    if math.isnan(value) or math.isinf(value) or value < 0:
        raise ValueError(f"{what} must be a finite number >= 0, got {value}")
    return value


class SessionRecord(BaseModel):
    """One session: its settings, budgets, progress and last outcome."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    schema_version: int = SCHEMA_VERSION
    name: str
    status: Status = Status.QUEUED
    preset: Preset = Preset.EDIT
    model: str | None = None
    task: str = ""
    response: str | None = None
    error: str | None = None
    #: What the user sees: settled spend plus, while a turn runs, its live estimate.
    cost_usd: float = 0.0
    #: The sum of the CLI's own ``total_cost_usd`` over finished turns.
    settled_cost_usd: float = 0.0
    #: Agentic turns (API round trips) over the whole session, live while running.
    turns: int = 0
    settled_turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    max_cost_usd: float | None = None
    max_turns: int | None = None
    timeout_s: float | None = None
    session_id: str = ""
    #: Claude session id to fork from on the first turn (``cms fork``).
    fork_from: str | None = None
    #: True once Claude Code has a saved conversation that ``--resume`` can load.
    has_conversation: bool = False
    cwd: str = ""
    project: str = ""
    pid: int | None = None
    pid_started: int | None = None
    child_pid: int | None = None
    child_started: int | None = None
    #: Epoch seconds at which the running turn must stop (timeout), if any.
    deadline: float | None = None
    depth: int = 1
    #: The cms session this one was started from (by a child), if any.
    parent: str | None = None
    #: Claude's session id of the parent that started this one, when known.
    parent_session_id: str | None = None
    #: False when started with --no-sandbox (the hook alone holds the preset), and for
    #: preset full, which runs without the sandbox.
    sandbox: bool = True
    #: The running turn's private temp folder (its commands' TMPDIR), if any.
    temp_dir: str | None = None
    #: Tool calls refused over all turns: by the cms hook, by Claude Code's permission
    #: system, or by the sandbox (a write to a read-only place, a blocked connection).
    denials: int = 0
    settled_denials: int = 0
    #: Message the next turn sends (held while queued).
    pending_message: str | None = None
    abort_requested: bool = False
    result_read: bool = False
    exchanges: int = 0
    last_activity: str | None = None
    outcome: str | None = None
    worktree: str | None = None
    branch: str | None = None
    base_commit: str | None = None
    merged_commit: str | None = None
    #: Something the user should know about how the session was set up.
    notice: str | None = None
    #: The sessions this one runs after (``--after``): it stays ``queued`` until all
    #: of them ended, and starts only when all completed (or finished).
    after: list[str] = Field(default_factory=list)
    #: True once they all had and its first exchange was given their results.
    after_met: bool = False
    #: Where its turns run: ``local`` (this machine) or a Docker host's name
    #: (``$CMS_HOME/hosts.toml``); it keeps its host for all its turns.
    host: str = "local"
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    turn_started_at: datetime | None = None
    ended_at: datetime | None = None

    @field_validator("max_cost_usd", "timeout_s")
    @classmethod
    def _check_float_budget(cls, value: float | None) -> float | None:
        return _finite_non_negative(value, "budget")

    @field_validator("cost_usd", "settled_cost_usd")
    @classmethod
    def _check_spend(cls, value: float) -> float:
        # A NaN or negative spend (a record edited by hand) would hide from the
        # project's cap every other session's spend, and NaN is not JSON.
        _finite_non_negative(value, "spend")
        return value

    @field_validator("max_turns")
    @classmethod
    def _check_turns(cls, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise ValueError(f"max_turns must be >= 0, got {value}")
        return value

    def public(self) -> dict[str, Any]:
        """The JSON object of docs/DESIGN.md for this session (plus a few extra fields)."""
        data = self.model_dump(mode="json")
        for internal in (
            "settled_cost_usd",
            "settled_turns",
            "pid_started",
            "child_started",
            "pending_message",
            "settled_denials",
            "temp_dir",
        ):
            data.pop(internal, None)
        return data


def spend(records: Iterable[SessionRecord], exclude: str | None = None) -> float:
    """What the sessions spent, together (the project's spend against its cap); the
    hook, which cannot load these models, sums the same field itself."""
    return sum(r.cost_usd for r in records if r.name != exclude)


class Limits(BaseModel):
    model_config = ConfigDict(extra="ignore")

    max_cost_usd: float | None = None
    max_parallel: int = Field(default=4, ge=1)  # 0 would queue every session forever
    max_depth: int = Field(default=2, ge=0)
    #: Caps over all of Claude Code in the project (cms.hooks.caps holds them).
    session_cap_usd: float | None = None
    subagent_cap_usd: float | None = None
    daily_cap_usd: float | None = None

    @field_validator("max_cost_usd", "session_cap_usd", "subagent_cap_usd", "daily_cap_usd")
    @classmethod
    def _check_cost(cls, value: float | None, info: ValidationInfo) -> float | None:
        return _finite_non_negative(value, str(info.field_name))


class Defaults(BaseModel):
    model_config = ConfigDict(extra="ignore")

    preset: Preset | None = None
    model: str | None = None
    max_cost_usd: float | None = None
    max_turns: int | None = None
    timeout_s: float | None = None
    #: The host new sessions run on when ``--host`` is not given (None: ``local``).
    host: str | None = None


class SandboxConfig(BaseModel):
    """The project's network rules for its ``edit`` children's commands."""

    model_config = ConfigDict(extra="ignore")

    allowed_domains: list[str] = Field(default_factory=list)
    denied_domains: list[str] = Field(default_factory=list)


class ProjectConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    schema_version: int = SCHEMA_VERSION
    project: str = ""
    limits: Limits = Field(default_factory=Limits)
    defaults: Defaults = Field(default_factory=Defaults)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
