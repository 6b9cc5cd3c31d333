"""The MCP server (``cms mcp``): driven over stdio by the ``mcp`` SDK's own client, and
called as a plugin tool by the real Claude Code CLI, both against the loopback stand-in.

The children are real ``claude -p`` processes started by the server through the same
core API as the CLI; what the tools return is checked against what ``cms`` prints.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

import anyio
import pytest
from cmsrun import Cms
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.types import CallToolResult, TextContent
from standin import StandIn, text, tool_use

from cms.hooks import spend

pytestmark = pytest.mark.timeout(240)

REPO_ROOT = Path(__file__).resolve().parent.parent
TOOL_PREFIX = "mcp__plugin_cms_cms__"
TOOLS = {
    "spawn_session", "send_message", "delegate_task", "continue_task", "finish_task",
    "abort_task", "list_sessions", "get_session", "resume_session", "fork_session",
    "delete_session", "wait_sessions", "get_cost",
}  # fmt: skip
SESSION_ARGS = {
    "task", "name", "preset", "model", "max_cost_usd", "max_turns", "timeout_s", "cwd",
    "worktree", "background", "wait_s",
}  # fmt: skip


@asynccontextmanager
async def connect(env: dict[str, str], cwd: Path, errlog: IO[str]) -> AsyncIterator[ClientSession]:
    """`cms mcp` started as Claude Code would: a subprocess speaking MCP on stdio."""
    server = StdioServerParameters(
        command=sys.executable, args=["-m", "cms.ui.cli", "mcp"], env=env, cwd=cwd
    )
    async with (
        stdio_client(server, errlog=errlog) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def run_scenario(
    env: dict[str, str],
    cwd: Path,
    tmp_path: Path,
    scenario: Callable[[ClientSession], Awaitable[None]],
) -> None:
    """Run ``scenario`` against a fresh server; show the server's stderr if it fails."""

    async def main() -> None:
        async with connect(env, cwd, errlog) as session:
            await scenario(session)

    log_path = tmp_path / "mcp-server.log"
    with open(log_path, "w") as errlog:
        try:
            anyio.run(main)
        except BaseException:
            sys.stderr.write(f"--- cms mcp stderr ---\n{log_path.read_text()}\n")
            raise


def _text_of(result: CallToolResult) -> str:
    assert result.content and isinstance(result.content[0], TextContent), result
    return result.content[0].text


async def call(session: ClientSession, tool: str, **args: Any) -> dict[str, Any]:
    """Call a tool that must succeed; its text and structured content must agree."""
    result = await session.call_tool(tool, args)
    assert not result.is_error, f"{tool}({args}) failed: {_text_of(result)}"
    assert result.structured_content is not None
    assert json.loads(_text_of(result)) in (
        result.structured_content,
        result.structured_content.get("sessions"),
    )
    return result.structured_content


async def call_error(session: ClientSession, tool: str, **args: Any) -> str:
    """Call a tool that must fail; return the tool error's message."""
    result = await session.call_tool(tool, args)
    assert result.is_error, f"{tool}({args}) should have failed: {result}"
    return _text_of(result)


def cli_error(cms: Cms, *args: str) -> str:
    """The one-line error of a refused `cms` command, without its prefix."""
    done = cms.run(*args)
    assert done.code == 2, done
    line = done.stderr.strip()
    assert "\n" not in line and line.startswith("cms: error: "), line
    return line.removeprefix("cms: error: ")


# -- the SDK client over stdio ----------------------------------------------------------


