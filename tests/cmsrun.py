"""Helpers for tests that drive the real ``cms`` command line as a user would."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CMS = [sys.executable, "-m", "cms.ui.cli"]

#: The cms modules the child's hook (``cms.hooks.child``) loads: the standard-library
#: hook path. ``cms hook EVENT`` through the console script adds only its dispatch.
HOOK_PATH = frozenset({
    "cms", "cms.hooks", "cms.hooks.child", "cms.hooks.events", "cms.base", "cms.base.paths",
    "cms.base.readers", "cms.base.vocab",
    "cms.policy", "cms.policy.budget", "cms.policy.decide", "cms.policy.edit", "cms.policy.rules",
    "cms.policy.commands", "cms.policy.places", "cms.policy.review", "cms.policy.shell",
})  # fmt: skip


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def cms_exe() -> str:
    """The ``cms`` console script pip installed beside this Python (else on PATH)."""
    script = Path(sys.executable).with_name("cms")
    return str(script) if script.exists() else (shutil.which("cms") or "cms")


def run_cms(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    console: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``cms ARGS`` as a process: the one runner of the tests. ``console``: through the
    console script, as a user's shell runs it (else ``python -m cms.ui.cli``)."""
    return subprocess.run(
        [*([cms_exe()] if console else CMS), *args],
        cwd=cwd,
        env=dict(os.environ) if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


class Cms:
    """Run ``cms`` in a project with a prepared environment."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd

    def run(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None) -> Run:
        done = run_cms(*args, cwd=self.cwd, env={**self.env, **(env or {})}, timeout=timeout)
        return Run(done.returncode, done.stdout, done.stderr)

    def ok(self, *args: str, timeout: float = 120) -> Any:
        """Run with --json, expect exit 0, return the parsed output."""
        result = self.run("--json", *args, timeout=timeout)
        assert result.code == 0, f"cms {' '.join(args)} -> {result.code}\n{result.stderr}"
        return result.json()

    def show(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = self.ok("show", name)
        return data

    def _show_soon(self, name: str, deadline: float) -> dict[str, Any] | None:
        """The record, or None while it does not exist yet (a starter on a loaded machine
        may not have made it); after the deadline a missing record fails as ``show``."""
        result = self.run("--json", "show", name)
        missing = result.code == 2 and "no session named" in result.stderr
        if missing and time.monotonic() <= deadline:
            return None
        assert result.code == 0, f"cms show {name} -> {result.code}\n{result.stderr}"
        data: dict[str, Any] = result.json()
        return data

    def wait_status(self, name: str, statuses: set[str], timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            record = self._show_soon(name, deadline)
            if record is not None and record["status"] in statuses:
                return record
            if record is not None and time.monotonic() > deadline:
                raise AssertionError(f"{name} stayed {record['status']}, wanted {statuses}")
            time.sleep(0.1)

    def wait_field(self, name: str, key: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            record = self._show_soon(name, deadline)
            if record is not None and record.get(key):
                return record
            if record is not None and time.monotonic() > deadline:
                raise AssertionError(f"{name} never got {key}: {record}")
            time.sleep(0.1)


REPO = Path(__file__).resolve().parent.parent


def tool_results(cms: Cms, name: str) -> list[tuple[bool, str]]:
    """(is_error, text) of every tool result session ``name`` got, in order, from its
    raw log (a subagent's inner results left out)."""
    found = []
    for line in cms.run("logs", name, "--raw").stdout.splitlines():
        event = json.loads(line)
        if event.get("type") != "user" or event.get("parent_tool_use_id"):
            continue
        for block in event["message"].get("content") or []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                content = block.get("content")
                if isinstance(content, list):
                    content = " ".join(str(c.get("text", "")) for c in content)
                found.append((bool(block.get("is_error")), str(content)))
    return found


def claude_p(
    claude_bin: Path,
    prompt: str,
    env: dict[str, str],
    cwd: Path,
    *,
    plugin_dir: Path | None = None,
    timeout: float = 300,
) -> list[dict[str, Any]]:
    """Run the real ``claude -p PROMPT`` (stream-json), optionally with a plugin folder
    loaded, and return its events."""
    argv = [str(claude_bin), "-p", prompt, "--output-format", "stream-json", "--verbose"]
    if plugin_dir is not None:
        argv += ["--plugin-dir", str(plugin_dir)]
    done = subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert events, f"claude printed no events (exit {done.returncode}): {done.stderr[-2000:]}"
    return events


def processes_with(variable: str, value: str | Path) -> list[int]:
    """Pids of live processes (not zombies, not this one) whose environment has
    ``variable=value``: what a test started, found by the environment it gave them."""
    wanted = f"{variable}={value}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                environ = handle.read().split(b"\0")
            with open(f"/proc/{entry}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if wanted in environ and state not in (b"Z", b"X"):
            found.append(int(entry))
    return found


def processes_of_session(name: str) -> list[int]:
    """Pids of live processes of session ``name`` (their CMS_SESSION)."""
    return processes_with("CMS_SESSION", name)


def processes_with_home(home: Path) -> list[int]:
    """Pids of live processes that use the state folder ``home`` (their CMS_HOME)."""
    return processes_with("CMS_HOME", home)


def copy_tracked_files(destination: Path) -> Path:
    """A clean copy of the repository's files (tracked, or new and not ignored), as a
    user's clone would be: no .cache/, no build leftovers."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        name = raw.decode()
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def wait_gone(pids_of: Any, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        left: list[int] = pids_of()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo``; its output, stripped (a failure raises)."""
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def tree_state(repo: Path) -> tuple[str, str, str, str]:
    """Branch, HEAD, status and README content: what 'untouched' means."""
    return (
        git(repo, "rev-parse", "--abbrev-ref", "HEAD"),
        git(repo, "rev-parse", "HEAD"),
        git(repo, "status", "--porcelain"),
        (repo / "README.md").read_text(),
    )


class Watcher(threading.Thread):
    """Reads a state file every few milliseconds and keeps every line matching ``bad``
    it ever held (a record is rewritten as events stream in: only a watcher sees a
    tampered state that was put right again). The injected text may legitimately
    appear inside a string (``last_activity`` describes the child's tool calls), so
    ``bad`` should match from the start of a line."""

    def __init__(self, path: Path, bad: re.Pattern[str]) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.bad = bad
        self.tampered: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                lines = self.path.read_text().splitlines()
            except OSError:
                lines = []
            self.tampered += [line for line in lines if self.bad.match(line)]
            time.sleep(0.005)

    def stop(self) -> list[str]:
        self.done.set()
        self.join()
        return self.tampered
