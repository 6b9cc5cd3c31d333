"""The cms MCP server as Claude Code first meets it (cms.ui.mcp_lazy): the handshake
from the answers that ship with cms or that this machine's server gave, the real
server started on the first tool call, and never before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from cms.ui import mcp_lazy

REPO = Path(__file__).resolve().parent.parent
CLIENT = {"name": "test", "version": "1"}
OLD_HANDSHAKE = [
    {"jsonrpc": "2.0", "id": 0, "method": "initialize",
     "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": CLIENT}},
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
]  # fmt: skip


def meta(version: str = "2026-07-28") -> dict[str, Any]:
    return {"_meta": {"io.modelcontextprotocol/protocolVersion": version,
                      "io.modelcontextprotocol/clientInfo": CLIENT,
                      "io.modelcontextprotocol/clientCapabilities": {}}}  # fmt: skip


#: What Claude Code 2.1.332 sends first (recorded from it): stateless, no initialize.
STATELESS_HANDSHAKE = [
    {"jsonrpc": "2.0", "id": "server-discover-probe-1", "method": "server/discover",
     "params": meta()},
    {"jsonrpc": "2.0", "id": "listen:0", "method": "subscriptions/listen",
     "params": {**meta(), "notifications": mcp_lazy.LISTEN_FILTER}},
    {"jsonrpc": "2.0", "id": 0, "method": "server/discover", "params": meta()},
    {"jsonrpc": "2.0", "id": 1, "method": "prompts/list", "params": meta()},
    {"jsonrpc": "2.0", "id": 2, "method": "resources/list", "params": meta()},
    {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": meta()},
]  # fmt: skip


def call(number: int, tool: str, version: str | None = "2026-07-28") -> dict[str, Any]:
    params: dict[str, Any] = {"name": tool, "arguments": {}}
    if version:
        params |= meta(version)
    return {"jsonrpc": "2.0", "id": number, "method": "tools/call", "params": params}


class Talk:
    """A client of ``python -m cms.ui.mcp_lazy``: sends requests, reads their answers,
    and keeps the notifications it meets."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cms.ui.mcp_lazy"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, env={**env, "PYTHONPATH": str(REPO)}, text=True,
        )  # fmt: skip
        self.notes: list[dict[str, Any]] = []

    def send(self, messages: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
        """Each message in turn; the answer to each request (not to a listen, which
        stays open), by id."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        answers = {}
        for message in messages:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
            if "id" not in message or message["method"] == mcp_lazy.LISTEN:
                continue
            while message["id"] not in answers:
                line = json.loads(self.proc.stdout.readline())
                if "id" in line and "method" not in line:
                    answers[line["id"]] = line
                else:
                    self.notes.append(line)
        return answers

    def children(self) -> list[int]:
        """The processes the stand-in started (the real server, once it runs)."""
        found = []
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            found += [int(p) for p in (task / "children").read_text().split()]
        return found

    def close(self) -> list[dict[str, Any]]:
        """Close stdin; whatever else the server said before it ended."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        rest = [json.loads(line) for line in self.proc.stdout if line.strip()]
        assert self.proc.wait(timeout=60) == 0
        return rest


def acknowledgements(notes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [n for n in notes if n.get("method") == mcp_lazy.ACKNOWLEDGED]


def test_the_shipped_answers_are_what_the_real_server_answers(claude_env: dict[str, str]) -> None:
    shipped = mcp_lazy._load(mcp_lazy.SHIPPED, mcp_lazy.source_key())
    assert shipped, (
        f"{mcp_lazy.SHIPPED} was made for another cms: the tools changed. Make it again "
        "with `python -m cms.ui.mcp_lazy --write-handshake`"
    )
    versions = mcp_lazy.PROTOCOL_VERSIONS + mcp_lazy.STATELESS_VERSIONS
    assert sorted(shipped) == sorted(versions)
    assert (mcp_lazy.SHIPPED.stat().st_mode & 0o777) == 0o644
    for version in versions:
        real = mcp_lazy.real_answers(version, claude_env)
        assert sorted(shipped[version]) == sorted(real), version

        # What a client acts on is the same (not the wording of a schema's titles).
        def tools(answers: dict[str, Any]) -> list[tuple[Any, ...]]:
            return [
                (t["name"], t["description"], t["inputSchema"].get("properties"),
                 t["inputSchema"].get("required"), t.get("annotations"), t.get("_meta"))
                for t in answers["tools/list"]["tools"]
            ]  # fmt: skip

        assert tools(shipped[version]) == tools(real), version
        for opening in ("initialize", "server/discover"):
            if opening in real:
                for part in ("capabilities", "instructions", "protocolVersion"):
                    assert shipped[version][opening].get(part) == real[opening].get(part)
        if mcp_lazy.LISTEN in real:
            assert shipped[version][mcp_lazy.LISTEN] == real[mcp_lazy.LISTEN]


def test_claude_codes_handshake_is_answered_without_the_real_server_then_a_call_starts_it(
    claude_env: dict[str, str], project: Path, cms_home: Path
) -> None:
    """A first session on a machine (no cache): answered from the shipped answers."""
    env = {**claude_env, "CMS_PROJECT": str(project)}
    shipped = mcp_lazy._load(mcp_lazy.SHIPPED, mcp_lazy.source_key())["2026-07-28"]
    client = Talk(env)
    answers = client.send(STATELESS_HANDSHAKE)
    assert answers[3]["result"] == shipped["tools/list"]
    assert answers[0]["result"] == answers["server-discover-probe-1"]["result"]
    assert answers[0]["result"] == shipped["server/discover"]
    [ack] = acknowledgements(client.notes)
    assert ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "listen:0"
    assert client.children() == [], "the real server started for the handshake"

    # A tool call starts the real server, which answers it; the listen it was handed
    # is acknowledged once only (by the stand-in, above).
    answers = client.send([call(7, "list_sessions")])
    assert answers[7]["result"]["structuredContent"] == {"sessions": [], "problems": []}
    assert len(client.children()) == 1
    rest = client.close()
    assert len(acknowledgements(client.notes + rest)) == 1
    assert not (cms_home / "cache").exists()  # known answers: nothing to keep


def test_the_initialize_handshake_is_answered_then_replayed_to_the_real_server(
    claude_env: dict[str, str], project: Path
) -> None:
    env = {**claude_env, "CMS_PROJECT": str(project)}
    client = Talk(env)
    answers = client.send(OLD_HANDSHAKE)
    assert answers[0]["result"]["protocolVersion"] == "2025-06-18"
    assert {"delegate_task", "wait_sessions"} <= {t["name"] for t in answers[1]["result"]["tools"]}
    assert client.children() == []
    answers = client.send([call(7, "list_sessions", version=None)])
    assert answers[7]["result"]["structuredContent"] == {"sessions": [], "problems": []}
    client.close()


def test_another_version_asks_the_real_server_and_keeps_its_answers_which_win_next_time(
    claude_env: dict[str, str], project: Path
) -> None:
    env = {**claude_env, "CMS_PROJECT": str(project)}
    unknown = "2024-10-07"  # not shipped: the real server negotiates it
    hello = {**OLD_HANDSHAKE[0], "params": {**OLD_HANDSHAKE[0]["params"],
                                            "protocolVersion": unknown}}  # fmt: skip
    client = Talk(env)
    answers = client.send([hello, *OLD_HANDSHAKE[1:]])
    assert len(client.children()) == 1  # asked the real server
    client.close()
    tools = {t["name"] for t in answers[1]["result"]["tools"]}
    assert {"delegate_task", "list_sessions"} <= tools
    cache = mcp_lazy._cache_file(env)
    kept = mcp_lazy._load(cache, mcp_lazy.source_key())
    assert list(kept) == [unknown]
    assert {t["name"] for t in kept[unknown]["tools/list"]["tools"]} == tools

    # Next time it answers from what it kept (marked here), and the kept answers win
    # over the shipped ones for a version both hold.
    marked = {"tools": [{**answers[1]["result"]["tools"][0], "description": "KEPT"}]}
    kept[unknown]["tools/list"] = marked
    kept["2026-07-28"] = {**kept[unknown], "server/discover": {"marked": True}}
    cache.write_text(mcp_lazy._dump(mcp_lazy.source_key(), kept))
    client = Talk(env)
    answers = client.send([hello, *OLD_HANDSHAKE[1:]])
    assert answers[1]["result"] == marked
    answers = client.send([STATELESS_HANDSHAKE[0]])
    assert answers["server-discover-probe-1"]["result"] == {"marked": True}
    assert client.children() == []
    client.close()

    # Answers made for another cms (another key) are never used.
    cache.write_text(mcp_lazy._dump("another-cms", kept))
    client = Talk(env)
    answers = client.send([hello, *OLD_HANDSHAKE[1:]])
    assert answers[1]["result"] != marked
    client.close()


def test_the_plugin_and_children_start_this_stand_in() -> None:
    manifest = json.loads((REPO / ".claude-plugin" / "plugin.json").read_text())
    assert manifest["mcpServers"]["cms"]["args"] == ["--module", "cms.ui.mcp_lazy"]
    assert os.access(REPO / "scripts" / "cms-run", os.X_OK)
