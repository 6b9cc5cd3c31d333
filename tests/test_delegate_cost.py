"""A delegation's fixed cost: nothing slow stands between ``cms delegate`` and the start
of its claude, or between claude's end and the printed result (README, Performance;
``benchmarks/bench_delegate.py`` measures the whole).

Watched with ``strace`` on a real delegation (the real CLI, its sandbox, the stand-in
API): the supervisor writes its notes about the turn's processes (its pid, claude's,
the turn's temp folder) without an fsync before claude starts, and the CLI marks the
result read without one after the turn ended. The status changes stay durable.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cmsrun import CMS, Cms
from standin import StandIn, text

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")

TRACED = "trace=execve,fsync,fdatasync,fork,vfork,clone,clone3"
LINE = re.compile(r"^(\d+)\s+(.*)$")
NEW_PROCESS = re.compile(r"^(?:<\.\.\. )?(?:fork|vfork|clone3?)\b.*= (\d+)$")


def _traced_delegation(
    claude_env: dict[str, str], project: Path, trace: Path
) -> list[tuple[int, str]]:
    done = subprocess.run(
        ["strace", "-f", "-qq", "-e", TRACED, "-o", str(trace),
         *CMS, "delegate", "task T-COST", "--name", "cost"],
        cwd=project, env=claude_env, capture_output=True, text=True, timeout=180,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "completed" in done.stdout
    calls = []
    for raw in trace.read_text(errors="replace").splitlines():
        found = LINE.match(raw)
        if found:
            calls.append((int(found.group(1)), found.group(2)))
    return calls


def test_no_fsync_between_the_started_turn_and_its_claude_nor_after_its_end(
    claude_env: dict[str, str],
    standin: StandIn,
    project: Path,
    tmp_path: Path,
) -> None:
    standin.script("T-COST", [text("ok")])
    calls = _traced_delegation(claude_env, project, tmp_path / "trace")
    assert Cms(claude_env, project).show("cost")["status"] == "completed"
    parent = {}
    for pid, call in calls:
        made = NEW_PROCESS.match(call)
        if made:
            parent[int(made.group(1))] = pid
    starts = [
        i
        for i, (_pid, call) in enumerate(calls)
        if call.startswith("execve(") and "--session-id" in call and " = -1 " not in call
    ]
    assert starts, "the turn's claude was never started"
    first_claude = starts[0]
    supervisor = parent[calls[first_claude][0]]
    before = [c for pid, c in calls[:first_claude] if pid == supervisor and "fsync(" in c]
    assert before == [], f"the supervisor fsynced before claude started: {before}"
    # The supervisor's last write (the outcome) is durable; after it the CLI reads the
    # result and marks it read without another fsync.
    sup_fsyncs = [i for i, (pid, c) in enumerate(calls) if pid == supervisor and "fsync(" in c]
    assert sup_fsyncs, "the outcome was not written durably"
    after_outcome = [c for pid, c in calls[sup_fsyncs[-1] + 1 :] if "fsync(" in c]
    assert after_outcome == [], f"fsync after the outcome was written: {after_outcome}"
