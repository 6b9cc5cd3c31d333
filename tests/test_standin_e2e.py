"""End-to-end tests of the Messages API stand-in with the real, pinned Claude Code CLI.

Each test runs ``claude -p TASK --output-format stream-json --verbose`` in a fresh git
project against the stand-in and checks what happened on disk, what the CLI reported and
what the model was sent. A few tests at the end poke the stand-in directly over HTTP.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from standin import (
    Recorded,
    StandIn,
    ToolUse,
    drop,
    error,
    expected_cost,
    message,
    text,
    tool_use,
)

pytestmark = pytest.mark.timeout(240)

MODEL = "claude-sonnet-4-5"
RUN_TIMEOUT = 150.0


@dataclass
class ClaudeRun:
    """The outcome of one `claude -p` process."""

    returncode: int
    events: list[dict[str, Any]]
    stderr: str

    @property
    def result(self) -> dict[str, Any]:
        results = [e for e in self.events if e.get("type") == "result"]
        assert len(results) == 1, f"expected one result event, got {self.events!r}\n{self.stderr}"
        return results[0]


def claude_args(claude_env: dict[str, str], task: str, *extra: str) -> list[str]:
    return [
        claude_env["CMS_CLAUDE_BIN"],
        "-p",
        task,
        "--output-format",
        "stream-json",
        "--verbose",
        "--model",
        MODEL,
        *extra,
    ]


def parse_run(returncode: int, stdout: str, stderr: str) -> ClaudeRun:
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return ClaudeRun(returncode, events, stderr)


def run_claude(claude_env: dict[str, str], cwd: Path, task: str, *extra: str) -> ClaudeRun:
    proc = subprocess.run(
        claude_args(claude_env, task, *extra),
        cwd=cwd,
        env=claude_env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    return parse_run(proc.returncode, proc.stdout, proc.stderr)


def new_marker() -> str:
    return f"MK-{uuid.uuid4().hex[:12]}"


# --------------------------------------------------------------------------- with the CLI


def test_write_tool_creates_file_and_reports_cost(
    standin: StandIn, claude_env: dict[str, str], project: Path
) -> None:
    marker = new_marker()
    target = project / "hello.txt"
    replies = [
        message(
            "Writing it.",
            ToolUse("Write", {"file_path": str(target), "content": "hello\n"}),
            input_tokens=1200,
            output_tokens=80,
        ),
        text("Wrote hello.txt.", input_tokens=1500, output_tokens=40),
    ]
    standin.script(marker, replies)

    run = run_claude(claude_env, project, f"Create hello.txt. [{marker}]")

    assert target.read_text() == "hello\n"
    result = run.result
    assert run.returncode == 0, run.stderr
    assert result["subtype"] == "success"
    assert result["is_error"] is False
    assert result["result"] == "Wrote hello.txt."
    assert result["num_turns"] == 2
    assert result["permission_denials"] == []
    # sonnet-4-5: 2700 * $3/M + 120 * $15/M
    assert result["total_cost_usd"] == pytest.approx(expected_cost(MODEL, replies))
    assert result["total_cost_usd"] == pytest.approx(0.0099)
    assert set(result["modelUsage"]) == {MODEL}
    init = run.events[0]
    assert init["type"] == "system" and init["subtype"] == "init"
    assert init["model"] == MODEL
    assistant_models = {e["message"]["model"] for e in run.events if e["type"] == "assistant"}
    assert assistant_models == {MODEL}  # the stand-in echoes the requested model


def test_model_is_sent_the_tool_result(
    standin: StandIn, claude_env: dict[str, str], project: Path
) -> None:
    marker = new_marker()
    standin.script(
        marker,
        [
            tool_use("Bash", {"command": "echo from-the-shell-$((6*7))", "description": "Echo"}),
            text("The shell said 42."),
        ],
    )

    run = run_claude(claude_env, project, f"Run a command. {marker}")

    assert run.result["subtype"] == "success"
    first, second = standin.requests_for(marker)
    assert (first.turn, second.turn) == (0, 1)
    # The task is the last text block of the first user message, after <system-reminder>s.
    task_blocks = first.messages[0]["content"]
    assert task_blocks[-1]["type"] == "text"
    assert task_blocks[-1]["text"] == f"Run a command. {marker}"
    assert first.body["stream"] is True and first.body["model"] == MODEL
    assert {"Bash", "Edit", "Write", "Read"} <= {t["name"] for t in first.body["tools"]}
    assert first.path == "/v1/messages?beta=true"
    assert first.headers["anthropic-version"] == "2023-06-01"
    assert "claude-code-20250219" in first.headers["anthropic-beta"]
    assert "x-api-key" not in {h.lower() for h in first.headers}

    (tool_use_id,) = first.tool_use_ids
    (result_block,) = second.blocks("tool_result")
    assert result_block["tool_use_id"] == tool_use_id
    assert result_block.get("is_error") is not True
    assert "from-the-shell-42" in json.dumps(result_block["content"])
    assert [b["id"] for b in second.blocks("tool_use")] == [tool_use_id]
    assert [r.kind for r in standin.requests] == ["main", "main"]


def test_max_turns_ends_with_error_max_turns(
    standin: StandIn, claude_env: dict[str, str], project: Path
) -> None:
    marker = new_marker()
    standin.script(
        marker,
        [
            tool_use("Bash", {"command": "echo step-one"}),
            text("never reached"),
        ],
    )

    run = run_claude(claude_env, project, f"Two steps. {marker}", "--max-turns", "1")

    assert run.returncode == 1
    assert run.result["subtype"] == "error_max_turns"
    assert run.result["is_error"] is True
    assert len(standin.requests_for(marker)) == 1


@pytest.mark.parametrize(("status", "error_type"), [(500, "api_error"), (529, "overloaded_error")])
def test_http_error_gives_is_error_result(
    standin: StandIn, claude_env: dict[str, str], project: Path, status: int, error_type: str
) -> None:
    marker = new_marker()
    standin.script(marker, [error(status)])

    run = run_claude(claude_env, project, f"Fail please. {marker}")

    result = run.result
    assert run.returncode == 1
    assert result["is_error"] is True
    assert result["subtype"] == "success"  # the trap: trust is_error, not the subtype
    assert result["api_error_status"] == status
    assert str(status) in result["result"]
    assert result["total_cost_usd"] == 0
    (request,) = standin.requests_for(marker)  # CLAUDE_CODE_MAX_RETRIES=0: no retry
    assert request.reply is not None and request.reply.error_body is not None
    assert request.reply.error_body["error"]["type"] == error_type


def test_transient_error_is_retried_by_the_cli(
    standin: StandIn, claude_env: dict[str, str], project: Path
) -> None:
    marker = new_marker()
    standin.script(marker, [error(529, times=1), text("second try worked")])

    run = run_claude(claude_env | {"CLAUDE_CODE_MAX_RETRIES": "1"}, project, f"Retry. {marker}")

    assert run.result["is_error"] is False
    assert run.result["result"] == "second try worked"
    assert any(e.get("subtype") == "api_retry" for e in run.events)
    assert [r.turn for r in standin.requests_for(marker)] == [0, 0]


def test_dropped_stream_gives_is_error_result(
    standin: StandIn, claude_env: dict[str, str], project: Path
) -> None:
    marker = new_marker()
    standin.script(marker, [drop()])

    run = run_claude(claude_env, project, f"Drop it. {marker}")

    assert run.returncode == 1
    assert run.result["is_error"] is True
    assert "Connection" in run.result["result"]
    # The broken stream is re-asked once without streaming.
    assert [r.body["stream"] for r in standin.requests_for(marker)] == [True, False]


def test_parallel_processes_follow_their_own_scripts(
    standin: StandIn, claude_env: dict[str, str], project: Path
) -> None:
    markers = [new_marker() for _ in range(3)]
    for i, marker in enumerate(markers):
        write = {"file_path": str(project / f"out-{i}.txt"), "content": f"{marker}\n"}
        standin.script(
            marker,
            [
                tool_use("Write", write, delay=0.3),
                tool_use("Bash", {"command": f"echo {i} >> out-{i}.txt"}),
                text(f"finished {i}", input_tokens=100 * (i + 1)),
            ],
        )
    procs = [
        subprocess.Popen(
            claude_args(claude_env, f"Job {i}: {marker}"),
            cwd=project,
            env=claude_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for i, marker in enumerate(markers)
    ]
    runs: list[ClaudeRun] = []
    for proc in procs:
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
        runs.append(parse_run(proc.returncode, out, err))

    for i, (marker, run) in enumerate(zip(markers, runs, strict=True)):
        assert run.result["result"] == f"finished {i}", run.stderr
        assert run.result["modelUsage"][MODEL]["inputTokens"] == 100 + 100 + 100 * (i + 1)
        assert (project / f"out-{i}.txt").read_text() == f"{marker}\n{i}\n"
        assert [r.turn for r in standin.requests_for(marker)] == [0, 1, 2]
        session_ids = {
            json.loads(r.body["metadata"]["user_id"])["session_id"]
            for r in standin.requests_for(marker)
        }
        assert session_ids == {run.result["session_id"]}


def test_resume_continues_the_script(
    standin: StandIn, claude_env: dict[str, str], project: Path
) -> None:
    marker = new_marker()
    standin.script(marker, [text("first answer"), text("second answer")])

    first = run_claude(claude_env, project, f"Start. {marker}")
    session_id = first.result["session_id"]
    second = run_claude(claude_env, project, "Go on.", "--resume", session_id)

    assert first.result["result"] == "first answer"
    assert second.result["result"] == "second answer"
    assert second.result["session_id"] == session_id
    assert [r.turn for r in standin.requests_for(marker)] == [0, 1]


def test_unscripted_task_gets_the_default_reply(
    standin: StandIn, claude_env: dict[str, str], project: Path
) -> None:
    run = run_claude(claude_env, project, "No marker in here.")

    assert run.result["result"] == "done"
    assert [(r.kind, r.marker) for r in standin.requests] == [("main", None)]
    assert standin.unknown == []


def test_cli_killed_during_a_delayed_turn(
    standin: StandIn, claude_env: dict[str, str], project: Path
) -> None:
    marker = new_marker()
    standin.script(marker, [text("too late", delay=30)])
    proc = subprocess.Popen(
        claude_args(claude_env, f"Slow. {marker}"),
        cwd=project,
        env=claude_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        standin.wait_for(marker, timeout=RUN_TIMEOUT)
        assert proc.poll() is None  # the turn is in flight
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert '"type":"result"' not in out.replace(" ", "")


# --------------------------------------------------------------------------- stand-in only


def post(url: str, body: dict[str, Any], timeout: float = 10) -> tuple[int, str]:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"content-type": "application/json", "x-api-key": "k"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def request_body(
    task: str, *, assistant_turns: int = 0, stream: bool = False, tools: bool = True
) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<system-reminder>\ncontext\n</system-reminder>"},
                {"type": "text", "text": task},
            ],
        }
    ]
    for _ in range(assistant_turns):
        messages += [
            {"role": "assistant", "content": [{"type": "text", "text": "x"}]},
            {"role": "user", "content": "more"},
        ]
    body: dict[str, Any] = {
        "model": "claude-test-1",
        "max_tokens": 100,
        "stream": stream,
        "messages": messages,
    }
    if tools:
        body["tools"] = [{"name": "Bash", "input_schema": {"type": "object"}}]
    return body


def test_non_streaming_reply_and_turn_selection(standin: StandIn) -> None:
    standin.script("T1", [text("one"), tool_use("Read", {"file_path": "/x"}, 7, 3, id="toolu_1")])
    standin.script("T10", [text("ten")])
    url = standin.url + "/v1/messages"

    status, raw = post(url, request_body("task T1"))
    assert status == 200 and json.loads(raw)["content"] == [{"type": "text", "text": "one"}]
    reply = json.loads(post(url, request_body("task T1", assistant_turns=1))[1])
    assert reply["model"] == "claude-test-1"
    assert reply["stop_reason"] == "tool_use"
    assert reply["content"] == [
        {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "/x"}}
    ]
    assert reply["usage"]["input_tokens"] == 7 and reply["usage"]["output_tokens"] == 3

    def answer(body: dict[str, Any]) -> str:
        return str(json.loads(post(url, body)[1])["content"][0]["text"])

    assert answer(request_body("task T1", assistant_turns=2)) == "done"  # list exhausted
    assert answer(request_body("task T10")) == "ten"  # the longest marker wins
    # A tool-less side request mentioning the marker neither matches nor consumes it.
    assert answer(request_body("title for T10", tools=False)) == "done"
    assert [r.kind for r in standin.requests] == ["main"] * 4 + ["side"]
    assert all("x-api-key" not in r.headers for r in standin.requests)


def test_streaming_reply_events(standin: StandIn) -> None:
    standin.script("S1", [message("hi", ToolUse("Bash", {"command": "x" * 150}))])
    status, raw = post(standin.url + "/v1/messages?beta=true", request_body("S1", stream=True))
    events = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: ")]
    assert status == 200
    assert [e["type"] for e in events][:2] == ["message_start", "content_block_start"]
    assert events[-2]["delta"]["stop_reason"] == "tool_use" and events[-1]["type"] == "message_stop"
    partial = "".join(
        e["delta"].get("partial_json", "") for e in events if e["type"] == "content_block_delta"
    )
    assert json.loads(partial) == {"command": "x" * 150}


def test_count_tokens_and_unknown_paths(standin: StandIn) -> None:
    status, raw = post(standin.url + "/v1/messages/count_tokens", request_body("x"))
    assert status == 200 and json.loads(raw)["input_tokens"] > 0
    with urllib.request.urlopen(standin.url + "/v1/whatever", timeout=10) as resp:
        assert resp.status == 200
    status, raw = post(standin.url + "/v1/other", {})
    assert status == 404 and json.loads(raw)["error"]["type"] == "not_found_error"
    assert [r.path for r in standin.unknown] == ["/v1/whatever", "/v1/other"]


def test_error_body_shape(standin: StandIn) -> None:
    standin.script("E1", [error(529)])
    status, raw = post(standin.url + "/v1/messages", request_body("E1"))
    assert status == 529
    assert json.loads(raw) == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


def test_delay_ends_when_the_server_stops() -> None:
    server = StandIn().start()
    server.script("D1", [text("late", delay=30)])
    outcome: list[object] = []

    def ask() -> None:
        try:
            outcome.append(post(server.url + "/v1/messages", request_body("D1"), timeout=20))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=ask)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 3
    assert outcome and not (isinstance(outcome[0], tuple) and outcome[0][0] == 200)


def test_recorded_helpers() -> None:
    rec = Recorded("POST", "/v1/messages", {}, request_body("x", assistant_turns=1), "main", 0.0)
    assert [m["role"] for m in rec.messages] == ["user", "assistant", "user"]
    assert len(rec.blocks("text")) == 3