def test_tools_over_stdio(
    claude_env: dict[str, str], standin: StandIn, project: Path, tmp_path: Path
) -> None:
    standin.script("M-WORK", [text("first answer"), text("second answer")])
    standin.script("M-SLOW", [text("slow answer", delay=3)])
    standin.script("M-STUCK", [text("never", delay=60)])
    standin.script("M-IDLE", [text("idle one"), text("idle two")])
    cms = Cms(claude_env, project)

    async def scenario(s: ClientSession) -> None:
        # The tools, each described and typed.
        tools = {t.name: t for t in (await s.list_tools()).tools}
        assert set(tools) == TOOLS
        for tool in tools.values():
            assert tool.description and len(tool.description) > 80, tool.name
            assert tool.input_schema["type"] == "object"
            assert tool.output_schema is not None, tool.name
        delegate = tools["delegate_task"].input_schema
        assert set(delegate["properties"]) >= SESSION_ARGS and delegate["required"] == ["task"]
        assert delegate["properties"]["wait_s"]["default"] < 120
        assert delegate["properties"]["max_turns"]["anyOf"][0]["type"] == "integer"
        assert set(tools["continue_task"].input_schema["properties"]) >= {
            "name", "message", "add_cost_usd", "add_turns",
        }  # fmt: skip
        assert tools["wait_sessions"].input_schema["properties"]["names"]
        assert {"source", "name"} <= set(tools["fork_session"].input_schema["required"])

        # delegate blocks until the outcome: status and response in one call.
        out = await call(
            s, "delegate_task", task="do the work M-WORK", name="worker", preset="read-only",
            max_turns=5,
        )  # fmt: skip
        assert out["status"] == "completed" and out["response"] == "first answer"
        assert out == cms.show("worker") | {"updated_at": out["updated_at"]}
        # continue: raise the budget, run the next turn in the same conversation.
        # The worker has no cost cap: add_cost_usd raises nothing, the correction is
        # still sent, and the notice says so.
        out = await call(
            s, "continue_task", name="worker", message="again", add_turns=2, add_cost_usd=1
        )
        assert out["status"] == "completed" and out["response"] == "second answer"
        assert out["max_turns"] == 7 and out["max_cost_usd"] is None
        assert "no cost limit" in out["notice"]

        # background returns at once; a wait that runs out returns running, not an error.
        out = await call(s, "delegate_task", task="slowly M-SLOW", name="slow", background=True)
        assert out["status"] == "running"
        [early] = (await call(s, "wait_sessions", names=["slow"], wait_s=0.5))["sessions"]
        assert early["status"] == "running"
        # The server answers other calls while one blocks in a wait.
        waited: dict[str, Any] = {}
        async with anyio.create_task_group() as tg:

            async def wait_slow() -> None:
                waited.update(await call(s, "wait_sessions", names=["slow"]))

            tg.start_soon(wait_slow)
            await anyio.sleep(0.3)
            started = time.monotonic()
            listing = await call(s, "list_sessions", status="running")
            assert time.monotonic() - started < 2.0 and not waited
            assert [r["name"] for r in listing["sessions"]] == ["slow"]
        [slow] = waited["sessions"]
        assert slow["status"] == "completed" and slow["response"] == "slow answer"

        # delegate's own wait runs out: running; abort stops it.
        out = await call(s, "delegate_task", task="hang M-STUCK", name="stuck", wait_s=1)
        assert out["status"] == "running" and out["pid"]
        out = await call(s, "abort_task", name="stuck")
        assert out["status"] == "aborted" and out["pid"] is None

        # spawn idle, send, fork, finish, resume.
        out = await call(s, "spawn_session", name="idle", preset="plan")
        assert out["status"] == "completed" and out["response"] is None
        out = await call(s, "send_message", name="idle", message="hello M-IDLE")
        assert out["response"] == "idle one"
        out = await call(s, "fork_session", source="idle", name="idle-b", message="other way")
        assert out["status"] == "completed" and out["response"] == "idle two"
        assert (await call(s, "finish_task", name="idle"))["status"] == "finished"
        out = await call(s, "resume_session", name="idle", message="back again")
        assert out["status"] == "completed" and out["response"] == "idle two"

        # list, cost, delete.
        listing = await call(s, "list_sessions")
        statuses = {r["name"]: r["status"] for r in listing["sessions"]}
        assert statuses == {
            "worker": "completed", "slow": "completed", "stuck": "aborted",
            "idle": "completed", "idle-b": "completed",
        }  # fmt: skip
        assert statuses == {r["name"]: r["status"] for r in cms.ok("list")}
        cost = await call(s, "get_cost", by="session")
        assert cost == cms.ok("cost", "--by", "session")
        assert cost["total_cost_usd"] > 0
        out = await call(s, "delete_session", name="stuck")
        assert out["deleted"] is True and out["name"] == "stuck"
        names = {r["name"] for r in (await call(s, "list_sessions"))["sessions"]}
        assert names == {"worker", "slow", "idle", "idle-b"}
        gone = await call_error(s, "get_session", name="stuck")
        assert gone == cli_error(cms, "show", "stuck")

    run_scenario(claude_env, project, tmp_path, scenario)


