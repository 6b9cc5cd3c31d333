"""The parent's Stop hook stays quiet: never an extra model turn for a person in a
terminal, and at most one hold per child (once while it runs, once for its unread
result) for a headless ``claude -p`` parent.

The attended test runs the real interactive Claude Code in a tmux terminal with this
repository as its plugin (``--plugin-dir``) against the stand-in; the headless one runs
``claude -p`` twice in one conversation (``--resume``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cmsrun import Cms
from standin import StandIn, text
from test_watch import TMUX, Tmux

REPO = Path(__file__).resolve().parent.parent
DELEGATE = "<command-name>/cms:delegate</command-name>"


@pytest.fixture
def env(claude_env: dict[str, str]) -> dict[str, str]:
    return {**claude_env, "CMS_PYTHON": sys.executable}


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Tmux]:
    if TMUX is None:
        pytest.skip("tmux is not installed")
    screen = Tmux(tmp_path)
    try:
        yield screen
    finally:
        screen.kill()


def _trust(home: Path, project: Path, key: str) -> None:
    """What a person's first interactive start would have answered: onboarding done,
    the project trusted, the API key of the environment approved."""
    config = home / ".claude.json"
    data: dict[str, Any] = json.loads(config.read_text()) if config.exists() else {}
    data.update(
        hasCompletedOnboarding=True,
        theme="dark",
        customApiKeyResponses={"approved": [key[-20:]], "rejected": []},
        projects={str(project): {"hasTrustDialogAccepted": True,
                                 "hasCompletedProjectOnboarding": True}},
    )  # fmt: skip
    config.write_text(json.dumps(data))


def _type(terminal: Tmux, words: str) -> None:
    """Type ``words`` at the prompt and submit them. On a loaded machine an Enter may
    come while Claude Code still shows its command completion menu, which takes it:
    press it again until the words have left the input line."""
    terminal.tmux("send-keys", "-t", terminal.target, "-l", words)
    time.sleep(0.5)
    for _ in range(5):
        terminal.tmux("send-keys", "-t", terminal.target, "Enter")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if f"\u276f {words}" not in terminal.screen():
                return
            time.sleep(0.2)


def test_an_attended_parent_takes_no_extra_turn_and_sees_no_problem(
    claude_bin: Path,
    standin: StandIn,
    env: dict[str, str],
    project: Path,
    fake_home: Path,
    terminal: Tmux,
) -> None:
    # The child answers after 6 s: it is running when the parent's first turn ends,
    # and has ended, unread, when the person types the next prompt.
    standin.script("KID-TERM", [text("kid done", delay=6)])
    standin.script(DELEGATE, [text("Started it, PARENT-ONE."), text("Second answer PARENT-TWO.")])
    _trust(fake_home, project, env["ANTHROPIC_API_KEY"])
    terminal.start(
        [str(claude_bin), "--plugin-dir", str(REPO)], {**env, "TERM": "xterm-256color"}, project
    )
    terminal.wait_for(lambda s: "\u276f" in s, "the prompt", timeout=90)  # Claude Code's prompt
    _type(terminal, "/cms:delegate --background --name kid wait for me KID-TERM")
    terminal.wait_for(lambda s: "PARENT-ONE" in s, "the first answer", timeout=120)
    cms = Cms(env, project)
    deadline = time.monotonic() + 120
    while cms.show("kid")["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert cms.show("kid")["status"] == "completed"
    time.sleep(2)  # a held stop would have asked the model again by now
    assert len(standin.requests_for(DELEGATE)) == 1, "the stop made the parent take a turn"
    _type(terminal, "and now?")
    # Claude Code shows "(running Stop hook)" while a hook runs: wait until it is done.
    terminal.wait_for(lambda s: "PARENT-TWO" in s, "the second answer", timeout=120)
    time.sleep(2)
    screen = terminal.wait_for(lambda s: "running Stop hook" not in s, "the hook done", 60)
    asked = standin.requests_for(DELEGATE)
    assert len(asked) == 2, "a stop was held in an attended session"
    assert "Stop hook" not in screen and "reported a problem" not in screen
    assert "cms: sessions you started" not in screen
    # What ended is told at the next prompt, once, as context (not as a problem).
    assert "cms: session kid ended completed" in json.dumps(asked[1].body)


def _claude_p(
    claude_bin: Path, words: str, env: dict[str, str], cwd: Path, session: str, resume: bool
) -> None:
    flag = "--resume" if resume else "--session-id"
    done = subprocess.run(
        [str(claude_bin), "-p", words, flag, session, "--plugin-dir", str(REPO)],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_headless_parent_is_held_once_per_child_not_at_every_stop(
    claude_bin: Path, standin: StandIn, env: dict[str, str], project: Path
) -> None:
    standin.script("KID-HEADLESS", [text("late", delay=120)])
    replies = [text(f"answer {n}") for n in range(6)]
    standin.script(DELEGATE, replies)
    session = str(uuid.uuid4())
    words = "/cms:delegate --background --name bg wait for me KID-HEADLESS"
    _claude_p(claude_bin, words, env, project, session, resume=False)
    assert len(standin.requests_for(DELEGATE)) == 2  # held once while bg runs
    _claude_p(claude_bin, "anything more?", env, project, session, resume=True)
    asked = standin.requests_for(DELEGATE)
    assert len(asked) == 3, "held again for a child it was already held for"
    Cms(env, project).ok("abort", "bg")


# -- the hook script alone (scripts/cms-hook, no Claude Code) -------------------------------

CMS_HOOK = REPO / "scripts" / "cms-hook"


def _hook(payload: dict[str, Any], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [str(CMS_HOOK), "stop"], input=json.dumps(payload), env=env, cwd=cwd,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_stop_holds_each_child_once_per_state_and_never_an_attended_session(
    claude_env: dict[str, str], project: Path, tmp_path: Path, cms_home: Path
) -> None:
    from cms.base.paths import ProjectPaths
    from cms.engine.models import SessionRecord, Status
    from cms.engine.store import Store

    starts = tmp_path / "starts"
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("python3", "python"):
        script = f'#!/bin/sh\necho start >> {starts}\nexec {sys.executable} "$@"\n'
        (folder / name).write_text(script)
        (folder / name).chmod(0o755)
    env = {k: v for k, v in claude_env.items() if k != "CMS_PYTHON"}
    env.update(PATH=f"{folder}:/usr/bin:/bin", CLAUDE_PLUGIN_DATA=str(tmp_path / "data"))
    headless = {**env, "CLAUDE_CODE_SESSION_ATTENDED": "0", "CLAUDE_CODE_ENTRYPOINT": "sdk-cli"}
    store = Store(ProjectPaths.for_project(project, cms_home))
    store.ensure_dirs()
    store.create(SessionRecord(name="a", task="t", status=Status.RUNNING, pid=os.getpid(),
                               parent_session_id="p-1"))  # fmt: skip
    event = {"session_id": "p-1", "cwd": str(project), "stop_hook_active": False}

    def python_starts() -> int:
        return starts.read_text().count("start") if starts.exists() else 0

    # Attended (2.1.332's variable, or an older CLI's entry point): nothing, no Python.
    for attended in ({"CLAUDE_CODE_SESSION_ATTENDED": "1"}, {"CLAUDE_CODE_ENTRYPOINT": "cli"}):
        assert _hook(event, {**env, **attended}, project) == ""
    assert python_starts() == 0
    held = json.loads(_hook(event, headless, project))
    assert held["decision"] == "block" and "a (running)" in held["reason"]
    before = python_starts()
    assert _hook(event, headless, project) == ""  # held for a while it ran: not again
    assert python_starts() == before, "a Python was started with nothing to say"
    store.update("a", lambda r: r.model_copy(update={"status": Status.COMPLETED, "pid": None}))
    held = json.loads(_hook(event, headless, project))
    assert "not read" in held["reason"] and "a (completed)" in held["reason"]
    before = python_starts()
    assert _hook(event, headless, project) == ""
    assert python_starts() == before
