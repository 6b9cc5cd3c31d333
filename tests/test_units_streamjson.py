"""The stream-json reader alone (cms.engine.streamjson): the line framer and the live
tally of one exchange, fed the events Claude Code 2.1.332 prints."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cms.engine.streamjson import LineFramer, TurnTally, denial, estimate_cost, parse_line


def _lines(*events: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in events)


@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=8),
       st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=10))  # fmt: skip
def test_the_framer_gives_back_each_line_however_the_bytes_are_cut(
    lines: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(line + b"\n" for line in lines)
    framer, got, at, i = LineFramer(), [], 0, 0
    while at < len(stream):
        size = cuts[i % len(cuts)]
        got += framer.feed(stream[at : at + size])
        at, i = at + size, i + 1
    got += framer.flush()
    assert got == lines


def test_the_framer_hands_out_a_last_line_without_newline_and_a_runaway_line() -> None:
    framer = LineFramer(max_line=10)
    assert framer.feed(b'{"a": 1}\n{"b"') == [b'{"a": 1}']
    assert framer.flush() == [b'{"b"']
    assert framer.feed(b"x" * 11) == [b"x" * 11]
    assert framer.flush() == []


def test_a_line_that_is_not_an_event_is_none_never_an_error() -> None:
    assert parse_line(b"") is None
    assert parse_line(b"not json") is None
    assert parse_line(b"[1, 2]") is None
    assert parse_line(b'{"no": "type"}') is None
    assert parse_line(b'{"type": "future_kind", "x": 1}') == {"type": "future_kind", "x": 1}
    assert parse_line(b'\xff{"type": "x"}') is None


def _assistant(msg_id: str, usage: dict[str, int], *blocks: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "assistant",
        "session_id": "s-1",
        "message": {"id": msg_id, "model": "claude-sonnet-4-5", "usage": usage,
                    "content": list(blocks)},
    }  # fmt: skip


def test_the_tally_counts_api_calls_once_per_message_and_keeps_the_largest_usage() -> None:
    tally = TurnTally()
    framer = LineFramer()
    stream = _lines(
        {"type": "system", "subtype": "init", "model": "claude-sonnet-4-5", "session_id": "s-1"},
        _assistant("m1", {"input_tokens": 100, "output_tokens": 1},
                   {"type": "text", "text": "Looking\n  at it"}),
        _assistant("m1", {"input_tokens": 100, "output_tokens": 50},
                   {"type": "tool_use", "name": "Bash", "input": {"command": "ls -la"}}),
        {"type": "user", "message": {"content": [
            {"type": "tool_result", "tool_use_id": "t1", "is_error": True,
             "content": "PreToolUse:Bash hook error: cms: preset plan denies Bash"}]}},
        _assistant("m2", {"input_tokens": 200, "output_tokens": 20},
                   {"type": "text", "text": "Done."}),
        {"type": "mystery"},
        {"type": "result", "subtype": "success", "total_cost_usd": 0.01, "num_turns": 2},
    )  # fmt: skip
    for line in framer.feed(stream[:37]) + framer.feed(stream[37:]) + framer.flush():
        event = parse_line(line)
        assert event is not None
        tally.add(event)
    assert tally.model == "claude-sonnet-4-5" and tally.session_id == "s-1"
    assert tally.api_calls == 2
    assert (tally.input_tokens, tally.output_tokens) == (300, 70)
    assert tally.denials == 1 and tally.unknown_events == 1
    assert tally.last_text == "Done." and tally.last_activity == "Done."
    assert tally.result is not None and tally.result["total_cost_usd"] == 0.01
    assert tally.saw_conversation
    expected = estimate_cost("claude-sonnet-4-5", {"input_tokens": 300, "output_tokens": 70})
    assert abs(tally.estimated_cost_usd - expected) < 1e-12


def test_a_subagents_messages_are_left_to_the_result() -> None:
    tally = TurnTally()
    event = _assistant("sub", {"input_tokens": 999, "output_tokens": 999})
    event["parent_tool_use_id"] = "t9"
    tally.add(event)
    assert tally.api_calls == 0 and tally.saw_conversation


def test_who_refused_a_call() -> None:
    assert denial("PreToolUse:Bash hook error: cms: no") == ("cms", "no")
    other = "PreToolUse:Bash hook error: other hook says no"
    assert denial(other) == ("a hook", "other hook says no")
    assert denial("Permission to use Bash has been denied.") == (
        "Claude Code", "Permission to use Bash has been denied.")  # fmt: skip
    assert denial("touch: x: Read-only file system", is_error=False) == (
        "the sandbox", "touch: x: Read-only file system")  # fmt: skip
    assert denial("all fine", is_error=False) is None
