"""A session's event log for a person: one readable line per thing that happened.

``cms logs NAME`` shows each assistant text, each tool call with its key argument,
tool results shortened to their first line, denials marked with who refused (the cms
hook, another hook, or Claude Code's permission system), and the final result with
cost and turns. The raw stream-json stays in the log file (``--raw``); this module
only renders it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from cms.base import vocab
from cms.base.vocab import usd
from cms.engine.streamjson import (
    clean_result,
    content_text,
    denial,
    describe_tool_call,
    parse_line,
    rejected_ids,
)

RESULT_WIDTH = 200


def _short(text: str, width: int = RESULT_WIDTH) -> str:
    return vocab.one_line(text, width)


def describe_call(name: str, tool_input: dict[str, Any]) -> str:
    """The tool and its key argument: the command, the file, the pattern, the URL;
    for a subagent its description, for a skill its name."""
    text = describe_tool_call(name, tool_input)
    if text != name:
        return text
    for key in ("description", "skill", "subagent_type", "prompt"):
        value = tool_input.get(key)
        if isinstance(value, str) and value.strip():
            return _short(f"{name}: {value}", 160)
    todos = tool_input.get("todos")
    if isinstance(todos, list):
        return f"{name}: {len(todos)} items"
    return name


def _first_line(text: str, width: int = RESULT_WIDTH) -> str:
    """A tool's output shortened to its first line, and how many lines were left out."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    left = len(lines) - 1
    more = f" (+{left} line{'s' if left > 1 else ''})" if left else ""
    return _short(lines[0], width - len(more)) + more


def _money(value: Any) -> str:
    return usd(value) if isinstance(value, int | float) else "$?"


class LogRenderer:
    """Turns the events of one log, in order, into readable lines.

    It remembers the tool calls still waiting for their result: while several are
    (parallel calls), each result is labelled with its tool's name.
    """

    def __init__(self) -> None:
        self.pending: dict[str, str] = {}

    def event(self, event: dict[str, Any]) -> list[str]:
        """The readable lines of one stream-json event (none for noise)."""
        kind = event.get("type")
        if kind == "system":
            return self._system(event)
        if event.get("parent_tool_use_id"):
            return []  # a subagent's inside: its call and result are shown
        if kind == "assistant":
            return self._assistant(event)
        if kind == "user":
            return self._user(event)
        if kind == "result":
            return self._result(event)
        if kind == "cms_outcome":
            status = event.get("status", "?")
            error = event.get("error")
            return [f"── cms: {status}" + (f": {_short(str(error))}" if error else "")]
        return []

    def _system(self, event: dict[str, Any]) -> list[str]:
        if event.get("subtype") != "init":
            return []
        self.pending.clear()
        model = event.get("model", "?")
        version = event.get("claude_code_version", "?")
        mode = event.get("permissionMode")
        line = f"── turn started · model {model} · Claude Code {version}"
        return [line + (f" · permission mode {mode}" if mode else "")]

    def _assistant(self, event: dict[str, Any]) -> list[str]:
        lines: list[str] = []
        for block in (event.get("message") or {}).get("content") or []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and str(block.get("text", "")).strip():
                text_lines = str(block["text"]).strip().splitlines()
                lines.append(f"assistant: {text_lines[0]}")
                lines.extend(f"           {line}".rstrip() for line in text_lines[1:])
            elif block.get("type") == "tool_use":
                name = str(block.get("name", "tool"))
                tool_input = block.get("input")
                lines.append(f"→ {describe_call(name, tool_input or {})}")
                call_id = block.get("id")
                if isinstance(call_id, str):
                    self.pending[call_id] = name
        return lines

    def _user(self, event: dict[str, Any]) -> list[str]:
        content = (event.get("message") or {}).get("content")
        if not isinstance(content, list):
            return []
        rejected = rejected_ids(event)
        lines = []
        for block in content:
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            call_id = block.get("tool_use_id")
            label = ""
            if isinstance(call_id, str) and call_id in self.pending:
                if len(self.pending) > 1:
                    label = f"{self.pending[call_id]}: "
                del self.pending[call_id]
            text = content_text(block.get("content"))
            refused = denial(text, call_id in rejected, bool(block.get("is_error")))
            if refused is not None:
                who, reason = refused
                lines.append(f"  ⛔ {label}denied by {who}: {_short(reason)}")
            elif block.get("is_error"):
                lines.append(f"  ✗ {label}error: {_first_line(clean_result(text))}")
            else:
                lines.append(f"  ← {label}{_first_line(text) or '(no output)'}")
        return lines

    def _result(self, event: dict[str, Any]) -> list[str]:
        subtype = str(event.get("subtype", "?"))
        outcome = "error" if event.get("is_error") and subtype == "success" else subtype
        turns = event.get("num_turns", "?")
        line = f"── result: {outcome} · {_money(event.get('total_cost_usd'))} · {turns} turns"
        duration = event.get("duration_ms")
        if isinstance(duration, int | float):
            line += f" · {duration / 1000:.1f}s"
        lines = [line]
        errors = event.get("errors")
        if isinstance(errors, list):
            lines.extend(f"   {_short(str(e))}" for e in errors)
        if event.get("is_error") and isinstance(event.get("result"), str):
            lines.append(f"   {_short(event['result'])}")
        denied = [
            str(d.get("tool_name", "tool"))
            for d in event.get("permission_denials") or []
            if isinstance(d, dict)
        ]
        if denied:
            lines.append(f"   ⛔ {len(denied)} denied: {', '.join(denied)}")
        return lines


def render_lines(raw_lines: Iterable[bytes | str]) -> Iterator[str]:
    """Readable lines for raw log lines; lines that are not JSON are shown as such."""
    renderer = LogRenderer()
    for raw in raw_lines:
        event = parse_line(raw)
        if event is None:
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            if text.strip():
                yield f"(not JSON) {_short(text)}"
            continue
        yield from renderer.event(event)
