"""The shapes of the MCP tools (:mod:`cms.ui.mcp_server`): their argument types, with the
descriptions and JSON schema hints the model reads, and their structured results.

Apart from the server so that the server is its tools and how they run; the MCP
handshake cms ships (:mod:`cms.ui.mcp_lazy`) is made from both modules.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from cms.engine.models import Preset, Status

#: How long a tool that runs a turn waits for its outcome by default (the server's
#: docstring says why).
DEFAULT_WAIT_S = 100.0
#: The longest wait a caller may ask for: under Claude Code's 30-minute stdio idle limit.
MAX_WAIT_S = 1500.0
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
PRESETS = [p.value for p in Preset]
STATUSES = [s.value for s in Status]


# -- result shapes -------------------------------------------------------------------


class SessionOut(BaseModel):
    """One session: the JSON object that `cms --json show NAME` prints."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(description="The session's name in its project.")
    status: Status = Field(
        description="queued, running (a turn is in progress), completed (the last turn "
        "succeeded: `response` is its result), failed, cost_exceeded, turns_exceeded, "
        "timed_out, aborted, interrupted (its supervisor died; resume_session) or finished."
    )
    preset: Preset = Field(description="The safety preset the session runs with.")
    model: str | None = Field(description="The model, or null for Claude Code's default.")
    task: str = Field(description="The task the session was created with.")
    response: str | None = Field(description="The last response text: the turn's result.")
    error: str | None = Field(description="Why the last turn did not complete, if it did not.")
    cost_usd: float = Field(description="Spend over all turns so far, in USD.")
    turns: int = Field(description="Agentic turns (API round trips) over all turns so far.")
    max_cost_usd: float | None = Field(description="The session's spend cap, if any.")
    max_turns: int | None = Field(description="The session's turn cap, if any.")
    session_id: str = Field(description="Claude Code's session id of the conversation.")
    cwd: str = Field(description="The child's working directory.")
    pid: int | None = Field(description="The supervisor's pid while a turn runs, else null.")
    created_at: str
    updated_at: str


class DeletedOut(SessionOut):
    """The session as it was when its record and logs were removed."""

    deleted: bool = Field(description="Always true: the session no longer exists.")


class SessionsOut(BaseModel):
    """Several sessions (the text content is the same list as a JSON array)."""

    sessions: list[SessionOut]
    problems: list[str] = Field(
        default_factory=list, description="State files that could not be read (skipped)."
    )


class CostRowOut(BaseModel):
    key: str = Field(
        description="The session (a cms name, or your own session's id and first prompt), "
        "model, local day or subagent type of this row."
    )
    cost_usd: float
    sessions: int
    kind: str = Field(
        description="cms: cms's sessions; claude: your own sessions and subagents, read "
        "from Claude Code's transcripts."
    )


class CostOut(BaseModel):
    """The project's spend: what `cms --json cost` prints."""

    total_cost_usd: float
    by: str
    cap_usd: float | None = Field(description="The project's spend cap, if one is set.")
    rows: list[CostRowOut]
    unknown_models: list[str] = Field(
        description="Models missing from cms's price table, priced at its highest rate."
    )
    prices_dated: str = Field(description="The date of cms's price table.")


# -- argument types ------------------------------------------------------------------
#
# Value checks (names, budgets, presets) are advertised in the schema for the model but
# done by cms.ops, so a bad value gets the CLI's own one-line message.

Project = Annotated[
    str | None,
    Field(
        description="The project directory whose sessions to use (default: $CMS_PROJECT, "
        "else the git top-level of the directory Claude Code runs in). Rarely needed."
    ),
]
SessionName = Annotated[
    str,
    Field(
        description="The session's name: 1-63 characters of a-z, 0-9, '.', '_', '-'.",
        json_schema_extra={"pattern": NAME_PATTERN},
    ),
]
NewName = Annotated[
    str | None,
    Field(
        description="A name for the new session (1-63 characters of a-z, 0-9, '.', '_', "
        "'-'; must be unused in the project). Default: made from the task's first words.",
        json_schema_extra={"pattern": NAME_PATTERN},
    ),
]
PresetArg = Annotated[
    str | None,
    Field(
        description="What the child may do: read-only (read and search files only), review "
        "(read-only plus read-only git), plan (Claude Code's plan mode, changes nothing), "
        "edit (edit files and run commands in its working tree; the default), full "
        "(everything). Choose the least that does the job.",
        json_schema_extra={"enum": [*PRESETS, None]},
    ),
]
ModelArg = Annotated[
    str | None,
    Field(
        description="The child's model, e.g. 'sonnet', 'opus', 'haiku' (default: the "
        "project's default, else Claude Code's)."
    ),
]
MaxCost = Annotated[
    float | None,
    Field(
        description="Spend cap of the session over all its turns, in USD (> 0). The session "
        "stops with status cost_exceeded when it is reached.",
        json_schema_extra={"exclusiveMinimum": 0},
    ),
]
MaxTurns = Annotated[
    int | None,
    Field(
        description="Cap on agentic turns (API round trips) over all the session's turns "
        "(>= 1). The session stops with status turns_exceeded when it is reached.",
        json_schema_extra={"minimum": 1},
    ),
]
TimeoutArg = Annotated[
    float | None,
    Field(
        description="Time limit of each turn of the session, in seconds (> 0). A turn past "
        "it is stopped with status timed_out. Not how long this call waits (see wait_s).",
        json_schema_extra={"exclusiveMinimum": 0},
    ),
]
CwdArg = Annotated[
    str | None,
    Field(description="The child's working directory (default: the project directory)."),
]
WorktreeArg = Annotated[bool, Field(description="Run the child in a git worktree of its own.")]
After = Annotated[
    list[str] | None,
    Field(
        description="Sessions this one runs after: it stays queued (no model call) until "
        "all of them ended, then starts with their final responses at the top of its task "
        "(with worktree=true, in a tree with their branches merged); it ends failed if one "
        "of them did not complete. E.g. tests written after the features they test.",
    ),
]
HostArg = Annotated[
    str | None,
    Field(
        description="Where its turns run: a Docker host's name (`cms host list`), or "
        "'local' (this machine; the default unless the project names one). On a Docker "
        "host the child works in a tree of its own; its work comes home as cms/NAME.",
    ),
]
Background = Annotated[
    bool,
    Field(
        description="true: return as soon as the turn has started (status running); get "
        "the outcome later with wait_sessions or get_session. Use it to run several "
        "sessions in parallel."
    ),
]
WaitS = Annotated[
    float,
    Field(
        ge=0,
        le=MAX_WAIT_S,
        description=f"How long this call waits for the outcome, in seconds (default "
        f"{DEFAULT_WAIT_S:g}, at most {MAX_WAIT_S:g}). When it runs out the session is "
        "returned with status running (not an error) and keeps working; call "
        "wait_sessions to wait again.",
    ),
]
Message = Annotated[str, Field(description="What to tell the session: the next instruction.")]

SESSION_RESULT = "Returns the session object (status, response, error, cost_usd, turns, ...)."
TURN_RESULT = (
    "Waits up to wait_s for the turn to end, then returns the session object: status "
    "completed means `response` is the result; running means the wait ran out (call "
    "wait_sessions); failed, cost_exceeded, turns_exceeded, timed_out or aborted mean the "
    "turn did not finish (see `error`; continue_task corrects or extends it)."
)
