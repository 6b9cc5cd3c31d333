"""The MCP server (``cms mcp``, stdio): every cms operation as a tool for the parent model.

It is built on the official ``mcp`` SDK (``MCPServer``) and holds no logic of its own:
each tool takes typed arguments, calls the same :mod:`cms.ops` function as the CLI
command of the same name, and returns the session JSON of docs/DESIGN.md as structured
content (which is what Claude Code hands the model) and as the same JSON in text. A
:class:`cms.base.errors.CmsError` becomes an MCP tool error whose text is the CLI's one-line
message; a bad call never stops the server.

Why the api runs in worker threads: the api blocks (``wait_sessions`` polls the record
until the turn ends), and a blocked event loop would stop the server from answering
anything else, including the client's cancellation, which stops the wait. A worker
thread also makes the launcher start each turn's supervisor as a fresh ``python -m
cms.engine.launcher`` rather than forking this multi-threaded process.

Why ``wait_s`` defaults to 100 seconds: the tools that run a turn wait for its outcome
so that the model reads status and response in one call, but the call must come back
before Claude Code stops listening. In Claude Code 2.1 the hard limit per MCP call is
``MCP_TOOL_TIMEOUT`` (default 1e8 ms), a stdio server is cut off after 30 minutes
without a response or progress, and an interactive session may move an MCP call to the
background after 120 s; 100 s stays under all three. A wait that runs out is not an
error: the session comes back with status ``running`` and the model calls
``wait_sessions`` again.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, TypeVar, cast

from pydantic import Field

from cms import __version__
from cms import ops as api
from cms.base.errors import CmsError, EnvironmentProblem
from cms.base.vocab import usd
from cms.engine.models import SessionRecord
from cms.ui.mcp_schema import (
    DEFAULT_WAIT_S,
    NAME_PATTERN,
    SESSION_RESULT,
    STATUSES,
    TURN_RESULT,
    After,
    Background,
    CostOut,
    CwdArg,
    DeletedOut,
    HostArg,
    MaxCost,
    MaxTurns,
    Message,
    ModelArg,
    NewName,
    PresetArg,
    Project,
    SessionName,
    SessionOut,
    SessionsOut,
    TimeoutArg,
    WaitS,
    WorktreeArg,
)

try:
    import anyio
    import anyio.from_thread
    import anyio.to_thread
    from mcp.server.mcpserver import Context, MCPServer
    from mcp.types import CallToolResult, ContentBlock, TextContent, ToolAnnotations
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise EnvironmentProblem(
        f"the MCP server needs the 'mcp' package ({exc}); install it with "
        "`pip install 'mcp>=2.3,<3'` in the Python that runs cms"
    ) from exc

T = TypeVar("T")
ToolFn = TypeVar("ToolFn", bound=Callable[..., Awaitable[CallToolResult]])

#: How often a waiting tool sends a progress notification (when the client asked).
PROGRESS_EVERY_S = 5.0

log = logging.getLogger("cms.mcp")

INSTRUCTIONS = """\
cms runs child Claude Code sessions ("sessions") for you. delegate_task hands a task to
a new session and, by default, waits for it and returns its status and response. Read
`status` first: completed means `response` is the result; running means the wait ran
out (call wait_sessions later); any other status (failed, cost_exceeded, turns_exceeded,
timed_out, aborted) means the task did not finish: correct or extend it with
continue_task. Sessions persist across conversations: list_sessions finds them again.
"""


def _text(data: Any) -> TextContent:
    return TextContent(type="text", text=json.dumps(data, indent=2, ensure_ascii=False))


def _session_result(record: SessionRecord) -> CallToolResult:
    # Claude Code hands the model the structured content (as compact JSON) when there is
    # any, so everything the model must read is in it; the text is the same object.
    data = record.public()
    return CallToolResult(content=[_text(data)], structured_content=data)


def _sessions_result(
    records: Sequence[SessionRecord], problems: Sequence[str] = ()
) -> CallToolResult:
    data = [r.public() for r in records]
    content: list[ContentBlock] = [_text(data)]
    content += [TextContent(type="text", text=f"warning: {p}") for p in problems]
    return CallToolResult(
        content=content, structured_content={"sessions": data, "problems": list(problems)}
    )


# -- running the api off the event loop ----------------------------------------------


class _Stopped(Exception):
    """Raised inside a worker thread's wait when its tool call was cancelled."""


