"""Framing and parsing of Claude Code's ``--output-format stream-json`` stream.

The stream is newline-delimited JSON. :class:`LineFramer` turns arbitrary byte chunks
into complete lines (a line may arrive in pieces, several may arrive at once, the last
may lack its newline). :func:`parse_line` turns one line into an event dict or None:
a line that is not a JSON object is reported, never fatal; event types cms does not
know are returned as they are for the caller to log and skip (forward-compatible).

:class:`TurnTally` folds the events of one turn into what the session record shows
while it runs: agentic turns, token usage, a live cost estimate, the last activity.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, cast

from cms.base import vocab
from cms.base.wire import AssistantEvent, ResultEvent, Usage

#: USD per million tokens (input, output, cache read, cache write) as Claude Code
#: 2.1.332 prices them, for the *live estimate* only; the settled figure is always the
#: CLI's own ``total_cost_usd``. A model not listed is priced by its family; a name
#: the CLI does not know it prices as its default model, and so does this estimate.
PRICES_PER_MTOK: dict[str, tuple[float, float, float, float]] = {
    "claude-opus-5-5": (4.0, 20.0, 0.2, 5.0),
    "claude-opus-4-5": (5.0, 25.0, 0.5, 6.25),
    "claude-sonnet-5-5": (2.0, 10.0, 0.1, 2.5),
    "claude-sonnet-4-6": (3.0, 15.0, 0.3, 3.75),
    "claude-sonnet-4-5": (3.0, 15.0, 0.3, 3.75),
    "claude-haiku-5-5": (0.5, 0.5, 0.05, 0.625),
    "claude-haiku-4-5": (1.0, 5.0, 0.1, 1.25),
}
FAMILY_PRICES: dict[str, tuple[float, float, float, float]] = {
    "opus": PRICES_PER_MTOK["claude-opus-5-5"],
    "sonnet": PRICES_PER_MTOK["claude-sonnet-5-5"],
    "haiku": PRICES_PER_MTOK["claude-haiku-5-5"],
}


def price_for(model: str | None) -> tuple[float, float, float, float]:
    name = (model or "").lower()
    for known, price in PRICES_PER_MTOK.items():
        if name.startswith(known):
            return price
    for family, price in FAMILY_PRICES.items():
        if family in name:
            return price
    return PRICES_PER_MTOK["claude-opus-5-5"]


def estimate_cost(model: str | None, usage: Usage) -> float:
    per_in, per_out, per_read, per_write = price_for(model)
    return (
        usage.get("input_tokens", 0) * per_in
        + usage.get("output_tokens", 0) * per_out
        + usage.get("cache_read_input_tokens", 0) * per_read
        + usage.get("cache_creation_input_tokens", 0) * per_write
    ) / 1_000_000


class LineFramer:
    """Split a byte stream into lines; tolerate partial and oversized lines."""

    def __init__(self, max_line: int = 64 * 1024 * 1024) -> None:
        self._buffer = bytearray()
        self._max_line = max_line

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer.extend(chunk)
        lines: list[bytes] = []
        while True:
            cut = self._buffer.find(b"\n")
            if cut < 0:
                break
            lines.append(bytes(self._buffer[:cut]))
            del self._buffer[: cut + 1]
        if len(self._buffer) > self._max_line:
            # A runaway line without newline: hand it out rather than grow forever.
            lines.append(bytes(self._buffer))
            self._buffer.clear()
        return lines

    def flush(self) -> list[bytes]:
        rest = bytes(self._buffer)
        self._buffer.clear()
        return [rest] if rest.strip() else []


def parse_line(line: bytes | str) -> dict[str, Any] | None:
    """One stream line as an event dict, or None when it is not a JSON object."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    text = text.strip()
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return None
    return value


def _count(usage: Usage | dict[str, Any], key: str) -> int:
    value = cast(dict[str, Any], usage).get(key)
    return int(value) if isinstance(value, int | float) else 0


def _one_line(text: str, limit: int = 160) -> str:
    return vocab.one_line(text, limit)


def describe_tool_call(name: str, tool_input: dict[str, Any]) -> str:
    """A short human description of a tool call: its name and key argument."""
    for key in ("command", "file_path", "notebook_path", "path", "pattern", "url", "query"):
        value = tool_input.get(key)
        if isinstance(value, str) and value:
            return _one_line(f"{name}: {value}")
    return name


