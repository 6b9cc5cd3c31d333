"""The words cms, its records and its hooks share, in the standard library alone.

The hook path (every tool call of every child, every start and stop of the user's
sessions) reads records with :mod:`tomllib` and cannot import the pydantic models of
:mod:`cms.engine.models`, so what both sides must agree on lives here: the statuses,
the presets, the tools, the keys of a session record (:class:`Record`, checked against
the model's fields by a test) and how money is written.

Two words are kept apart everywhere: an *exchange* is one ``claude -p`` run (a message
and the work it leads to, counted by ``exchanges``); a *turn* is one agentic turn, an
API round trip (counted by ``turns`` and capped by ``max_turns``, as ``--max-turns``
counts them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:  # not imported on the hook path: TOML reads give datetimes anyway
    from datetime import datetime

# -- statuses (README.md, "Statuses") ------------------------------------------------

QUEUED = "queued"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
COST_EXCEEDED = "cost_exceeded"
TURNS_EXCEEDED = "turns_exceeded"
TIMED_OUT = "timed_out"
ABORTED = "aborted"
INTERRUPTED = "interrupted"
FINISHED = "finished"
STATUSES = (
    QUEUED, RUNNING, COMPLETED, FAILED, COST_EXCEEDED, TURNS_EXCEEDED, TIMED_OUT, ABORTED,
    INTERRUPTED, FINISHED,
)  # fmt: skip
#: An exchange is in progress or waiting to start.
ACTIVE = frozenset({QUEUED, RUNNING})
#: The last exchange ended; ``send``/``continue`` may run the next one directly.
ENDED = frozenset({COMPLETED, FAILED, COST_EXCEEDED, TURNS_EXCEEDED, TIMED_OUT, ABORTED})
#: ``wait`` succeeds (exit 0) only when every session it waited for is one of these.
SUCCESSFUL = frozenset({COMPLETED, FINISHED})

# -- presets (README.md, "Safety presets") ---------------------------------------------

PRESETS = ("read-only", "review", "plan", "edit", "full")

# -- tools -----------------------------------------------------------------------------

#: Tools that only read or search, or only touch the child's own conversation. Task
#: and Agent start a subagent inside the same process: every tool call the subagent
#: makes goes through the same hook, so starting one is harmless. WebFetch and
#: WebSearch read the web and change nothing on this machine.
READ_TOOLS = (
    "Read", "Grep", "Glob", "LS", "NotebookRead", "TodoWrite", "TodoRead", "ToolSearch",
    "WebFetch", "WebSearch", "Task", "Agent", "ListAgents", "BashOutput",
)  # fmt: skip
#: Tools that write the file named in their input, and the key that holds the path.
WRITE_TOOLS = {
    "Write": "file_path",
    "Edit": "file_path",
    "MultiEdit": "file_path",
    "NotebookEdit": "notebook_path",
}
#: The read-only git commands of the review preset, as the CLI's own allow rules.
REVIEW_GIT = ("git diff", "git log", "git show", "git status", "git blame")
#: The MCP server cms gives a child that may delegate further (its tools are
#: ``mcp__cms__delegate_task`` and so on).
CHILD_MCP_SERVER = "cms"


# -- a session record on disk ------------------------------------------------------------


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


# -- money -------------------------------------------------------------------------------


def usd(amount: float | None) -> str:
    """Money as cms shows it everywhere: four decimals below $1 (child turns are often
    cents), else two with thousands separated; "-" for none."""
    if amount is None:
        return "-"
    return f"${amount:.4f}" if amount < 1 else f"${amount:,.2f}"


# -- text --------------------------------------------------------------------------------


def one_line(text: str | None, limit: int, mark: str = "…") -> str:
    """``text`` with its whitespace runs made one space, cut to ``limit`` characters
    ending in ``mark``: how every message, table cell and log line shortens text.
    Hook denials end in ``...`` (plain ASCII for the model), the rest in ``…``."""
    flat = " ".join((text or "").split())
    if len(flat) <= limit:
        return flat
    if limit <= 1:
        return flat[:limit]
    return flat[: limit - len(mark)] + mark