class _Call:
    """One tool call's link between the event loop and the worker thread running it.

    The thread polls :meth:`progress` while it waits: it stops once the call is
    cancelled (the client gave up) and relays a progress notification now and then.
    """

    def __init__(self, ctx: Context | None, project: str | None) -> None:
        self.ctx = ctx
        self.project_dir = project
        self.stop = threading.Event()
        self.started = time.monotonic()
        self.last_report = self.started
        self.reconciled = False

    def project(self) -> api.Project:
        """The project of this tool call, reconciled once per call (as every CLI
        command that works on sessions is)."""
        project = api.open_project(self.project_dir)
        if not self.reconciled:
            self.reconciled = True
            api.reconcile(project)
        return project

    def progress(self, records: list[SessionRecord], total: float | None) -> None:
        if self.stop.is_set():
            raise _Stopped
        now = time.monotonic()
        if self.ctx is None or now - self.last_report < PROGRESS_EVERY_S:
            return
        self.last_report = now
        parts = [
            f"{r.name}: {r.status.value}, {r.turns} turns, {usd(r.cost_usd)}"
            + (f", {r.last_activity}" if r.last_activity and r.status.active else "")
            for r in records
        ]
        try:
            anyio.from_thread.run(
                self.ctx.report_progress, now - self.started, total, "; ".join(parts)[:300]
            )
        except Exception:  # a progress note must never fail the wait
            log.debug("progress notification failed", exc_info=True)

    def wait(
        self, project: api.Project, names: list[str] | None, wait_s: float, first: bool = False
    ) -> list[SessionRecord]:
        # A zero wait is one look: the api wants a positive timeout.
        timeout = max(wait_s, 0.001)
        return api.wait_sessions(
            project, names, timeout, on_progress=lambda rs: self.progress(rs, wait_s), first=first
        )