def content_text(content: Any) -> str:
    """The text of a tool result's content (a string, or a list of text blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                parts.append(block["text"])
        return " ".join(parts)
    return "" if content is None else json.dumps(content)


#: "PreToolUse:Bash hook error: " — how Claude Code prefixes a PreToolUse hook's refusal.
_HOOK_PREFIX = re.compile(r"^\s*PreToolUse:\S* hook error:\s*")
_TOOL_ERROR_TAG = re.compile(r"</?tool_use_error>")
#: How Claude Code's own permission system words a refusal (disallowed tool, deny
#: rule, a permission nobody granted in -p mode).
_CLI_DENIALS = (
    "is disabled for this session",
    "requested permissions to use",
    "haven't granted it yet",
    "has been denied",
    "permission to use",
)
#: What a command's output says when the sandbox refused it: bubblewrap mounts what
#: may not be written read-only (EROFS), Seatbelt reports ``<sandbox_violations>``,
#: and the network proxy answers a host that is not allowed with a 403 of its own.
_SANDBOX_SIGNS = (
    "read-only file system",  # bash, python, coreutils; node says "EROFS: read-only ..."
    "<sandbox_violations>",
    "connection blocked by network allowlist",
    "x-proxy-error: blocked",
)


def clean_result(text: str) -> str:
    """A tool result's text without the CLI's ``<tool_use_error>`` wrapper."""
    text = _TOOL_ERROR_TAG.sub("", text).strip()
    return text[len("Error: ") :] if text.startswith("Error: ") else text


def denial(text: str, rejected: bool = False, is_error: bool = True) -> tuple[str, str] | None:
    """Who refused a tool call and why, or None when nothing refused it.

    ``rejected`` is the CLI's own verdict (``tool_result_meta``'s permission decision
    ``reject``), when the event carries one. Otherwise the text decides: a reason from
    the cms PreToolUse hook (it starts with ``cms: ``), another PreToolUse hook's
    refusal, the words of Claude Code's permission system, or (in any result, since
    a command that met the sandbox may still exit 0) the marks of the sandbox.
    """
    text = clean_result(text)
    if is_error:
        hooked = _HOOK_PREFIX.match(text)
        reason = text[hooked.end() :] if hooked else text
        if reason.startswith("cms: "):
            return "cms", reason[len("cms: ") :]
        if hooked:
            return "a hook", reason
        lowered = reason.lower()
        if rejected or any(words in lowered for words in _CLI_DENIALS):
            return "Claude Code", reason
    lowered = text.lower()
    for sign in _SANDBOX_SIGNS:
        at = lowered.find(sign)
        if at >= 0:
            start = text.rfind("\n", 0, at) + 1
            end = text.find("\n", at)
            return "the sandbox", text[start : end if end >= 0 else len(text)].strip()
    return None


def rejected_ids(event: dict[str, Any]) -> set[str]:
    """Ids of the tool calls of a ``user`` event that the CLI itself rejected."""
    rejected = set()
    for meta in event.get("tool_result_meta") or []:
        decision = (meta or {}).get("permission_decision") or {}
        if isinstance(decision, dict) and decision.get("decision") == "reject":
            rejected.add(str(meta.get("id")))
    return rejected


@dataclass
class TurnTally:
    """Running totals of one turn, built from its events."""

    model: str | None = None
    session_id: str | None = None
    #: usage per assistant message id: the CLI may emit one message in several events.
    usage_by_message: dict[str, Usage] = field(default_factory=dict)
    last_activity: str | None = None
    last_text: str | None = None
    result: ResultEvent | None = None
    saw_conversation: bool = False
    unknown_events: int = 0
    bad_lines: int = 0
    #: Tool calls refused (by a hook, Claude Code or the sandbox): see :func:`denial`.
    denials: int = 0

    @property
    def api_calls(self) -> int:
        return len(self.usage_by_message)

    @property
    def input_tokens(self) -> int:
        return sum(u.get("input_tokens", 0) for u in self.usage_by_message.values())

    @property
    def output_tokens(self) -> int:
        return sum(u.get("output_tokens", 0) for u in self.usage_by_message.values())

    @property
    def estimated_cost_usd(self) -> float:
        return sum(estimate_cost(self.model, u) for u in self.usage_by_message.values())

    def add(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if isinstance(event.get("session_id"), str) and event["session_id"]:
            self.session_id = event["session_id"]
        if kind == "system":
            if event.get("subtype") == "init" and isinstance(event.get("model"), str):
                self.model = event["model"]
        elif kind == "assistant":
            self._add_assistant(cast(AssistantEvent, event))
        elif kind == "user":
            self.saw_conversation = True
            if not event.get("parent_tool_use_id"):
                self._add_results(event)
        elif kind == "result":
            self.result = cast(ResultEvent, event)
            self.saw_conversation = True
        else:
            self.unknown_events += 1

    def _add_results(self, event: dict[str, Any]) -> None:
        content = (event.get("message") or {}).get("content")
        if not isinstance(content, list):
            return
        rejected = rejected_ids(event)
        for block in content:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                refused = denial(
                    content_text(block.get("content")),
                    str(block.get("tool_use_id")) in rejected,
                    bool(block.get("is_error")),
                )
                if refused is not None:
                    self.denials += 1

    def _add_assistant(self, event: AssistantEvent) -> None:
        self.saw_conversation = True
        message = event.get("message") or {}
        if event.get("parent_tool_use_id"):
            return  # a subagent's message: its cost shows in the CLI's result
        msg_id = message.get("id") or f"anon-{len(self.usage_by_message)}"
        usage = message.get("usage") or {}
        previous = self.usage_by_message.get(msg_id, {})
        merged: dict[str, int] = {}
        for key in (
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        ):
            merged[key] = max(_count(previous, key), _count(usage, key))
        self.usage_by_message[msg_id] = cast(Usage, merged)
        if isinstance(message.get("model"), str) and not self.model:
            self.model = message["model"]
        for block in message.get("content") or []:
            if block.get("type") == "tool_use":
                self.last_activity = describe_tool_call(
                    str(block.get("name", "tool")), block.get("input") or {}
                )
            elif block.get("type") == "text" and block.get("text", "").strip():
                self.last_text = block["text"]
                self.last_activity = _one_line(block["text"])
