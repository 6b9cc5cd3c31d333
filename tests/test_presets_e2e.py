"""Presets and budgets enforced on the real CLI, checked on disk.

The user's ~/.claude/settings.json (conftest) allows Write, Edit and Bash everywhere,
so Claude Code's own permission system lets every action through: whatever a preset
stops, the cms flags and the cms PreToolUse hook stopped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cmsrun import Cms, git, tool_results
from standin import StandIn, text, tool_use

NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "id": "c1",
            "metadata": {},
            "source": ["print('original')"],
            "outputs": [],
            "execution_count": None,
        }
    ],
    "metadata": {},
    "nbformat": 4,
    "nbformat_minor": 5,
}


@dataclass
class Scene:
    project: Path
    outside: Path
    remote: Path


@pytest.fixture
def scene(project: Path, tmp_path: Path) -> Scene:
    outside = tmp_path / "outside"
    outside.mkdir()
    (project / "link").symlink_to(outside)
    (project / "nb.ipynb").write_text(json.dumps(NOTEBOOK))
    git(project, "add", "-A")
    git(project, "commit", "-qm", "notebook and link")
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git(project, "remote", "add", "origin", str(remote))
    return Scene(project, outside, remote)


def attempts(scene: Scene) -> list:  # type: ignore[type-arg]
    p = scene.project
    return [
        tool_use("Read", {"file_path": str(p / "README.md")}),
        tool_use("Write", {"file_path": str(p / "written.txt"), "content": "w\n"}),
        tool_use(
            "Edit",
            {
                "file_path": str(p / "README.md"),
                "old_string": "# Test project",
                "new_string": "# Edited by the child",
            },
        ),
        tool_use("Read", {"file_path": str(p / "nb.ipynb")}),
        tool_use(
            "NotebookEdit",
            {
                "notebook_path": str(p / "nb.ipynb"),
                "cell_id": "c1",
                "new_source": "print('edited')",
                "edit_mode": "replace",
            },
        ),
        tool_use("Bash", {"command": "echo redirected > bash.txt"}),
        tool_use("Bash", {"command": "git add -A && git commit -qm 'child commit'"}),
        tool_use("Bash", {"command": "git push -q origin HEAD:main"}),
        tool_use("Write", {"file_path": str(p / "link" / "escape.txt"), "content": "out\n"}),
        tool_use("Bash", {"command": "git log --oneline -1"}),
        text("tried everything"),
    ]


def outcome(scene: Scene) -> dict[str, bool]:
    p = scene.project
    pushed = subprocess.run(
        ["git", "--git-dir", str(scene.remote), "rev-parse", "-q", "--verify", "refs/heads/main"],
        capture_output=True,
    )
    return {
        "write": (p / "written.txt").exists(),
        "edit": "Edited by the child" in (p / "README.md").read_text(),
        "notebook": "edited" in (p / "nb.ipynb").read_text(),
        "bash_redirect": (p / "bash.txt").exists(),
        "git_commit": "child commit" in git(p, "log", "--format=%s"),
        "git_push": pushed.returncode == 0,
        "symlink_escape": (scene.outside / "escape.txt").exists(),
    }


NOTHING = dict.fromkeys(
    ("write", "edit", "notebook", "bash_redirect", "git_commit", "git_push", "symlink_escape"),
    False,
)
EXPECTED = {
    "read-only": NOTHING,
    "review": NOTHING,
    "plan": NOTHING,
    "edit": {
        **NOTHING,
        "write": True,
        "edit": True,
        "notebook": True,
        "bash_redirect": True,
        "git_commit": True,
    },
}


@pytest.mark.parametrize("preset", ["read-only", "review", "plan", "edit"])
def test_preset_table_on_disk(
    preset: str, scene: Scene, claude_env: dict[str, str], standin: StandIn
) -> None:
    cms = Cms(claude_env, scene.project)
    marker = f"T-PRESET-{preset.upper()}"
    standin.script(marker, attempts(scene))
    result = cms.run("--json", "delegate", f"try everything {marker}", "--name", "p",
                     "--preset", preset, timeout=180)  # fmt: skip
    record = json.loads(result.stdout)
    assert record["status"] in ("completed", "failed"), record
    assert outcome(scene) == EXPECTED[preset]
    results = tool_results(cms, "p")
    # Reads always work: the first tool call read README.md.
    assert results and not results[0][0] and "Test project" in results[0][1]
    # Every action the preset stops was refused with a reason the model read.
    denied = [t for is_error, t in results if is_error]
    assert denied, "nothing was denied"
    if preset == "edit":
        # The CLI's flags allow Write and Bash here: the hook stopped push and escape.
        hook_denials = [t for t in denied if "cms: preset edit denies" in t]
        assert len(hook_denials) == 2, denied


def test_full_preset_as_root_is_refused_in_one_line(
    claude_env: dict[str, str], project: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root is refused bypassPermissions")
    cms = Cms(claude_env, project)
    result = cms.run("delegate", "anything", "--name", "full", "--preset", "full")
    assert result.code == 3
    assert "root" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert cms.run("show", "full").code == 2


def stop_outside_its_lock(pid: int, record: Path) -> None:
    """SIGSTOP the supervisor at a moment it does not hold the record's lock (it takes
    it a few times a second to write the live figures)."""
    from filelock import FileLock, Timeout

    for _ in range(100):
        os.kill(pid, signal.SIGSTOP)
        try:
            with FileLock(str(record) + ".lock", timeout=0.2):
                return
        except Timeout:
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.01)
    raise AssertionError("the supervisor never let go of its record's lock")


def test_aborted_session_next_tool_call_is_denied(
    claude_env: dict[str, str], standin: StandIn, project: Path
) -> None:
    """Between `cms abort` marking the record and the kill, the hook already denies.

    The supervisor is stopped (SIGSTOP) so that it cannot kill the turn; the record
    is marked aborted; the child's next tool call must be refused by the hook.
    """
    cms = Cms(claude_env, project)
    target = project / "after-abort.txt"
    standin.script(
        "T-ABORTED",
        [
            tool_use("Bash", {"command": "python3 -c 'import time; time.sleep(2)'"}),
            tool_use("Write", {"file_path": str(target), "content": "should not exist\n"}),
            text("finished"),
        ],
    )
    cms.ok("delegate", "work T-ABORTED", "--name", "ab", "--background")
    record = cms.wait_field("ab", "child_pid")
    deadline = time.monotonic() + 20
    while len(standin.requests_for("T-ABORTED")) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    from cms import ops as api

    project_api = api.open_project(project, claude_env)
    stop_outside_its_lock(record["pid"], project_api.paths.session_file("ab"))
    try:
        project_api.store.update("ab", lambda r: setattr(r, "abort_requested", True))
        # Let claude run its next tool call and end the turn.
        deadline = time.monotonic() + 30
        while len(standin.requests_for("T-ABORTED")) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        os.kill(record["pid"], signal.SIGCONT)
    final = cms.wait_status("ab", {"aborted", "completed", "failed"})
    assert final["status"] == "aborted"
    assert not target.exists()
    denials = [t for is_error, t in tool_results(cms, "ab") if is_error]
    assert any("abort" in t for t in denials), denials


def test_a_queued_session_does_not_start_once_the_project_cap_is_spent(
    claude_env: dict[str, str], standin: StandIn, project: Path
) -> None:
    cms = Cms(claude_env, project)
    cms.ok("budget", "--max-cost", "0.05", "--max-parallel", "1")
    # The first spends past the cap in one slow call; the second waits for its slot.
    standin.script("T-FIRST", [text("spent", input_tokens=20_000, delay=3)])
    standin.script("T-QUEUED", [text("should never be asked")])
    cms.ok("delegate", "first T-FIRST", "--name", "first", "--background",
           "--model", "claude-sonnet-4-5")  # fmt: skip
    queued = cms.ok("delegate", "queued T-QUEUED", "--name", "queued", "--background")
    assert queued["status"] == "queued"
    done = cms.run("--json", "wait", "first", "queued", timeout=60)
    first, second = sorted(json.loads(done.stdout), key=lambda r: r["name"])
    assert first["status"] == "cost_exceeded" and first["cost_usd"] >= 0.05
    assert second["status"] == "cost_exceeded", second
    assert "before this turn started" in second["error"] and second["cost_usd"] == 0
    assert standin.requests_for("T-QUEUED") == []  # its claude never ran


def test_project_cap_stops_a_second_session(
    claude_env: dict[str, str], standin: StandIn, project: Path
) -> None:
    cms = Cms(claude_env, project)
    cms.ok("budget", "--max-cost", "0.05")
    # The first session spends past the project cap in one call ($0.06).
    standin.script("T-SPENDER", [text("spent", input_tokens=20_000)])
    # The second runs first and is slow to its first call (then it would write): the
    # cap, spent meanwhile by the first, stops it while it waits, however slow the
    # machine is to start the first.
    target = project / "second.txt"
    standin.script(
        "T-SECOND",
        [
            tool_use("Write", {"file_path": str(target), "content": "x\n"}, delay=40),
            text("wrote"),
        ],
    )
    cms.ok("delegate", "second T-SECOND", "--name", "second", "--background",
           "--model", "claude-sonnet-4-5")  # fmt: skip
    spent = cms.run("--json", "delegate", "spend T-SPENDER", "--name", "spender",
                    "--model", "claude-sonnet-4-5")  # fmt: skip
    first = json.loads(spent.stdout)
    # Its own turn ran with --max-budget-usd = what was left of the project's cap.
    assert first["status"] == "cost_exceeded" and first["cost_usd"] >= 0.05
    done = cms.run("--json", "wait", "second", timeout=60)
    assert done.code == 1
    [second] = json.loads(done.stdout)
    assert second["status"] == "cost_exceeded"
    assert "project" in (second["error"] or "")
    assert not target.exists()
    # And nothing new starts while the cap is spent.
    refused = cms.run("delegate", "third", "--name", "third")
    assert refused.code == 2 and "cap" in refused.stderr
    assert cms.run("show", "third").code == 2
