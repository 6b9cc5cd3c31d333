"""The plugin inside the real Claude Code CLI: manifest, commands, hooks, the guide.

The parent is a real `claude -p` with the plugin loaded (`--plugin-dir`, or installed
from the marketplace into a throwaway HOME); the stand-in scripts both the parent and
the children it delegates to.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cmsrun import Cms, copy_tracked_files
from cmsrun import claude_p as run_claude_p
from standin import StandIn, first_user_text, text, tool_use

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(claude_env: dict[str, str]) -> dict[str, str]:
    # The plugin's scripts pick this interpreter (it has cms's dependencies).
    return {**claude_env, "CMS_PYTHON": sys.executable}


def claude_p(
    claude_bin: Path, prompt: str, env: dict[str, str], cwd: Path, *, plugin_dir: Path | None = REPO
) -> list[dict[str, Any]]:
    """``claude -p`` with this repository loaded as a plugin (``plugin_dir=None``: not)."""
    return run_claude_p(claude_bin, prompt, env, cwd, plugin_dir=plugin_dir, timeout=180)


def all_text(request: Any) -> str:
    return json.dumps(request.body)


def test_manifest_hooks_and_commands_are_well_formed(claude_bin: Path, tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    for target in (REPO, REPO / ".claude-plugin" / "plugin.json"):
        done = subprocess.run(
            [str(claude_bin), "plugin", "validate", "--strict", str(target)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Validation passed" in done.stdout
    manifest = json.loads((REPO / ".claude-plugin" / "plugin.json").read_text())
    for key in ("name", "version", "description", "author", "homepage", "license"):
        assert manifest.get(key), key
    hooks = json.loads((REPO / "hooks" / "hooks.json").read_text())["hooks"]
    assert {"PreToolUse", "Stop", "SessionStart"} <= set(hooks)
    for entries in hooks.values():
        for entry in entries:
            for hook in entry["hooks"]:
                assert hook["type"] == "command"
                assert "${CLAUDE_PLUGIN_ROOT}/scripts/cms-hook" in hook["command"]
    assert (REPO / "scripts" / "cms-hook").stat().st_mode & 0o111
    for name in ("delegate", "sessions", "send", "result", "abort", "fork", "cost"):
        command = (REPO / "commands" / f"{name}.md").read_text()
        assert command.startswith("---\n")
        front = command.split("---\n")[1]
        fields = dict(line.split(": ", 1) for line in front.strip().splitlines())
        assert fields.get("description")
        if name not in ("sessions", "cost"):
            assert fields.get("argument-hint")
            # No shell ever sees the user's words.
            assert "!`" not in command


def test_delegate_command_returns_at_once_and_the_parent_waits_in_a_tool_call(
    claude_bin: Path, standin: StandIn, env: dict[str, str], project: Path
) -> None:
    # The child works for most of a minute; the hook only starts it. The parent model
    # (scripted) then waits the way the context tells it: the launcher's `wait` in Bash.
    standin.script("KID-DELEGATE", [text("the child found three modules", delay=45)])
    wait = f"{REPO / 'scripts' / 'cms-run'} wait kid --timeout 100"
    standin.script(
        "<command-name>/cms:delegate</command-name>",
        [tool_use("Bash", {"command": wait, "description": "Wait for kid"}), text("Relayed.")],
    )
    prompt = (
        "/cms:delegate --preset read-only --max-cost 0.5 --name kid list the modules KID-DELEGATE"
    )
    argv = [str(claude_bin), "-p", prompt, "--output-format", "stream-json", "--verbose",
            "--plugin-dir", str(REPO)]  # fmt: skip
    started = time.monotonic()
    parent = subprocess.Popen(
        argv, cwd=project, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        [first] = standin.wait_for("<command-name>/cms:delegate</command-name>", timeout=120)
        answered_s = time.monotonic() - started
        # The hook returned while the child still works: the model's first request came.
        assert Cms(env, project).show("kid")["status"] == "running"
        assert answered_s < 40, f"the hook held the prompt for {answered_s:.0f} s"
        out, err = parent.communicate(timeout=240)
    finally:
        if parent.poll() is None:
            parent.kill()
    told = all_text(first)
    assert "cms delegate: session kid is running" in told and "cms-run" in told
    assert "wait kid --timeout 100" in told and "the child found three modules" not in told
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert events and events[-1]["type"] == "result", err[-2000:]
    assert events[-1]["result"] == "Relayed."
    # After its wait, the parent's next request holds the child's result.
    second = standin.requests_for("<command-name>/cms:delegate</command-name>")[1]
    [result] = second.blocks("tool_result")
    assert "the child found three modules" in json.dumps(result)
    kid = Cms(env, project).show("kid")
    assert kid["status"] == "completed"
    assert kid["preset"] == "read-only" and kid["max_cost_usd"] == 0.5
    assert kid["task"] == "list the modules KID-DELEGATE"
    assert kid["parent_session_id"] == events[-1]["session_id"]


def test_hostile_text_reaches_the_child_verbatim_and_runs_nowhere(
    claude_bin: Path, standin: StandIn, env: dict[str, str], project: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    hostile = (
        f"say hi \"double\" 'single' $(touch {marker}-1) `touch {marker}-2` ; "
        f"touch {marker}-3 && echo $HOME\nsecond line | tee {marker}-4 KID-HOSTILE"
    )
    standin.script("KID-HOSTILE", [text("hi")])
    standin.script("<command-name>/cms:delegate</command-name>", [text("ok")])
    claude_p(claude_bin, f"/cms:delegate --name hostile {hostile}", env, project)
    assert not list(tmp_path.glob("pwned*")), "a shell ran the user's words"
    [record] = Cms(env, project).ok("wait", "hostile")
    assert record["task"] == hostile
    assert record["status"] == "completed"
    child = standin.requests_for("KID-HOSTILE")[0]
    assert hostile in first_user_text(child.body)


def test_continue_command_on_an_uncapped_session_sends_the_correction(
    claude_bin: Path, standin: StandIn, env: dict[str, str], project: Path
) -> None:
    cms = Cms(env, project)
    standin.script("KID-FREE", [text("first try"), text("corrected")])
    cms.ok("delegate", "work KID-FREE", "--name", "free")
    standin.script("<command-name>/cms:continue</command-name>", [text("ok")])
    claude_p(claude_bin, "/cms:continue --add-cost 1 free fix it", env, project)
    [out] = cms.ok("wait", "free")
    assert out["status"] == "completed" and out["response"] == "corrected"
    assert out["max_cost_usd"] is None
    told = all_text(standin.requests_for("<command-name>/cms:continue</command-name>")[0])
    assert "Note: session 'free' has no cost limit" in told


def test_sessions_command_puts_the_sessions_in_front_of_the_model(
    claude_bin: Path, standin: StandIn, env: dict[str, str], project: Path
) -> None:
    cms = Cms(env, project)
    standin.script("KID-LISTED", [text("done")])
    cms.ok("delegate", "a listed task KID-LISTED", "--name", "listed-one")
    standin.script("<command-name>/cms:sessions</command-name>", [text("I see them.")])
    claude_p(claude_bin, "/cms:sessions", env, project)
    sent = all_text(standin.requests_for("<command-name>/cms:sessions</command-name>")[0])
    assert "listed-one" in sent and "completed" in sent


def test_new_parent_is_told_about_an_interrupted_session_and_gets_the_guide(
    claude_bin: Path, standin: StandIn, env: dict[str, str], project: Path
) -> None:
    cms = Cms(env, project)
    standin.script("KID-INT", [text("slow", delay=60)])
    cms.ok("delegate", "long job KID-INT", "--name", "broken-off", "--background")
    record = cms.wait_field("broken-off", "child_pid")
    subprocess.run(["kill", "-9", str(record["pid"]), str(record["child_pid"])], check=True)
    cms.wait_status("broken-off", {"interrupted"})
    standin.script("PARENT-RECOVERY", [text("noted")])
    claude_p(claude_bin, "hello PARENT-RECOVERY", env, project)
    sent = all_text(standin.requests_for("PARENT-RECOVERY")[0])
    assert "broken-off (interrupted)" in sent
    assert "cms resume" in sent
    assert "Delegating with cms" in sent  # the strategy guide reached the model


def test_no_recovery_note_without_sessions(
    claude_bin: Path, standin: StandIn, env: dict[str, str], project: Path
) -> None:
    standin.script("PARENT-QUIET", [text("hi")])
    claude_p(claude_bin, "hello PARENT-QUIET", env, project)
    sent = all_text(standin.requests_for("PARENT-QUIET")[0])
    assert "cms sessions of this project" not in sent


def test_stop_is_held_once_while_a_background_child_runs(
    claude_bin: Path, standin: StandIn, env: dict[str, str], project: Path
) -> None:
    # The child answers after 120 s: the parent's run ends long before (a loaded machine
    # may take a while to run it), and the child is still running when it has.
    standin.script("KID-BG", [text("late", delay=120)])
    standin.script(
        "<command-name>/cms:delegate</command-name>",
        [text("Started it."), text("Still stopping.")],
    )
    started = time.monotonic()
    events = claude_p(
        claude_bin, "/cms:delegate --background --name bg-kid wait for me KID-BG", env, project
    )
    assert time.monotonic() - started < 100
    assert events[-1]["type"] == "result"
    assert Cms(env, project).show("bg-kid")["status"] == "running"
    parent = standin.requests_for("<command-name>/cms:delegate</command-name>")
    assert len(parent) == 2, "the stop was not held exactly once"
    held = all_text(parent[1])
    assert "still running" in held and "bg-kid" in held
    Cms(env, project).ok("abort", "bg-kid")


def test_a_parent_that_started_nothing_is_not_held(
    claude_bin: Path, standin: StandIn, env: dict[str, str], project: Path
) -> None:
    cms = Cms(env, project)
    standin.script("KID-OTHER", [text("x", delay=30)])
    cms.ok("delegate", "someone else's KID-OTHER", "--name", "other", "--background")
    standin.script("PARENT-FREE", [text("bye")])
    claude_p(claude_bin, "hello PARENT-FREE", env, project)
    assert len(standin.requests_for("PARENT-FREE")) == 1
    cms.ok("abort", "other")


def test_marketplace_install_loads_the_plugin(
    claude_bin: Path, env: dict[str, str], standin: StandIn, project: Path, tmp_path: Path
) -> None:
    # A clean copy of the repository's tracked files, as a user's clone would be.
    clone = copy_tracked_files(tmp_path / "clone")
    for argv in (
        ["plugin", "marketplace", "add", str(clone)],
        ["plugin", "install", "cms@cms-marketplace"],
    ):
        done = subprocess.run(
            [str(claude_bin), *argv], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
    standin.script("PARENT-MARKET", [text("hi")])
    events = claude_p(claude_bin, "hello PARENT-MARKET", env, project, plugin_dir=None)
    init = next(e for e in events if e.get("subtype") == "init")
    assert "cms:delegate" in init["slash_commands"]
    assert "cms:sessions" in init["slash_commands"]


# -- the hook script's shell paths (scripts/cms-hook, no Claude Code) ----------------------

CMS_HOOK = REPO / "scripts" / "cms-hook"


def _hook(event: str, payload: dict[str, Any], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [str(CMS_HOOK), event], input=json.dumps(payload), env=env, cwd=cwd,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def _counting_python(folder: Path) -> Path:
    """python3/python on PATH that count their starts, then run this interpreter."""
    folder.mkdir(parents=True, exist_ok=True)
    starts = folder / "starts"
    for name in ("python3", "python"):
        (folder / name).write_text(
            f'#!/bin/sh\necho start >> {starts}\nexec {sys.executable} "$@"\n'
        )
        (folder / name).chmod(0o755)
    return starts


def test_session_start_and_stop_start_no_python_when_there_is_nothing_to_say(
    claude_env: dict[str, str], project: Path, tmp_path: Path, cms_home: Path
) -> None:
    from cms.base.paths import ProjectPaths
    from cms.engine.models import SessionRecord, Status
    from cms.engine.store import Store
    from cms.hooks import parent

    starts = _counting_python(tmp_path / "bin")
    env = {k: v for k, v in claude_env.items() if k != "CMS_PYTHON"}
    env.update(PATH=f"{tmp_path / 'bin'}:/usr/bin:/bin", CLAUDE_PLUGIN_DATA=str(tmp_path / "data"))
    sub = project / "src"
    sub.mkdir()
    start_event = {"session_id": "parent-1", "cwd": str(sub), "source": "startup"}
    stop_event = {"session_id": "parent-1", "cwd": str(sub), "stop_hook_active": False}
    guide = parent.guide_only({}, {})
    assert "Delegating with cms" in guide
    # The first start makes the guide once (and finds a Python); then no Python at all.
    assert _hook("session-start", start_event, env, sub).strip() == guide
    before = starts.read_text().count("start")
    for _ in range(2):
        assert _hook("session-start", start_event, env, sub).strip() == guide
        assert _hook("stop", stop_event, env, sub) == ""
    assert starts.read_text().count("start") == before, "a Python was started"

    # Sessions that need nobody (read, of another parent): still no Python.
    store = Store(ProjectPaths.for_project(project, cms_home))
    store.ensure_dirs()
    store.create(SessionRecord(name="done", task="t", status=Status.COMPLETED, result_read=True,
                               parent_session_id="parent-1"))  # fmt: skip
    store.create(SessionRecord(name="theirs", task="t", status=Status.RUNNING, pid=os.getpid(),
                               parent_session_id="parent-2"))  # fmt: skip
    assert _hook("stop", stop_event, env, sub) == ""
    assert starts.read_text().count("start") == before
    # A running session of another parent needs the new parent's attention: Python says so.
    assert "theirs (running)" in _hook("session-start", start_event, env, sub)
    # One of its own that ended unread: the stop is held, once.
    store.create(SessionRecord(name="mine", task="t", status=Status.COMPLETED, result_read=False,
                               parent_session_id="parent-1"))  # fmt: skip
    held = json.loads(_hook("stop", stop_event, env, sub))
    assert held["decision"] == "block" and "mine" in held["reason"]
    assert _hook("stop", {**stop_event, "stop_hook_active": True}, env, sub) == ""


def test_the_kept_guide_follows_a_changed_guide(
    claude_env: dict[str, str], project: Path, tmp_path: Path
) -> None:
    plugin = copy_tracked_files(tmp_path / "plugin")
    env = {**claude_env, "CLAUDE_PLUGIN_DATA": str(tmp_path / "data")}
    event = {"session_id": "p", "cwd": str(project), "source": "startup"}

    def start() -> str:
        done = subprocess.run(
            [str(plugin / "scripts" / "cms-hook"), "session-start"], input=json.dumps(event),
            env=env, cwd=project, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        return done.stdout

    assert "Delegating with cms" in start()
    skill = plugin / "skills" / "delegating" / "SKILL.md"
    time.sleep(0.05)
    skill.write_text(skill.read_text().replace("Delegating with cms", "Delegating, edited"))
    assert "Delegating, edited" in start()
