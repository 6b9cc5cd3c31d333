"""The keys of a session record on disk, as a TypedDict (:mod:`cms.base.vocab` names
it ``Record``).

The hook path reads records as plain mappings and does not import this module (it
needs :mod:`typing`); a test holds these keys equal to the fields of
:class:`cms.engine.models.SessionRecord`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict


class Record(TypedDict, total=False):
    """The keys of ``sessions/<name>.toml`` as :mod:`tomllib` reads them (datetimes are
    TOML datetimes; absent keys are None in the model)."""

    schema_version: int
    name: str
    status: str
    preset: str
    model: str
    task: str
    response: str
    error: str
    cost_usd: float
    settled_cost_usd: float
    turns: int
    settled_turns: int
    input_tokens: int
    output_tokens: int
    max_cost_usd: float
    max_turns: int
    timeout_s: float
    session_id: str
    fork_from: str
    has_conversation: bool
    cwd: str
    project: str
    pid: int
    pid_started: int
    child_pid: int
    child_started: int
    deadline: float
    depth: int
    parent: str
    parent_session_id: str
    sandbox: bool
    temp_dir: str
    denials: int
    settled_denials: int
    pending_message: str
    abort_requested: bool
    result_read: bool
    exchanges: int
    last_activity: str
    outcome: str
    worktree: str
    branch: str
    base_commit: str
    merged_commit: str
    notice: str
    after: list[str]
    after_met: bool
    host: str
    created_at: datetime
    updated_at: datetime
    turn_started_at: datetime
    ended_at: datetime
