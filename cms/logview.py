"""A session's event log for a person: one readable line per thing that happened.

``cms logs NAME`` shows each assistant text, each tool call with its key argument,
tool results shortened, denials marked, and the final result with cost and turns.
The raw stream-json stays in the log file (``--raw``); this module only renders it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from cms.streamjson import describe_tool_call, parse_line

RESULT_WIDTH = 200


def _short(text: str, width: int = RESULT_WIDTH) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                parts.append(block["text"])
        return " ".join(parts)
    return "" if content is None else json.dumps(content)


def is_denial(text: str) -> bool:
    """A tool result that says a hook or the permission system refused the call."""
    lowered = text.lower()
    return (
        text.startswith("cms:")
        or "cms: " in text
        or "denied" in lowered
        or "permission to use" in lowered
        or "hook error" in lowered
        or "blocked" in lowered
    )


def render_event(event: dict[str, Any]) -> list[str]:
    """The readable lines of one stream-json event (none for noise)."""
    kind = event.get("type")
    if kind == "system":
        if event.get("subtype") == "init":
            model = event.get("model", "?")
            version = event.get("claude_code_version", "?")
            return [f"── turn started · model {model} · claude {version}"]
        return []
    if kind == "assistant":
        if event.get("parent_tool_use_id"):
            return []
        lines: list[str] = []
        for block in (event.get("message") or {}).get("content") or []:
            if block.get("type") == "text" and str(block.get("text", "")).strip():
                text_lines = str(block["text"]).strip().splitlines()
                lines.append(f"assistant: {text_lines[0]}")
                lines.extend(f"           {line}" for line in text_lines[1:])
            elif block.get("type") == "tool_use":
                call = describe_tool_call(str(block.get("name", "tool")), block.get("input") or {})
                lines.append(f"→ {call}")
        return lines
    if kind == "user":
        if event.get("parent_tool_use_id"):
            return []
        lines = []
        content = (event.get("message") or {}).get("content")
        if not isinstance(content, list):
            return []
        for block in content:
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            text = _content_text(block.get("content"))
            if block.get("is_error"):
                mark = "⛔ denied" if is_denial(text) else "✗ error"
                lines.append(f"  {mark}: {_short(text)}")
            else:
                lines.append(f"  ← {_short(text) or '(no output)'}")
        return lines
    if kind == "result":
        subtype = event.get("subtype", "?")
        outcome = "error" if event.get("is_error") else subtype
        if event.get("is_error") and subtype != "success":
            outcome = subtype
        cost = event.get("total_cost_usd")
        cost_text = f"${cost:.4f}" if isinstance(cost, int | float) else "$?"
        turns = event.get("num_turns", "?")
        line = f"── result: {outcome} · {cost_text} · {turns} turns"
        duration = event.get("duration_ms")
        if isinstance(duration, int | float):
            line += f" · {duration / 1000:.1f}s"
        lines = [line]
        errors = event.get("errors")
        if isinstance(errors, list):
            lines.extend(f"   {_short(str(e))}" for e in errors)
        if event.get("is_error") and isinstance(event.get("result"), str):
            lines.append(f"   {_short(event['result'])}")
        for denial in event.get("permission_denials") or []:
            if isinstance(denial, dict):
                lines.append(f"   ⛔ denied: {denial.get('tool_name', 'tool')}")
        return lines
    if kind == "cms_outcome":
        status = event.get("status", "?")
        error = event.get("error")
        return [f"── cms: {status}" + (f" ({_short(str(error))})" if error else "")]
    return []


def render_lines(raw_lines: Iterable[bytes | str]) -> Iterator[str]:
    """Readable lines for raw log lines; lines that are not JSON are shown as such."""
    for raw in raw_lines:
        event = parse_line(raw)
        if event is None:
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
            if text.strip():
                yield f"(not JSON) {_short(text)}"
            continue
        yield from render_event(event)
