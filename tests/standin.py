"""A stand-in for the Anthropic Messages API, for running the real Claude Code CLI offline.

The server listens on 127.0.0.1 (an ephemeral port), serves from a daemon thread and
answers what the CLI asks for:

* ``POST /v1/messages`` (the CLI sends ``/v1/messages?beta=true``): a scripted reply,
  streamed as server-sent events when the request says ``"stream": true``, one JSON
  message otherwise;
* ``POST /v1/messages/count_tokens``: a rough token count;
* anything else: recorded (see :attr:`StandIn.unknown`) and answered harmlessly:
  ``200 {}`` for GET/HEAD, ``404 not_found_error`` for other methods.

Scripting is stateless per conversation, so any number of CLI processes can share one
server. A test registers ``standin.script(marker, [reply, ...])``. For a conversation
request the server looks for a registered marker in the text of the *first user message*
(the task: the CLI sends it as the last text block of that message, after its
``<system-reminder>`` context blocks; all blocks are searched; the longest matching
marker wins) and answers turn *k*, where *k* is the number of assistant messages already
in ``messages``. One list thus covers every turn of a conversation, and a ``--resume`` d
conversation (whose first user message is still the original task) continues the list.
Without a matching marker, or past the end of the list, it answers
:func:`default_reply` (``"done"`` with tiny usage). Failures never add an assistant
message, so a failed turn is asked again at the same *k*; ``times=N`` on an error or
drop makes it transient (see :meth:`StandIn.script`).

Side requests never consume a script: a messages request counts as a conversation turn
only if it offers the model ``tools`` (the agent loop always sends its tool list: Bash,
Edit, Write, ...); tool-less requests (title, topic or summary generation, quota probes)
get the default reply and are recorded with kind ``"side"``. With
``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1``, CLI 2.1.332 in ``-p`` mode sends none:
one ``POST /v1/messages?beta=true`` per turn and nothing else. A subagent (Agent tool)
conversation offers tools too; its first user message is the prompt the parent gave, so
it matches a marker only if that prompt contains one.

Every request is recorded (:class:`Recorded`: method, path, headers without the API key,
parsed JSON body, kind, the marker and turn it matched, the reply sent) in a thread-safe
list read through :attr:`StandIn.requests`, :meth:`StandIn.requests_for` and
:meth:`StandIn.wait_for`.

Example::

    with StandIn() as api:
        api.script("T-1234", [tool_use("Write", {"file_path": p, "content": "x"}), text("ok")])
        # run `claude -p "do it T-1234"` with ANTHROPIC_BASE_URL=api.url
        assert len(api.requests_for("T-1234")) == 2
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, TypeAlias

__all__ = [
    "PRICES_PER_MTOK",
    "Block",
    "Recorded",
    "Reply",
    "StandIn",
    "Text",
    "ToolUse",
    "default_reply",
    "drop",
    "error",
    "expected_cost",
    "first_user_text",
    "message",
    "text",
    "tool_use",
]

JSONDict: TypeAlias = dict[str, Any]

# Headers that carry credentials; they are not recorded.
_SECRET_HEADERS = frozenset({"x-api-key", "authorization"})

# The real API's error type and message per HTTP status.
_ERROR_TYPES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request"),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "Not found"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Rate limited"),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Text:
    """A text content block of a scripted reply."""

    text: str


@dataclass(frozen=True)
class ToolUse:
    """A tool_use content block; ``id`` is generated per answer when not given."""

    name: str
    input: JSONDict
    id: str | None = None


Block: TypeAlias = Text | ToolUse


@dataclass(frozen=True)
class Reply:
    """One scripted answer of the stand-in to one request.

    ``kind`` is ``"message"`` (an answer made of ``blocks``), ``"error"`` (HTTP
    ``status`` with ``error_body``) or ``"drop"`` (send the headers and message_start,
    then cut the connection). ``delay`` seconds pass before anything is sent; the wait
    ends early when the server stops, and the connection is then closed unanswered.
    ``times`` (errors and drops only) makes a failure transient: see
    :meth:`StandIn.script`.
    """

    kind: Literal["message", "error", "drop"] = "message"
    blocks: tuple[Block, ...] = ()
    input_tokens: int = 100
    output_tokens: int = 10
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    stop_reason: str | None = None
    status: int = 200
    error_body: JSONDict | None = None
    delay: float = 0.0
    times: int | None = None

    def effective_stop_reason(self) -> str:
        """``stop_reason`` if set, else ``tool_use`` when a tool is called, else ``end_turn``."""
        if self.stop_reason is not None:
            return self.stop_reason
        return "tool_use" if any(isinstance(b, ToolUse) for b in self.blocks) else "end_turn"

    def usage(self) -> JSONDict:
        """The ``usage`` object of the answer."""
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "output_tokens": self.output_tokens,
        }


def text(
    s: str,
    input_tokens: int = 100,
    output_tokens: int = 10,
    *,
    delay: float = 0.0,
    stop_reason: str | None = None,
) -> Reply:
    """A reply with one text block (``end_turn``)."""
    return Reply(
        blocks=(Text(s),),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        delay=delay,
        stop_reason=stop_reason,
    )


def tool_use(
    name: str,
    input: JSONDict,
    input_tokens: int = 100,
    output_tokens: int = 10,
    *,
    id: str | None = None,
    delay: float = 0.0,
) -> Reply:
    """A reply that calls one tool (``stop_reason`` ``tool_use``)."""
    return Reply(
        blocks=(ToolUse(name, input, id),),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        delay=delay,
    )


def message(
    *blocks: Block | str,
    input_tokens: int = 100,
    output_tokens: int = 10,
    delay: float = 0.0,
    stop_reason: str | None = None,
) -> Reply:
    """A reply with several blocks: ``message("Writing it.", ToolUse("Write", {...}))``.

    Plain strings become text blocks. Several ToolUse blocks make parallel tool calls.
    """
    return Reply(
        blocks=tuple(Text(b) if isinstance(b, str) else b for b in blocks),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        delay=delay,
        stop_reason=stop_reason,
    )


def error(
    status: int, body: JSONDict | None = None, *, times: int | None = None, delay: float = 0.0
) -> Reply:
    """An HTTP error answer in the real API's shape.

    ``error(500)`` sends ``{"type": "error", "error": {"type": "api_error", "message":
    ...}}``, ``error(529)`` an ``overloaded_error``; ``body`` replaces the JSON body.
    ``times=N`` fails only the first N requests of its turn (see :meth:`StandIn.script`).
    """
    if body is None:
        err_type, msg = _ERROR_TYPES.get(status, ("api_error", f"HTTP {status}"))
        body = {"type": "error", "error": {"type": err_type, "message": msg}}
    return Reply(kind="error", status=status, error_body=body, delay=delay, times=times)


def drop(*, times: int | None = None, delay: float = 0.0, input_tokens: int = 100) -> Reply:
    """Send the response headers and ``message_start``, then close the connection.

    After a broken stream the CLI re-asks the same turn once with ``"stream": false``
    (this is not counted as a retry). A plain ``drop()`` breaks that request too and the
    run ends with ``is_error`` and "Connection to the API was lost"; with
    ``[drop(times=1), text("ok")]`` only the stream breaks and the re-ask gets "ok".
    The CLI bills the usage of the broken message_start (``input_tokens`` and 1 output).
    """
    return Reply(kind="drop", input_tokens=input_tokens, delay=delay, times=times)


def default_reply() -> Reply:
    """What unscripted, exhausted and side requests get: ``"done"`` with tiny usage."""
    return text("done", input_tokens=10, output_tokens=1)


# --------------------------------------------------------------------------- pricing

# What Claude Code 2.1.332 charges in total_cost_usd per million tokens of the usage the
# stand-in reports, observed by scripting 1M tokens of each kind:
# (input, output, cache read, cache write). Unknown model names are priced like
# claude-opus-5-5, the CLI's default model with an API key; "--model claude-opus-4-1"
# is silently replaced by claude-opus-5-5 in the request; the aliases sonnet, haiku and
# opus request claude-sonnet-5-5, claude-haiku-5-5 and claude-opus-5-5.
PRICES_PER_MTOK: dict[str, tuple[float, float, float, float]] = {
    "claude-opus-5-5": (4.0, 20.0, 0.2, 5.0),
    "claude-opus-4-5": (5.0, 25.0, 0.5, 6.25),
    "claude-sonnet-5-5": (2.0, 10.0, 0.1, 2.5),
    "claude-sonnet-4-6": (3.0, 15.0, 0.3, 3.75),
    "claude-sonnet-4-5": (3.0, 15.0, 0.3, 3.75),
    "claude-haiku-5-5": (0.5, 0.5, 0.05, 0.625),
    "claude-haiku-4-5": (1.0, 5.0, 0.1, 1.25),
}


def expected_cost(model: str, replies: Sequence[Reply]) -> float:
    """The ``total_cost_usd`` the CLI reports for these message replies (failures cost 0)."""
    p_in, p_out, p_read, p_write = PRICES_PER_MTOK.get(model, PRICES_PER_MTOK["claude-opus-5-5"])
    return (
        sum(
            r.input_tokens * p_in
            + r.output_tokens * p_out
            + r.cache_read_input_tokens * p_read
            + r.cache_creation_input_tokens * p_write
            for r in replies
            if r.kind == "message"
        )
        / 1_000_000
    )


# --------------------------------------------------------------------------- records


@dataclass
class Recorded:
    """One request the stand-in received, and how it was answered.

    ``kind`` is ``"main"`` (a conversation turn: it offers tools), ``"side"`` (a
    tool-less messages request), ``"count_tokens"`` or ``"unknown"``. ``marker`` is the
    matched script marker (or None), ``turn`` the number of assistant messages in the
    request, ``reply`` the reply sent to a messages request, with concrete tool_use ids,
    also listed in ``tool_use_ids``. ``time`` is ``time.monotonic()`` at arrival.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    kind: str
    time: float
    marker: str | None = None
    turn: int | None = None
    reply: Reply | None = None
    tool_use_ids: list[str] = field(default_factory=list)

    @property
    def messages(self) -> list[JSONDict]:
        """The ``messages`` of the request body (empty when absent)."""
        if isinstance(self.body, dict):
            msgs = self.body.get("messages")
            if isinstance(msgs, list):
                return msgs
        return []

    def blocks(self, block_type: str) -> list[JSONDict]:
        """All content blocks of ``block_type`` in all messages, e.g. ``"tool_result"``."""
        found: list[JSONDict] = []
        for msg in self.messages:
            content = msg.get("content")
            if isinstance(content, list):
                found.extend(
                    b for b in content if isinstance(b, dict) and b.get("type") == block_type
                )
        return found


