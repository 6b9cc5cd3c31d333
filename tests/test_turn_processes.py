"""No process outlives its turn, under the real sandbox: claude, its tool commands and
Claude Code's ``socat`` bridges are gone after claude is killed with SIGKILL mid-turn,
and after the supervisor is, even when no cms command reads the record afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from cmsrun import Cms, processes_of_session, wait_gone
from standin import StandIn, text, tool_use

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None or shutil.which("socat") is None,
    reason="Claude Code's sandbox needs bubblewrap (bwrap) and socat",
)

SLEEPER = "python3 -c 'import time; time.sleep(120)'"


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _bridges(name: str) -> list[int]:
    return [p for p in processes_of_session(name) if _command(p).startswith("socat ")]


def _turn_running(cms: Cms, standin: StandIn, name: str, marker: str) -> dict[str, object]:
    """Start an edit session whose Bash call sleeps; return its record once the
    sandboxed command and the sandbox's bridges run."""
    standin.script(marker, [tool_use("Bash", {"command": SLEEPER}), text("never")])
    cms.ok("delegate", f"sleep {marker}", "--name", name, "--preset", "edit", "--background")
    record = cms.wait_field(name, "child_pid")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        mine = processes_of_session(name)
        if _bridges(name) and any("time.sleep(120)" in _command(p) for p in mine):
            return record
        time.sleep(0.2)
    raise AssertionError("the sandboxed command and its bridges never ran")


def _left(name: str) -> str:
    return "\n".join(f"{p}: {_command(p)[:120]}" for p in processes_of_session(name))


def test_sigkill_of_claude_under_the_sandbox_leaves_nothing(
    claude_env: dict[str, str], standin: StandIn, project: Path
) -> None:
    cms = Cms(claude_env, project)
    record = _turn_running(cms, standin, "killed-claude", "T-KILL-CLAUDE")
    os.kill(int(str(record["child_pid"])), signal.SIGKILL)
    out = cms.wait_status("killed-claude", {"failed"}, timeout=60)
    assert "SIGKILL" in str(out["error"])
    assert wait_gone(lambda: processes_of_session("killed-claude"), 15) == [], _left(
        "killed-claude"
    )


def test_sigkill_of_the_supervisor_leaves_nothing_without_a_reader(
    claude_env: dict[str, str], standin: StandIn, project: Path
) -> None:
    cms = Cms(claude_env, project)
    record = _turn_running(cms, standin, "killed-sup", "T-KILL-SUP")
    os.kill(int(str(record["pid"])), signal.SIGKILL)
    # No cms command reads the record: the turn's own reaper stops what it started.
    assert wait_gone(lambda: processes_of_session("killed-sup"), 20) == [], _left("killed-sup")
    assert cms.show("killed-sup")["status"] == "interrupted"