class _Refused(Exception):
    """A tool call that failed with a message for the model (a cms error, mostly)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def _run(ctx: Context | None, project: str | None, work: Callable[[_Call], T]) -> T:
    """Run ``work`` in a worker thread; a failure becomes :class:`_Refused`."""
    call = _Call(ctx, project)
    try:
        return await anyio.to_thread.run_sync(work, call, abandon_on_cancel=True)
    except CmsError as exc:
        raise _Refused(exc.message) from None
    except OSError as exc:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        raise _Refused(f"{exc.strerror or exc}{where}") from None
    except Exception as exc:
        log.exception("unexpected error in a cms tool")
        raise _Refused(
            f"internal error in cms: {type(exc).__name__}: {exc}; the session state is "
            "unchanged or as `list_sessions` shows it; please report this"
        ) from None
    finally:
        call.stop.set()


def _refusals_as_errors(tool: ToolFn) -> ToolFn:
    """Return a refusal as an MCP tool error whose text is exactly the CLI's message.

    (Raising the SDK's ToolError would prefix "Error executing tool NAME: ".) The
    wrapper keeps the tool's name, signature and annotations, which make its schema.
    """

    @functools.wraps(tool)
    async def wrapper(*args: Any, **kwargs: Any) -> CallToolResult:
        try:
            return await tool(*args, **kwargs)
        except _Refused as exc:
            return CallToolResult(
                content=[TextContent(type="text", text=exc.message)], is_error=True
            )

    return cast(ToolFn, wrapper)


def _turn_then_wait(
    start: Callable[[api.Project], SessionRecord], background: bool, wait_s: float
) -> Callable[[_Call], SessionRecord]:
    """Start an exchange, then (unless ``background``) wait up to ``wait_s`` for its
    outcome: :func:`cms.ops.run_and_wait` with this call's progress and cancellation."""

    def work(call: _Call) -> SessionRecord:
        return api.run_and_wait(
            call.project(),
            start,
            wait_s=wait_s,
            background=background,
            on_progress=lambda records: call.progress(records, wait_s),
        )

    return work


#: The tool arguments that are a new session's options (as cms.ops.make_options names them).
_OPTION_ARGS = (
    "preset", "model", "max_cost_usd", "max_turns", "timeout_s", "cwd", "worktree", "after",
    "host",
)  # fmt: skip


def _options(arguments: dict[str, Any]) -> api.Options:
    return api.make_options({key: arguments[key] for key in _OPTION_ARGS})


# -- the server ------------------------------------------------------------------------


#: What the client may know of a tool: it only reads, or it runs an exchange.
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
RUNS_TURN = ToolAnnotations(read_only_hint=False, destructive_hint=False)

#: Every tool, in the order it is listed: (function, description, annotations).
_TOOLS: list[tuple[Callable[..., Awaitable[CallToolResult]], str, ToolAnnotations]] = []


def _tool(description: str, annotations: ToolAnnotations) -> Callable[[ToolFn], ToolFn]:
    """Register a tool function (its name, signature and annotations make its schema)."""

    def register(fn: ToolFn) -> ToolFn:
        _TOOLS.append((fn, description, annotations))
        return fn

    return register


@_tool(
    description="Delegate a task to a new child Claude Code session and (by default) "
    "wait for its result. Use it for a self-contained piece of work that another "
    "session can do on its own: give the task in full (goal, files, constraints, what "
    "to report back), a preset that allows no more than needed, and a budget. "
    + TURN_RESULT
    + " With background=true it returns at once (status running).",
    annotations=RUNS_TURN,
)
@_refusals_as_errors
async def delegate_task(
    task: Annotated[
        str,
        Field(
            description="The task, complete and self-contained: the child does not "
            "see this conversation."
        ),
    ],
    ctx: Context,
    name: NewName = None,
    preset: PresetArg = None,
    model: ModelArg = None,
    max_cost_usd: MaxCost = None,
    max_turns: MaxTurns = None,
    timeout_s: TimeoutArg = None,
    cwd: CwdArg = None,
    worktree: WorktreeArg = False,
    after: After = None,
    host: HostArg = None,
    background: Background = False,
    wait_s: WaitS = DEFAULT_WAIT_S,
    project: Project = None,
) -> Annotated[CallToolResult, SessionOut]:
    options = _options(locals())
    record = await _run(
        ctx,
        project,
        _turn_then_wait(lambda p: api.delegate(p, task, name, options), background, wait_s),
    )
    return _session_result(record)


@_tool(
    description="Create a named session, optionally running `task` as its first turn. "
    "Without `task` the session is created idle (status completed, no response) and "
    "waits for send_message. With `task` it behaves like delegate_task. " + SESSION_RESULT,
    annotations=RUNS_TURN,
)
@_refusals_as_errors
async def spawn_session(
    name: SessionName,
    ctx: Context,
    task: Annotated[
        str | None,
        Field(description="The first turn's prompt; omit to create the session idle."),
    ] = None,
    preset: PresetArg = None,
    model: ModelArg = None,
    max_cost_usd: MaxCost = None,
    max_turns: MaxTurns = None,
    timeout_s: TimeoutArg = None,
    cwd: CwdArg = None,
    worktree: WorktreeArg = False,
    after: After = None,
    host: HostArg = None,
    background: Background = False,
    wait_s: WaitS = DEFAULT_WAIT_S,
    project: Project = None,
) -> Annotated[CallToolResult, SessionOut]:
    options = _options(locals())
    record = await _run(
        ctx,
        project,
        _turn_then_wait(
            lambda p: api.spawn_session(p, name, task or "", options, prompt=task),
            background,
            wait_s,
        ),
    )
    return _session_result(record)


@_tool(
    description="Run the next turn of an existing session in the same conversation "
    "(it remembers everything it did). Allowed when its status is completed, failed, "
    "timed_out or aborted; for a session out of budget use continue_task, for an "
    "interrupted or finished one resume_session. " + TURN_RESULT,
    annotations=RUNS_TURN,
)
@_refusals_as_errors
async def send_message(
    name: SessionName,
    message: Message,
    ctx: Context,
    background: Background = False,
    wait_s: WaitS = DEFAULT_WAIT_S,
    project: Project = None,
) -> Annotated[CallToolResult, SessionOut]:
    record = await _run(
        ctx,
        project,
        _turn_then_wait(lambda p: api.send_message(p, name, message), background, wait_s),
    )
    return _session_result(record)


@_tool(
    description="The correction loop: raise the session's budget if asked "
    "(add_cost_usd, add_turns), then send `message` as its next turn. Use it when a "
    "result is wrong or incomplete, or the session stopped with cost_exceeded or "
    "turns_exceeded. " + TURN_RESULT,
    annotations=RUNS_TURN,
)
@_refusals_as_errors
async def continue_task(
    name: SessionName,
    message: Annotated[
        str, Field(description="The correction or next instruction for the session.")
    ],
    ctx: Context,
    add_cost_usd: Annotated[
        float | None,
        Field(
            description="Raise the session's spend cap by this many USD first (> 0).",
            json_schema_extra={"exclusiveMinimum": 0},
        ),
    ] = None,
    add_turns: Annotated[
        int | None,
        Field(
            description="Raise the session's turn cap by this many turns first (>= 1).",
            json_schema_extra={"minimum": 1},
        ),
    ] = None,
    background: Background = False,
    wait_s: WaitS = DEFAULT_WAIT_S,
    project: Project = None,
) -> Annotated[CallToolResult, SessionOut]:
    record = await _run(
        ctx,
        project,
        _turn_then_wait(
            lambda p: api.continue_task(p, name, message, add_cost_usd, add_turns),
            background,
            wait_s,
        ),
    )
    return _session_result(record)


@_tool(
    description="Wait until the named sessions (default: every running or queued "
    "session of the project) stop, at most wait_s seconds, and return them all; with "
    "any=true, until the first of them stops, and return only that one (evaluate each "
    "result as it arrives, then wait for the rest). A session still running when the "
    "wait runs out comes back with status running (not an error): call again to keep "
    "waiting. Use it after background starts.",
    annotations=READ_ONLY,
)
@_refusals_as_errors
async def wait_sessions(
    ctx: Context,
    names: Annotated[
        list[str] | None,
        Field(description="The sessions to wait for (default: all running ones)."),
    ] = None,
    any: Annotated[
        bool, Field(description="Return as soon as the first of them stops, with it alone.")
    ] = False,
    wait_s: WaitS = DEFAULT_WAIT_S,
    project: Project = None,
) -> Annotated[CallToolResult, SessionsOut]:
    def work(call: _Call) -> list[SessionRecord]:
        return call.wait(call.project(), names or None, wait_s, first=any)

    return _sessions_result(await _run(ctx, project, work))


@_tool(
    description="One session in full: status, last response, error, spend and limits. "
    "Use it to read a background session's result or check on it without waiting.",
    annotations=READ_ONLY,
)
@_refusals_as_errors
async def get_session(
    name: SessionName, project: Project = None
) -> Annotated[CallToolResult, SessionOut]:
    record = await _run(
        None, project, lambda call: api.get_session(call.project(), name, mark_read=True)
    )
    return _session_result(record)


@_tool(
    description="The project's sessions (from this and earlier conversations), each "
    "with status, task, last response and spend. Use it to find sessions again.",
    annotations=READ_ONLY,
)
@_refusals_as_errors
async def list_sessions(
    status: Annotated[
        str | None,
        Field(
            description="Only sessions with this status.",
            json_schema_extra={"enum": [*STATUSES, None]},
        ),
    ] = None,
    project: Project = None,
) -> Annotated[CallToolResult, SessionsOut]:
    listing = await _run(None, project, lambda call: api.list_sessions(call.project(), status))
    return _sessions_result(listing.sessions, listing.problems)


@_tool(
    description="Stop a running (or queued) session's turn and its whole process tree; "
    "its status becomes aborted. The conversation is kept: send_message or "
    "continue_task can go on from there. " + SESSION_RESULT,
    annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=False),
)
@_refusals_as_errors
async def abort_task(
    name: SessionName, project: Project = None
) -> Annotated[CallToolResult, SessionOut]:
    record = await _run(None, project, lambda call: api.abort_session(call.project(), name))
    return _session_result(record)


