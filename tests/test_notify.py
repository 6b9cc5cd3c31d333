"""The parent told when work ends: at the next prompt of the Claude Code session that
started a session, the plugin's UserPromptSubmit hook adds one line per session of its
that ended since it was last told; once per ending, never to another parent, and with
nothing to tell no Python starts.

The hook is run as the plugin runs it (the command line of hooks/hooks.json, through a
shell), and once inside a real ``claude -p`` parent with the plugin loaded, whose
request to the stand-in must carry the line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from cmsrun import Cms
from standin import StandIn, text

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(claude_env: dict[str, str]) -> dict[str, str]:
    # The plugin's scripts pick this interpreter (it has cms's dependencies).
    return {**claude_env, "CMS_PYTHON": sys.executable}


def hook_command() -> str:
    [entry] = json.loads((REPO / "hooks" / "hooks.json").read_text())["hooks"]["UserPromptSubmit"]
    [hook] = entry["hooks"]
    return str(hook["command"])


class Hook:
    """The UserPromptSubmit hook as Claude Code runs it, with a Python that notes each
    start in a file (so a test can tell whether an interpreter ran at all)."""

    def __init__(self, env: dict[str, str], project: Path, tmp_path: Path) -> None:
        self.project = project
        self.starts = tmp_path / "python-starts"
        wrapper = tmp_path / "python-wrapper"
        wrapper.write_text(f'#!/bin/sh\necho x >> "{self.starts}"\nexec "{sys.executable}" "$@"\n')
        wrapper.chmod(0o755)
        self.env = {**env, "CLAUDE_PLUGIN_ROOT": str(REPO), "CMS_PYTHON": str(wrapper)}

    def pythons(self) -> int:
        return len(self.starts.read_text().splitlines()) if self.starts.exists() else 0

    def run(self, parent: str, prompt: str = "what next?") -> str:
        event = {
            "session_id": parent,
            "cwd": str(self.project),
            "hook_event_name": "UserPromptSubmit",
            "prompt": prompt,
        }
        done = subprocess.run(
            ["/bin/sh", "-c", hook_command()],
            input=json.dumps(event),
            env={**self.env, "CLAUDE_CODE_SESSION_ID": parent},
            cwd=self.project,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        if not done.stdout.strip():
            return ""
        output: dict[str, Any] = json.loads(done.stdout)
        assert output["hookSpecificOutput"]["hookEventName"] == "UserPromptSubmit"
        return str(output["hookSpecificOutput"]["additionalContext"])


def test_the_starting_parent_is_told_once_and_no_other_parent(
    env: dict[str, str], standin: StandIn, project: Path, tmp_path: Path
) -> None:
    cms = Cms(env, project)
    hook = Hook(env, project, tmp_path)
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    # Nothing ended yet: the hook returns at once, no interpreter started.
    assert hook.run(mine) == "" and hook.pythons() == 0
    standin.script("KID-MINE", [text("mine done"), text("mine again")])
    standin.script("KID-THEIRS", [text("theirs done")])
    cms.run("delegate", "my task KID-MINE", "--name", "mine", env={"CLAUDE_CODE_SESSION_ID": mine})
    cms.run("delegate", "their task KID-THEIRS", "--name", "theirs",
            env={"CLAUDE_CODE_SESSION_ID": theirs})  # fmt: skip
    assert cms.show("mine")["status"] == "completed"
    told = hook.run(mine)
    cost = cms.show("mine")["cost_usd"]
    assert told.splitlines() == [
        f"cms: session mine ended completed (cost ${cost:.4f}); read its result with "
        "`cms result mine`."
    ]
    # Once: the next prompt is told nothing, and no Python starts for it.
    starts = hook.pythons()
    assert hook.run(mine) == "" and hook.pythons() == starts
    # The other parent is told of its own session only, and only once.
    assert "session theirs ended completed" in hook.run(theirs)
    assert "mine" not in hook.run(theirs)
    # A parent that started nothing is told nothing.
    assert hook.run(str(uuid.uuid4())) == ""
    # Each ending is told: the session ran again and ended again.
    assert cms.ok("send", "mine", "once more")["status"] == "completed"
    assert hook.run(mine).count("session mine ended completed") == 1
    # A /cms: command prompt is the slash commands' business, not this note's.
    assert cms.ok("send", "mine", "and again")["status"] == "completed"
    assert hook.run(mine, "/cms:result mine").startswith("cms result")
    assert "session mine ended" in hook.run(mine)


def test_a_real_parent_reads_the_line_at_its_next_prompt(
    claude_bin: Path, env: dict[str, str], standin: StandIn, project: Path
) -> None:
    parent, other = str(uuid.uuid4()), str(uuid.uuid4())
    standin.script("KID-TOLD", [text("the child is done")])
    done = Cms(env, project).run("delegate", "a task KID-TOLD", "--name", "told",
                                 env={"CLAUDE_CODE_SESSION_ID": parent})  # fmt: skip
    assert done.code == 0, done.stderr

    def prompt(session_id: str, words: str) -> str:
        standin.script(words, [text("ok"), text("ok")])  # a stop may be held once
        subprocess.run(
            [str(claude_bin), "-p", words, "--session-id", session_id, "--plugin-dir", str(REPO),
             "--output-format", "stream-json", "--verbose"],
            cwd=project, env=env, capture_output=True, text=True, timeout=180,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        sent = standin.requests_for(words)
        assert sent, f"the parent sent nothing for {words!r}"
        return json.dumps(sent[0].body)

    line = "cms: session told ended completed"
    assert line not in prompt(other, "hello PARENT-OTHER")
    assert line in prompt(parent, "hello PARENT-TOLD")


def test_every_note_is_taken_exactly_once_under_concurrent_readers(tmp_path: Path) -> None:
    from cms.engine import notices

    home, parent = tmp_path / "cms-home", str(uuid.uuid4())
    written = 300
    taken: list[dict[str, Any]] = []
    done = threading.Event()

    def write() -> None:
        for i in range(written):
            notices.note(home, parent, {"name": f"s{i}", "status": "completed"})
        done.set()

    def read() -> None:
        while not done.is_set():
            taken.extend(notices.take(home, parent))
        taken.extend(notices.take(home, parent))

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    taken.extend(notices.take(home, parent))
    names = [note["name"] for note in taken]
    assert len(names) == written and set(names) == {f"s{i}" for i in range(written)}
    assert not (home / "notices" / parent).exists()  # the marker goes with the last note
    assert notices.take(home, "../escape") == [] and notices.notices_dir(home, "a/b") is None