def test_get_cost_groups_by_subagent_type_as_the_cli_does(
    claude_env: dict[str, str], project: Path, fake_home: Path, tmp_path: Path
) -> None:
    # Your own session and its Explore subagent, as Claude Code keeps their transcripts.
    folder = spend.claude_folder(project, {"HOME": str(fake_home)})
    subagents = folder / "abcdef0123456789" / "subagents"
    subagents.mkdir(parents=True)

    def spent(msg_id: str, tokens: int) -> str:
        usage = {"input_tokens": tokens, "output_tokens": 0}
        message = {"id": msg_id, "model": "claude-opus-5-5", "role": "assistant",
                   "content": [], "usage": usage}  # fmt: skip
        stamp = "2026-12-06T12:00:00.000Z"
        return json.dumps({"type": "assistant", "timestamp": stamp, "message": message}) + "\n"

    (folder / "abcdef0123456789.jsonl").write_text(spent("m1", 1_000_000))  # $4
    (subagents / "agent-a1.jsonl").write_text(spent("m2", 500_000))  # $2
    (subagents / "agent-a1.meta.json").write_text(json.dumps({"agentType": "Explore"}))
    cms = Cms(claude_env, project)

    async def scenario(s: ClientSession) -> None:
        tools = {t.name: t for t in (await s.list_tools()).tools}
        assert "agent" in tools["get_cost"].input_schema["properties"]["by"]["enum"]
        cost = await call(s, "get_cost", by="agent")
        assert cost == cms.ok("cost", "--by", "agent")
        assert {row["key"]: row["cost_usd"] for row in cost["rows"]}["Explore"] == 2.0

    run_scenario(claude_env, project, tmp_path, scenario)


def test_bad_arguments_are_tool_errors_and_the_server_keeps_serving(
    claude_env: dict[str, str], standin: StandIn, project: Path, tmp_path: Path
) -> None:
    standin.script("M-OK", [text("fine")])
    cms = Cms(claude_env, project)

    async def scenario(s: ClientSession) -> None:
        # Each refusal is a tool error with the CLI's own one-line message.
        unknown = await call_error(s, "get_session", name="nope")
        assert unknown == cli_error(cms, "show", "nope")
        assert "nope" in unknown
        assert await call_error(s, "wait_sessions", names=["nope"]) == unknown
        assert await call_error(s, "abort_task", name="nope") == cli_error(cms, "abort", "nope")
        negative = await call_error(s, "delegate_task", task="x", max_cost_usd=-1)
        assert negative == cli_error(cms, "delegate", "x", "--max-cost", "-1")
        assert "--max-cost" in negative
        bad_name = await call_error(s, "delegate_task", task="x", name="Bad Name!")
        assert bad_name == cli_error(cms, "delegate", "x", "--name", "Bad Name!")
        assert "invalid session name" in bad_name
        preset = await call_error(s, "delegate_task", task="x", preset="yolo")
        assert preset == cli_error(cms, "delegate", "x", "--preset", "yolo")
        turns = await call_error(s, "spawn_session", name="t", max_turns=0)
        assert turns == cli_error(cms, "spawn", "t", "--max-turns", "0")
        # Arguments of the wrong type are refused by the schema, also as a tool error.
        assert "wait_s" in await call_error(s, "wait_sessions", wait_s=-5)
        assert "task" in await call_error(s, "delegate_task", name="no-task")
        # Nothing was created by a refused call, and the server still works.
        assert (await call(s, "list_sessions"))["sessions"] == []
        out = await call(s, "delegate_task", task="now properly M-OK", name="ok")
        assert out["status"] == "completed" and out["response"] == "fine"
        empty = await call_error(s, "send_message", name="ok", message="  ")
        assert empty == cli_error(cms, "send", "ok", "  ")

    run_scenario(claude_env, project, tmp_path, scenario)


# -- the real Claude Code CLI with the plugin loaded ------------------------------------