@_tool(
    description="Close a session whose work is done: status finished, kept on record "
    "(resume_session reopens it). " + SESSION_RESULT,
    annotations=ToolAnnotations(destructive_hint=False, idempotent_hint=True),
)
@_refusals_as_errors
async def finish_task(
    name: SessionName, project: Project = None
) -> Annotated[CallToolResult, SessionOut]:
    record = await _run(None, project, lambda call: api.finish_session(call.project(), name))
    return _session_result(record)


@_tool(
    description="Remove a session's record and logs for good. A running session must "
    "be aborted first (or pass force=true). Returns the session as it was, with "
    "deleted=true.",
    annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=False),
)
@_refusals_as_errors
async def delete_session(
    name: SessionName,
    force: Annotated[bool, Field(description="Abort the session first if it is running.")] = False,
    project: Project = None,
) -> Annotated[CallToolResult, DeletedOut]:
    deleted = await _run(
        None, project, lambda call: api.delete_session(call.project(), name, force=force)
    )
    data = deleted.as_json()
    return CallToolResult(content=[_text(data)], structured_content=data)


@_tool(
    description="Continue an interrupted or finished session from its saved Claude "
    "conversation. " + TURN_RESULT,
    annotations=RUNS_TURN,
)
@_refusals_as_errors
async def resume_session(
    name: SessionName,
    ctx: Context,
    message: Annotated[
        str | None,
        Field(description="What to tell it (default: continue where it left off)."),
    ] = None,
    fresh: Annotated[
        bool,
        Field(
            description="Start over from its task in a new conversation (when the "
            "old one was never saved)."
        ),
    ] = False,
    background: Background = False,
    wait_s: WaitS = DEFAULT_WAIT_S,
    project: Project = None,
) -> Annotated[CallToolResult, SessionOut]:
    record = await _run(
        ctx,
        project,
        _turn_then_wait(lambda p: api.resume_session(p, name, message, fresh), background, wait_s),
    )
    return _session_result(record)


