"""The MCP server a child gets: the handshake from the cache, the real server on the
first tool call, and the cache made by the first run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from cms.ui import mcp_lazy

REPO = Path(__file__).resolve().parent.parent
HANDSHAKE = [
    {"jsonrpc": "2.0", "id": 0, "method": "initialize",
     "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "test", "version": "1"}}},
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
]  # fmt: skip


def talk(messages: list[dict[str, Any]], env: dict[str, str]) -> list[dict[str, Any]]:
    """Send ``messages`` as a client would (stdin open), read an answer to each request."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cms.ui.mcp_lazy"], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, env={**env, "PYTHONPATH": str(REPO)}, text=True,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    answers = []
    try:
        for message in messages:
            proc.stdin.write(json.dumps(message) + "\n")
            proc.stdin.flush()
            if "id" in message:
                answers.append(json.loads(proc.stdout.readline()))
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
    return answers


def test_first_run_asks_the_real_server_and_caches_its_answers(
    claude_env: dict[str, str], project: Path, cms_home: Path
) -> None:
    env = {**claude_env, "CMS_PROJECT": str(project)}
    answers = talk(HANDSHAKE, env)
    tools = {t["name"] for t in answers[1]["result"]["tools"]}
    assert {"delegate_task", "wait_sessions", "list_sessions"} <= tools
    cache = mcp_lazy._cache_file(env)
    assert cache.exists() and cache.is_relative_to(cms_home)
    assert {t["name"] for t in json.loads(cache.read_text())["tools/list"]["tools"]} == tools


def test_the_handshake_comes_from_the_cache_and_a_call_from_the_real_server(
    claude_env: dict[str, str], project: Path
) -> None:
    env = {**claude_env, "CMS_PROJECT": str(project)}
    cache = mcp_lazy._cache_file(env)
    cache.parent.mkdir(parents=True)
    real = talk(HANDSHAKE, {**env, "CMS_HOME": str(cache.parent / "elsewhere")})
    # A cache that names one tool only: answered from it, the real server not asked.
    marked = {"initialize": real[0]["result"], "tools/list": {"tools": [
        {**real[1]["result"]["tools"][0], "description": "FROM THE CACHE"}]}}  # fmt: skip
    cache.write_text(json.dumps(marked))
    answers = talk(HANDSHAKE, env)
    assert answers[1]["result"]["tools"][0]["description"] == "FROM THE CACHE"
    assert answers[0]["result"] == real[0]["result"]
    # A tool call starts the real server, which gets the handshake replayed.
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "list_sessions", "arguments": {}}}  # fmt: skip
    answers = talk([*HANDSHAKE, call], env)
    [result] = [a for a in answers if a.get("id") == 7]
    assert result["result"]["structuredContent"] == {"sessions": [], "problems": []}