def test_parent_claude_delegates_through_the_plugin_tool(
    claude_env: dict[str, str], standin: StandIn, project: Path, fake_home: Path
) -> None:
    tool = TOOL_PREFIX + "delegate_task"
    # `claude -p` asks before running an MCP tool; the user's settings allow this one.
    settings_path = fake_home / ".claude" / "settings.json"
    settings = json.loads(settings_path.read_text())
    settings["permissions"]["allow"].append(tool)
    settings_path.write_text(json.dumps(settings))
    standin.script(
        "M-PARENT",
        [
            tool_use(tool, {"task": "child work M-CHILD", "name": "kid", "preset": "read-only"}),
            text("parent done"),
        ],
    )
    standin.script("M-CHILD", [text("child result")])
    # No setup and no CMS_PYTHON: scripts/cms-run (the plugin's MCP command) finds the
    # python3 on PATH that has cms's dependencies (as after `pip install`) by itself.
    env = {k: v for k, v in claude_env.items() if k != "CMS_PYTHON"}
    argv = [
        claude_env["CMS_CLAUDE_BIN"], "-p", "delegate this M-PARENT",
        "--output-format", "stream-json", "--verbose", "--plugin-dir", str(REPO_ROOT),
    ]  # fmt: skip
    done = subprocess.run(
        argv, cwd=project, env=env, capture_output=True, text=True, timeout=90,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    [init] = [e for e in events if e.get("type") == "system" and e.get("subtype") == "init"]
    assert {TOOL_PREFIX + name for name in TOOLS} <= set(init["tools"])
    assert {"name": "plugin:cms:cms", "status": "connected"}.items() <= next(
        s for s in init["mcp_servers"] if s["name"] == "plugin:cms:cms"
    ).items()

    # The child ran, as a cms session of the project, and completed.
    assert len(standin.requests_for("M-CHILD")) == 1
    kid = Cms(claude_env, project).show("kid")
    assert kid["status"] == "completed" and kid["response"] == "child result"
    assert kid["preset"] == "read-only" and kid["cwd"] == str(project.resolve())

    # The parent model was offered the tool (by name: Claude Code defers MCP tools'
    # schemas to its ToolSearch tool) and got the child's session back as its result.
    first, second = standin.requests_for("M-PARENT")
    assert tool in json.dumps(first.body)
    # Connected before the first turn, yet the schemas stay deferred (not in `tools`).
    offered = {t.get("name") for t in first.body.get("tools", [])}
    assert not {name for name in offered if str(name).startswith(TOOL_PREFIX)}, offered
    [result] = second.blocks("tool_result")
    assert result.get("is_error") is not True
    content = result["content"]
    content = content if isinstance(content, str) else "".join(c["text"] for c in content)
    returned = json.loads(content)
    assert returned["name"] == "kid" and returned["status"] == "completed"
    assert returned["response"] == "child result"
    [final] = [e for e in events if e.get("type") == "result"]
    assert final["result"] == "parent done"
    assert kid["parent_session_id"] == final["session_id"]


# -- in-process: progress notes and a cancelled call ------------------------------------


def test_waiting_call_reports_progress_and_cancel_leaves_the_server_serving(
    claude_env: dict[str, str],
    standin: StandIn,
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mcp import Client

    from cms.ui import mcp_server

    for key, value in claude_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(project)
    monkeypatch.setattr(mcp_server, "PROGRESS_EVERY_S", 0.2)
    standin.script("M-LONG", [text("too late", delay=60)])
    notes: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        notes.append((progress, total, message))

    async def main() -> None:
        async with Client(mcp_server.build_server()) as client:
            with anyio.move_on_after(2.0) as scope:
                args = {"task": "long M-LONG", "name": "long", "wait_s": 30}
                await client.call_tool("delegate_task", args, progress_callback=on_progress)
            assert scope.cancelled_caught
            # The call was abandoned, not the session or the server.
            result = await client.call_tool("get_session", {"name": "long"})
            assert not result.is_error and result.structured_content
            assert result.structured_content["status"] == "running"
            result = await client.call_tool("abort_task", {"name": "long"})
            assert result.structured_content and result.structured_content["status"] == "aborted"

    anyio.run(main)
    assert notes, "no progress notification while waiting"
    progress, total, message = notes[-1]
    assert 0 < progress < 30 and total == 30
    assert message and message.startswith("long: running")