@_tool(
    description="A new session `name` that starts from a copy of session `source`'s "
    "conversation (same settings and budget caps), to try another approach without "
    "disturbing the original. With `message` it runs that as its first turn and waits "
    "like delegate_task; without, it is created idle. " + SESSION_RESULT,
    annotations=RUNS_TURN,
)
@_refusals_as_errors
async def fork_session(
    source: Annotated[
        str,
        Field(
            description="The session to fork from (its turn must have ended).",
            json_schema_extra={"pattern": NAME_PATTERN},
        ),
    ],
    name: Annotated[
        str,
        Field(
            description="The new session's name (unused in the project).",
            json_schema_extra={"pattern": NAME_PATTERN},
        ),
    ],
    ctx: Context,
    message: Annotated[
        str | None, Field(description="The fork's first instruction (optional).")
    ] = None,
    background: Background = False,
    wait_s: WaitS = DEFAULT_WAIT_S,
    project: Project = None,
) -> Annotated[CallToolResult, SessionOut]:
    record = await _run(
        ctx,
        project,
        _turn_then_wait(
            lambda p: api.fork_session(p, source, name, message),
            background or message is None,
            wait_s,
        ),
    )
    return _session_result(record)


@_tool(
    description="The project's spend in USD (cms's sessions, your own Claude Code "
    "sessions and their subagents): the total, the project's cap, and rows by session, "
    "model, day or subagent type (agent).",
    annotations=READ_ONLY,
)
@_refusals_as_errors
async def get_cost(
    by: Annotated[
        str,
        Field(
            description="Group rows by session, model, day or agent (subagent type).",
            json_schema_extra={"enum": ["session", "model", "day", "agent"]},
        ),
    ] = "session",
    project: Project = None,
) -> Annotated[CallToolResult, CostOut]:
    report = await _run(None, project, lambda call: api.cost_report(call.project(), by))
    data = report.as_json()
    return CallToolResult(content=[_text(data)], structured_content=data)


#: Each tool's ``_meta``. The plugin's manifest marks the server ``alwaysLoad`` (Claude
#: Code then waits for it before the first turn, up to its 5-second connect limit, so a
#: server slow to start on a busy machine is not missing from that turn); this keeps
#: the tools themselves deferred behind Claude Code's tool search as usual, so the
#: parent's every request does not carry their schemas.
TOOL_META = {"anthropic/alwaysLoad": False}


def build_server() -> MCPServer:
    """The cms MCP server with every tool registered (not started)."""
    server: MCPServer = MCPServer(
        name="cms", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )
    for fn, description, hints in _TOOLS:
        server.tool(description=description, annotations=hints, meta=dict(TOOL_META))(fn)
    return server


def serve() -> None:
    """Run the server on stdin/stdout until the client closes it (``cms mcp``)."""
    build_server().run("stdio")
