"""End-to-end tests of the session engine: the real Claude Code CLI under cms's
supervisor, against the loopback stand-in. Each scenario reaches one status of
DESIGN.md and checks what a user would: the record, files on disk, what the model was
sent, the spend, and that no process of the turn is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cmsrun import CMS, Cms, processes_of_session, wait_gone
from standin import StandIn, error, expected_cost, text, tool_use

MODEL = "claude-sonnet-4-5"


def test_delegate_completes_and_records_cost(cms: Cms, standin: StandIn, project: Path) -> None:
    target = project / "hello.txt"
    script = [tool_use("Write", {"file_path": str(target), "content": "hi\n"}), text("Wrote it.")]
    standin.script("T-COMPLETE", script)
    out = cms.ok("delegate", "write hello T-COMPLETE", "--name", "hello", "--model", MODEL)
    assert out["status"] == "completed"
    assert out["response"] == "Wrote it."
    assert target.read_text() == "hi\n"
    assert out["cost_usd"] == pytest.approx(expected_cost(MODEL, script))
    assert out["turns"] == 2
    assert out["pid"] is None
    # The model was sent the task, then the tool result of its Write.
    sent = standin.requests_for("T-COMPLETE")
    assert len(sent) == 2
    assert any(b.get("type") == "tool_result" for b in sent[1].blocks("tool_result"))
    # The raw events are in the log.
    logs = list((Path(cms.env["CMS_HOME"])).glob("projects/*/logs/hello.jsonl"))
    assert logs and '"type":"result"' in logs[0].read_text().replace(" ", "")
    # Human output of result.
    shown = cms.run("result", "hello")
    assert shown.code == 0 and "Wrote it." in shown.stdout


def test_api_error_fails_with_the_cli_error(cms: Cms, standin: StandIn) -> None:
    standin.script("T-FAIL", [error(500)])
    result = cms.run("--json", "delegate", "fail please T-FAIL", "--name", "broken")
    assert result.code == 1
    out = result.json()
    assert out["status"] == "failed"
    assert "500" in out["error"] or "API" in out["error"]


def test_turns_exceeded(cms: Cms, standin: StandIn, project: Path) -> None:
    standin.script(
        "T-TURNS",
        [tool_use("Read", {"file_path": str(project / "README.md")}), text("never")],
    )
    result = cms.run("--json", "delegate", "read T-TURNS", "--name", "short", "--max-turns", "1")
    assert result.code == 1
    out = result.json()
    assert out["status"] == "turns_exceeded"
    assert out["turns"] == 1
    # No more turns without raising the budget ...
    again = cms.run("send", "short", "go on")
    assert again.code == 2 and "--add-turns" in again.stderr
    # ... and the correction loop raises it and runs.
    out = cms.ok("continue", "short", "finish T-TURNS", "--add-turns", "5")
    assert out["status"] == "completed"
    assert out["max_turns"] == 6


def test_continue_on_an_uncapped_session_still_sends_the_correction(
    cms: Cms, standin: StandIn
) -> None:
    # A script (or a parent model) that always passes --add-cost must not lose its
    # correction to a session that has no cost cap: it is sent, the session stays
    # uncapped, and the notice says so.
    standin.script("T-UNCAPPED", [text("first try"), text("fixed it"), text("fixed again")])
    out = cms.ok("delegate", "do it T-UNCAPPED", "--name", "free")
    assert out["status"] == "completed" and out["max_cost_usd"] is None
    done = cms.run("--json", "continue", "free", "fix it", "--add-cost", "1")
    assert done.code == 0, done.stderr
    out = done.json()
    assert out["status"] == "completed" and out["response"] == "fixed it"
    assert out["max_cost_usd"] is None and out["max_turns"] is None
    assert "no cost limit" in out["notice"] and "uncapped" in out["notice"]
    assert "cms: note:" in done.stderr and "no cost limit" in done.stderr
    assert "fix it" in json.dumps(standin.requests_for("T-UNCAPPED")[1].body)
    # Both options on a session with neither cap: one note, the correction sent.
    done = cms.run("continue", "free", "and again", "--add-cost", "1", "--add-turns", "2")
    assert done.code == 0, done.stderr
    assert "no cost or turn limit" in done.stderr and "fixed again" in done.stdout
    record = cms.show("free")
    assert record["max_cost_usd"] is None and record["max_turns"] is None
    assert record["notice"] is None  # the note belongs to that command, not the record


def test_cost_cap_overshoots_by_at_most_one_call(cms: Cms, standin: StandIn, project: Path) -> None:
    # Each call costs 20k input tokens * $3/M = $0.06 (+ output); the cap is $0.10.
    call = {"input_tokens": 20_000, "output_tokens": 10}
    readme = str(project / "README.md")
    script = [tool_use("Read", {"file_path": readme}, **call) for _ in range(6)] + [text("x")]
    standin.script("T-COST", script)
    result = cms.run(
        "--json", "delegate", "spend T-COST", "--name", "spender", "--max-cost", "0.10",
        "--model", MODEL,
    )  # fmt: skip
    assert result.code == 1
    out = result.json()
    assert out["status"] == "cost_exceeded"
    one_call = expected_cost(MODEL, script[:1])
    assert 0.10 <= out["cost_usd"] <= 0.10 + one_call + 1e-9
    refused = cms.run("send", "spender", "more")
    assert refused.code == 2 and "--add-cost" in refused.stderr


def test_timeout_stops_the_turn_and_leaves_no_process(cms: Cms, standin: StandIn) -> None:
    standin.script("T-SLOW", [text("too late", delay=60)])
    started = time.monotonic()
    result = cms.run("--json", "delegate", "slow T-SLOW", "--name", "slow", "--timeout", "3")
    assert time.monotonic() - started < 30
    assert result.code == 1
    out = result.json()
    assert out["status"] == "timed_out"
    assert "timeout" in out["error"]
    assert wait_gone(lambda: processes_of_session("slow")) == []


def test_abort_kills_the_whole_tree(cms: Cms, standin: StandIn, project: Path) -> None:
    # The child runs a long shell command: abort must stop claude and that command.
    marker = project / "still-running"
    # (Claude Code refuses a bare `sleep N && ...`, so sleep inside python.)
    command = f"python3 -c 'import time; time.sleep(60)'; touch {marker}"
    standin.script("T-ABORT", [tool_use("Bash", {"command": command}), text("done")])
    started = cms.ok("delegate", "sleep T-ABORT", "--name", "sleeper", "--background")
    assert started["status"] == "running"
    cms.wait_field("sleeper", "child_pid")
    # Wait for the sleep to be running under claude.
    deadline = time.monotonic() + 30
    while len(processes_of_session("sleeper")) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    out = cms.ok("abort", "sleeper")
    assert out["status"] == "aborted"
    assert wait_gone(lambda: processes_of_session("sleeper")) == []
    assert not marker.exists()
    assert cms.show("sleeper")["status"] == "aborted"
    # A second abort says it is not running.
    again = cms.run("abort", "sleeper")
    assert again.code == 2


def test_killed_supervisor_gives_interrupted_then_resume_completes(
    cms: Cms, standin: StandIn
) -> None:
    # First turn: the first call answers quickly, the second hangs long.
    standin.script(
        "T-INT",
        [tool_use("Bash", {"command": "echo step1"}), text("late", delay=60), text("resumed ok")],
    )
    cms.ok("delegate", "work T-INT", "--name", "victim", "--background")
    record = cms.wait_field("victim", "has_conversation")
    deadline = time.monotonic() + 30
    while len(standin.requests_for("T-INT")) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    os.kill(record["pid"], signal.SIGKILL)
    out = cms.wait_status("victim", {"interrupted"}, timeout=10)
    assert out["status"] == "interrupted"
    assert wait_gone(lambda: processes_of_session("victim")) == []
    listed = cms.ok("list")
    assert [r["status"] for r in listed if r["name"] == "victim"] == ["interrupted"]
    # send is refused; resume continues the same conversation.
    refused = cms.run("send", "victim", "hello")
    assert refused.code == 2 and "resume" in refused.stderr
    out = cms.ok("resume", "victim")
    assert out["status"] == "completed", out
    assert out["response"] == "resumed ok"


def test_resume_without_saved_conversation_offers_fresh_start(cms: Cms, standin: StandIn) -> None:
    standin.script("T-EARLY", [text("slow", delay=60)])
    cms.ok("delegate", "early T-EARLY", "--name", "early", "--background")
    record = cms.wait_field("early", "child_pid")
    os.kill(record["pid"], signal.SIGKILL)
    os.kill(record["child_pid"], signal.SIGKILL)
    # Whether Claude Code had written its transcript yet is a race: take it away, as if
    # the turn had been killed before Claude Code saved anything.
    home = Path(cms.env["HOME"])
    for transcript in home.glob(f".claude/projects/*/{record['session_id']}.jsonl"):
        transcript.unlink()
    cms.wait_status("early", {"interrupted"}, timeout=10)
    # Finding it interrupted, cms stopped what the dead turn left (the sandbox's proxy
    # outlives a killed claude).
    assert wait_gone(lambda: processes_of_session("early")) == []
    assert cms.show("early")["has_conversation"] is False
    refused = cms.run("resume", "early")
    assert refused.code == 2
    assert "--fresh" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    # The offered way out: start over from the task in a new conversation.
    standin.script("T-EARLY", [text("fresh ok")])
    out = cms.ok("resume", "early", "--fresh")
    assert out["status"] == "completed" and out["response"] == "fresh ok"
    assert out["session_id"] != record["session_id"]


def test_send_continues_the_conversation_and_fork_branches(cms: Cms, standin: StandIn) -> None:
    standin.script("T-CONV", [text("first answer"), text("second answer"), text("fork answer")])
    cms.ok("delegate", "start T-CONV", "--name", "talk")
    out = cms.ok("send", "talk", "and now the second thing")
    assert out["response"] == "second answer"
    assert out["exchanges"] == 2
    sent = standin.requests_for("T-CONV")
    assert len(sent) == 2
    history = str(sent[1].body["messages"])
    assert "first answer" in history and "and now the second thing" in history
    # fork: a new session from talk's conversation.
    fork = cms.ok("fork", "talk", "talk-b", "try another way")
    assert fork["status"] == "completed"
    assert fork["session_id"] != cms.show("talk")["session_id"]
    history = str(standin.requests_for("T-CONV")[-1].body["messages"])
    assert "second answer" in history and "try another way" in history
    # The source is untouched by the fork.
    assert cms.show("talk")["exchanges"] == 2


def test_send_refused_while_running(cms: Cms, standin: StandIn) -> None:
    standin.script("T-BUSY", [text("slow", delay=30)])
    cms.ok("delegate", "busy T-BUSY", "--name", "busy", "--background")
    refused = cms.run("send", "busy", "hello")
    assert refused.code == 2 and "running" in refused.stderr
    cms.ok("abort", "busy")


def test_finish_and_resume(cms: Cms, standin: StandIn) -> None:
    standin.script("T-FIN", [text("one"), text("two")])
    cms.ok("delegate", "fin T-FIN", "--name", "fin")
    out = cms.ok("finish", "fin")
    assert out["status"] == "finished"
    refused = cms.run("send", "fin", "more")
    assert refused.code == 2 and "resume" in refused.stderr
    out = cms.ok("resume", "fin", "reopen T-FIN")
    assert out["status"] == "completed" and out["response"] == "two"


def test_parallel_background_delegations_and_wait(cms: Cms, standin: StandIn) -> None:
    scripts = {}
    for i in range(3):
        marker = f"T-PAR{i}"
        # Slow enough that all three still run when `wait` starts, on a loaded machine too.
        scripts[marker] = [text(f"answer {i}", input_tokens=1000 * (i + 1), delay=8)]
        standin.script(marker, scripts[marker])
        started = cms.ok(
            "delegate", f"job {marker}", "--name", f"par{i}", "--background", "--model", MODEL
        )
        assert started["status"] in ("running", "queued")
    records = cms.ok("wait")
    assert sorted(r["name"] for r in records) == ["par0", "par1", "par2"]
    assert all(r["status"] == "completed" for r in records)
    total = cms.ok("cost")["total_cost_usd"]
    assert total == pytest.approx(sum(r["cost_usd"] for r in records))
    assert total == pytest.approx(sum(expected_cost(MODEL, s) for s in scripts.values()))


def test_parallel_limit_queues_then_runs(cms: Cms, standin: StandIn) -> None:
    cms.ok("budget", "--max-parallel", "1")
    standin.script("T-Q1", [text("q1 done", delay=2)])
    standin.script("T-Q2", [text("q2 done")])
    first = cms.ok("delegate", "one T-Q1", "--name", "q1", "--background")
    second = cms.ok("delegate", "two T-Q2", "--name", "q2", "--background")
    assert first["status"] == "running"
    assert second["status"] == "queued"
    assert cms.run("send", "q2", "x").code == 2
    records = cms.ok("wait", "q1", "q2")
    assert [r["status"] for r in records] == ["completed", "completed"]
    q1, q2 = records
    assert q2["response"] == "q2 done"
    # q2 started only after q1 ended.
    assert q2["turn_started_at"] >= q1["ended_at"]


@pytest.mark.parametrize("command", ["show", "result"])
def test_reading_a_queued_session_starts_it_when_its_slot_freed_unnoticed(
    cms: Cms, standin: StandIn, command: str
) -> None:
    # The running session's supervisor dies without running the queue: nothing else
    # is left to notice the free slot; reading the queued session does, as a listing would.
    cms.ok("budget", "--max-parallel", "1")
    standin.script("T-HOLD", [text("never", delay=120)])
    standin.script("T-NEXT", [text("next done")])
    cms.ok("delegate", "hold T-HOLD", "--name", "hold", "--background")
    assert cms.ok("delegate", "next T-NEXT", "--name", "next", "--background")["status"] == "queued"
    record = cms.wait_field("hold", "child_pid")
    for pid in (record["pid"], record["child_pid"]):
        os.kill(pid, signal.SIGKILL)
    read = cms.run("--json", command, "next")
    assert read.json()["status"] in ("running", "completed"), read.stdout
    [done] = cms.ok("wait", "next", timeout=120)
    assert done["status"] == "completed" and done["response"] == "next done"
    assert len(standin.requests_for("T-NEXT")) == 1


def test_background_holds_no_pipe(cms: Cms, standin: StandIn) -> None:
    """`$(cms delegate --background ...)` returns while the turn still runs."""
    standin.script("T-BG", [text("later", delay=90)])
    started = time.monotonic()
    done = subprocess.run(  # noqa: UP022 - pipes on purpose: they must not be held
        [*CMS, "delegate", "bg T-BG", "--name", "bg", "--background"],
        cwd=cms.cwd,
        env=cms.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=60,
    )
    assert time.monotonic() - started < 45  # a turn's answer takes 90 s
    assert done.returncode == 0 and b"bg" in done.stdout
    assert cms.show("bg")["status"] == "running"
    cms.ok("abort", "bg")


def test_depth_limit(cms: Cms, project: Path) -> None:
    # The depth comes from the starting session's record, never from CMS_DEPTH.
    cms.ok("spawn", "nested-parent")
    from cms import ops

    store = ops.open_project(project, cms.env).store
    store.update("nested-parent", lambda r: setattr(r, "depth", 2))
    for depth in ("2", "0"):
        env = {"CMS_SESSION": "nested-parent", "CMS_DEPTH": depth}
        refused = cms.run("delegate", "nested", "--name", "deep", env=env)
        assert refused.code == 2 and "depth" in refused.stderr
    assert cms.run("show", "deep").code == 2


def test_child_gets_its_name_and_depth(cms: Cms, standin: StandIn, project: Path) -> None:
    out_file = project / "env.txt"
    command = f'echo "$CMS_SESSION $CMS_DEPTH" > {out_file}'
    standin.script("T-ENV", [tool_use("Bash", {"command": command}), text("ok")])
    cms.ok("delegate", "env T-ENV", "--name", "envy")
    assert out_file.read_text().split() == ["envy", "1"]
