"""One way to put text on one line (cms.base.vocab.one_line), used by every message,
table cell and log line that shortens text."""

from __future__ import annotations

from cms.base.vocab import one_line
from cms.engine.streamjson import describe_tool_call
from cms.policy.decide import snippet
from cms.ui.watch import short


def test_whitespace_runs_become_one_space_and_long_text_ends_in_the_mark() -> None:
    assert one_line("  a\n\tb   c ", 10) == "a b c"
    assert one_line("abcdefghij", 10) == "abcdefghij"
    assert one_line("abcdefghijk", 10) == "abcdefghi…"
    assert one_line("abcdefghijk", 10, "...") == "abcdefg..."
    assert one_line(None, 5) == ""
    assert one_line("abc", 1) == "a"
    assert one_line("abc", 0) == ""


def test_the_callers_shorten_alike() -> None:
    text = "word " * 40
    assert short(text, 20) == one_line(text, 20)
    assert snippet(text) == one_line(text, 80, "...") and len(snippet(text)) == 80
    assert describe_tool_call("Bash", {"command": text}) == one_line(f"Bash: {text}", 160)