def _text_of(content: Any) -> Iterator[str]:
    """The texts of a message ``content`` (a string or a list of blocks, nested too)."""
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for block in content:
            if isinstance(block, str):
                yield block
            elif isinstance(block, dict):
                if isinstance(block.get("text"), str):
                    yield block["text"]
                if "content" in block:  # tool_result blocks nest their content
                    yield from _text_of(block["content"])


def first_user_text(body: Any) -> str:
    """All text of the first user message of a messages request, joined by newlines."""
    if not isinstance(body, dict):
        return ""
    for msg in body.get("messages") or []:
        if isinstance(msg, dict) and msg.get("role") == "user":
            return "\n".join(_text_of(msg.get("content")))
    return ""


def _count_assistant(body: JSONDict) -> int:
    messages = body.get("messages") or []
    return sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")


def _error_json(err_type: str, msg: str) -> JSONDict:
    return {"type": "error", "error": {"type": err_type, "message": msg}}


def _new_id(prefix: str) -> str:
    return f"{prefix}_standin_{uuid.uuid4().hex[:20]}"


# --------------------------------------------------------------------------- server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: StandIn

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (a killed CLI, a cut connection) is not an error here.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # the CLI keeps connections alive
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.standin._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.standin._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: everything is in StandIn.requests."""

    # ---- dispatch

    def do_POST(self) -> None:
        body = self._read_body()
        route = self.path.split("?", 1)[0].rstrip("/")
        if route == "/v1/messages":
            self._messages(body)
        elif route == "/v1/messages/count_tokens":
            self._record(body, "count_tokens")
            self._send_json(200, {"input_tokens": max(1, len(json.dumps(body)) // 4)})
        else:
            self._unknown(body)

    def do_GET(self) -> None:
        self._unknown(None)

    def do_HEAD(self) -> None:
        self._unknown(None)

    def do_PUT(self) -> None:
        self._unknown(self._read_body())

    def do_DELETE(self) -> None:
        self._unknown(self._read_body())

    # ---- plumbing

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def _record(self, body: Any, kind: str, **extra: Any) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _SECRET_HEADERS}
        rec = Recorded(self.command, self.path, headers, body, kind, time.monotonic(), **extra)
        self.server.standin._add(rec)

    def _unknown(self, body: Any) -> None:
        self._record(body, "unknown")
        if self.command in ("GET", "HEAD"):
            self._send_json(200, {})
        else:
            self._send_json(404, _error_json("not_found_error", "Not found"))

    def _send_json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", _new_id("req"))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _hang_up(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ---- /v1/messages

    def _messages(self, body: Any) -> None:
        standin = self.server.standin
        if not isinstance(body, dict):
            self._record(body, "unknown")
            self._send_json(400, _error_json("invalid_request_error", "body is not a JSON object"))
            return
        turn = _count_assistant(body)
        if body.get("tools"):
            kind = "main"
            marker, reply = standin._choose(first_user_text(body), turn)
        else:
            kind, marker, reply = "side", None, default_reply()
        reply = replace(
            reply,
            blocks=tuple(
                replace(b, id=_new_id("toolu")) if isinstance(b, ToolUse) and not b.id else b
                for b in reply.blocks
            ),
        )
        ids = [b.id for b in reply.blocks if isinstance(b, ToolUse) and b.id]
        self._record(body, kind, marker=marker, turn=turn, reply=reply, tool_use_ids=ids)

        if reply.delay > 0 and standin._stopping.wait(reply.delay):
            self._hang_up()  # the server is stopping: hang up without answering
            return
        model = str(body.get("model") or "claude-standin")
        if reply.kind == "error":
            self._send_json(reply.status, reply.error_body)
        elif body.get("stream"):
            self._stream(reply, model)
        elif reply.kind == "drop":
            self.send_response(200)  # promise a body, send a piece of it, hang up
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "4096")
            self.end_headers()
            self.wfile.write(b'{"id": "msg_standin_dropped", "type": "message", "content": [')
            self._hang_up()
        else:
            self._send_json(200, self._full_message(reply, model))

    @staticmethod
    def _full_message(reply: Reply, model: str) -> JSONDict:
        content: list[JSONDict] = [
            {"type": "text", "text": b.text}
            if isinstance(b, Text)
            else {"type": "tool_use", "id": b.id, "name": b.name, "input": b.input}
            for b in reply.blocks
        ]
        return {
            "id": _new_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": reply.effective_stop_reason(),
            "stop_sequence": None,
            "usage": reply.usage(),
        }

    def _stream(self, reply: Reply, model: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")  # the body ends when the connection does
        self.send_header("request-id", _new_id("req"))
        self.end_headers()
        self.close_connection = True

        def event(data: JSONDict) -> None:
            self.wfile.write(f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode())

        start = self._full_message(reply, model) | {"content": [], "stop_reason": None}
        start["usage"] = reply.usage() | {"output_tokens": 1}
        event({"type": "message_start", "message": start})
        if reply.kind == "drop":
            self._hang_up()
            return
        for index, b in enumerate(reply.blocks):
            if isinstance(b, Text):
                event(
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    }
                )
                event(
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": b.text},
                    }
                )
            else:
                event(
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {
                            "type": "tool_use",
                            "id": b.id,
                            "name": b.name,
                            "input": {},
                        },
                    }
                )
                js = json.dumps(b.input)
                for i in range(0, len(js), 64):  # several partial_json chunks, like the API
                    event(
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": js[i : i + 64]},
                        }
                    )
            event({"type": "content_block_stop", "index": index})
        event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": reply.effective_stop_reason(), "stop_sequence": None},
                "usage": {"output_tokens": reply.output_tokens},
            }
        )
        event({"type": "message_stop"})
        self.wfile.flush()


# One scripted turn: (indexes of its transient failures, index of its reply or None).
_Turn: TypeAlias = tuple[tuple[int, ...], int | None]


class StandIn:
    """The stand-in server; ``start()``/``stop()`` or use it as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._lock = threading.Condition()
        self._scripts: dict[str, tuple[tuple[Reply, ...], tuple[_Turn, ...]]] = {}
        self._served: dict[tuple[str, int], int] = {}
        self._requests: list[Recorded] = []
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle

    def start(self) -> StandIn:
        """Bind and serve from a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("stand-in already started")
        self._stopping.clear()
        server = _Server((self._host, self._port), _Handler)
        server.standin = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"standin-{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop: end pending delays, cut open connections, close the socket. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("stand-in not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL to give the CLI as ``ANTHROPIC_BASE_URL``."""
        return f"http://{self._host}:{self.port}"

    # ---- scripting

    def script(self, marker: str, replies: Sequence[Reply]) -> None:
        """Register (or replace) the replies of the conversation whose task holds ``marker``.

        A request with *k* assistant messages gets turn *k* of the list. Failures (errors
        and drops) add no assistant message, so a CLI that retries, re-asks without
        streaming or is ``--resume`` d after a failure asks for the same *k* again: a
        plain ``error(500)`` fails that turn for good. A failure with ``times=N`` is
        *transient*: it answers the first N requests of its turn, after which the reply
        that follows it in the list answers that turn; it takes no turn of its own.
        ``[error(529, times=1), text("ok")]`` fails once, then says "ok" as turn 0.
        These counters are the only state; they belong to the marker and are reset when
        it is registered again.
        """
        if not marker:
            raise ValueError("empty marker")
        turns: list[_Turn] = []
        pending: list[int] = []
        for index, reply in enumerate(replies):
            if reply.kind != "message" and reply.times is not None:
                pending.append(index)
            else:
                turns.append((tuple(pending), index))
                pending = []
        if pending:
            turns.append((tuple(pending), None))
        with self._lock:
            self._scripts[marker] = (tuple(replies), tuple(turns))
            for key in [k for k in self._served if k[0] == marker]:
                del self._served[key]

    def _choose(self, task: str, turn: int) -> tuple[str | None, Reply]:
        with self._lock:
            matches = [m for m in self._scripts if m in task]
            if not matches:
                return None, default_reply()
            marker = max(matches, key=len)
            replies, turns = self._scripts[marker]
            if turn >= len(turns):
                return marker, default_reply()
            transient, final = turns[turn]
            for index in transient:
                served = self._served.get((marker, index), 0)
                if served < (replies[index].times or 0):
                    self._served[(marker, index)] = served + 1
                    return marker, replies[index]
        return marker, replies[final] if final is not None else default_reply()

    # ---- records

    def _add(self, rec: Recorded) -> None:
        with self._lock:
            self._requests.append(rec)
            self._lock.notify_all()

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    @property
    def requests(self) -> list[Recorded]:
        """A snapshot of every request received, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, marker: str) -> list[Recorded]:
        """The conversation requests matched to ``marker``, in arrival order."""
        return [r for r in self.requests if r.kind == "main" and r.marker == marker]

    def wait_for(self, marker: str, count: int = 1, timeout: float = 30.0) -> list[Recorded]:
        """Block until ``count`` requests matched ``marker`` (e.g. a delayed turn is in
        flight and the test may now abort the CLI); raise TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [r for r in self._requests if r.kind == "main" and r.marker == marker]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(found)} of {count} requests for {marker!r}")
                self._lock.wait(left)

    @property
    def unknown(self) -> list[Recorded]:
        """Requests to paths the stand-in does not implement."""
        return [r for r in self.requests if r.kind == "unknown"]

    def clear(self) -> None:
        """Forget the recorded requests (scripts and their counters stay)."""
        with self._lock:
            self._requests.clear()
