"""The words cms, its records and its hooks share, in the standard library alone.

The hook path (every tool call of every child, every start and stop of the user's
sessions) reads records with :mod:`tomllib` and cannot import the pydantic models of
:mod:`cms.engine.models`, so what both sides must agree on lives here: the statuses,
the presets, the tools, the keys of a session record (:class:`Record`, kept in
:mod:`cms.base.record` and checked against the model's fields by a test) and how
money is written.

Two words are kept apart everywhere: an *exchange* is one ``claude -p`` run (a message
and the work it leads to, counted by ``exchanges``); a *turn* is one agentic turn, an
API round trip (counted by ``turns`` and capped by ``max_turns``, as ``--max-turns``
counts them).
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: the hook path does not import typing (nor re)
if TYPE_CHECKING:
    from cms.base.record import Record as Record

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


def __getattr__(name: str) -> type:
    """``Record``, from :mod:`cms.base.record` when asked for (it needs :mod:`typing`,
    which the hook path does without)."""
    if name == "Record":
        from cms.base.record import Record

        return Record
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
