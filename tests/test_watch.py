"""``cms watch``: the live table in a real terminal, and its plain form off one.

The terminal test runs ``cms watch`` in a detached tmux session of a fixed size (a
private tmux server, ``-L``), starts and ends sessions against the stand-in with the
``cms`` command line, and reads the screen with ``capture-pane`` until each status
change shows: running, queued (the project allows one session at a time), completed,
failed, aborted. Ctrl-C must end it with status 0 and the cursor visible again.
The rest reads records written straight into the store: the plain snapshot, the JSON
snapshot, and the small formats the table and the progress line are made of.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cmsrun import CMS, Cms
from standin import StandIn, error, text, tool_use

from cms.base.paths import ProjectPaths
from cms.engine.models import Preset, SessionRecord, Status
from cms.engine.store import Store
from cms.ui import watch

TMUX = shutil.which("tmux")
COLUMNS, LINES = 150, 30


class Tmux:
    """One command in a detached tmux session on a private server."""

    def __init__(self, folder: Path) -> None:
        self.socket = f"cms-test-{uuid.uuid4().hex[:8]}"
        self.folder = folder
        self.target = "watch"
        # The server's socket in a folder of the test's own (a short path: sockets
        # have a length limit), removed with it.
        self.sockets = Path(tempfile.mkdtemp(prefix="cms-tmux-"))
        self.env = {**os.environ, "TMUX_TMPDIR": str(self.sockets)}
        self.env.pop("TMUX", None)

    def tmux(self, *args: str) -> str:
        assert TMUX is not None
        done = subprocess.run(
            [TMUX, "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True, text=True, timeout=20, check=True, env=self.env,
        )  # fmt: skip
        return done.stdout

    def start(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        """Run ``command`` in a fresh terminal; its exit status is printed after it."""
        wrapper = self.folder / "run-in-tmux.sh"
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
        wrapper.write_text(
            "#!/bin/sh\n"
            + exports
            + f"cd {shlex.quote(str(cwd))}\n"
            # The shell must outlive Ctrl-C to report the status; a trap with a command
            # (unlike an ignored signal) is reset in the child, so the child gets SIGINT.
            + "trap : INT\n"
            # tmux puts COLUMNS and LINES of its own (80x24) into a detached session.
            + "unset COLUMNS LINES\n"
            + " ".join(shlex.quote(c) for c in command)
            + '\necho "exited with $?"\n'
            # The terminal's echo mode afterwards: "echo" when restored, else "-echo".
            + "stty -a | tr ' ;' '\\n\\n' | grep -x -e echo -e -echo\n"
            + "sleep 600\n"
        )
        self.tmux(
            "new-session", "-d", "-s", self.target, "-x", str(COLUMNS), "-y", str(LINES),
            f"sh {shlex.quote(str(wrapper))}",
        )  # fmt: skip

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.target)

    def wait_for(self, check: Any, what: str, timeout: float = 60) -> str:
        """Capture the screen until ``check(screen)`` holds; the screen it held on."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if check(screen):
                return screen
            if time.monotonic() > deadline:
                size = self.tmux("display-message", "-p", "-t", self.target, "#{pane_width}")
                raise AssertionError(
                    f"never saw {what}; the screen ({size.strip()} wide):\n{screen}"
                )
            time.sleep(0.1)

    def row(self, name: str, status: str, timeout: float = 60) -> str:
        """Wait for the table row of session ``name`` to show ``status``."""
        pattern = re.compile(rf"^\s*{re.escape(name)}\s+{re.escape(status)}\s", re.M)
        return self.wait_for(lambda s: pattern.search(s), f"{name} {status}", timeout)

    def cursor_visible(self) -> bool:
        return (
            self.tmux("display-message", "-p", "-t", self.target, "#{cursor_flag}").strip() == "1"
        )

    def kill(self) -> None:
        subprocess.run(
            [TMUX or "tmux", "-L", self.socket, "kill-server"],
            capture_output=True, timeout=20, env=self.env,
        )  # fmt: skip
        shutil.rmtree(self.sockets, ignore_errors=True)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    if TMUX is None:
        pytest.skip("tmux is not installed")
    terminal = Tmux(tmp_path)
    try:
        yield terminal
    finally:
        terminal.kill()


def test_watch_follows_sessions_in_a_terminal(
    tmux: Tmux, claude_env: dict[str, str], standin: StandIn, project: Path
) -> None:
    cms = Cms(claude_env, project)
    cms.ok("budget", "--max-parallel", "1", "--max-cost", "5")
    standin.script(
        "W-ALPHA", [tool_use("Bash", {"command": "echo alpha-step"}), text("alpha", delay=6)]
    )
    standin.script("W-BETA", [error(500)])
    standin.script("W-GAMMA", [text("never", delay=60)])

    tmux.start([*CMS, "watch"], {**claude_env, "TERM": "xterm-256color"}, project)
    screen = tmux.wait_for(lambda s: "(no sessions yet)" in s, "the empty table")
    assert "cms watch" in screen and "Ctrl-C" in screen
    assert "project spend $0.0000 of cap $5.00" in screen

    cms.ok("delegate", "first W-ALPHA", "--name", "alpha", "--background")
    # Running, with its last tool call, while its second API call hangs for six seconds.
    alpha = re.compile(r"alpha\s+running\s+edit\s+default\s+\d+\s+\$\S+\s+\d+:\d\d\s+Bash: ech")
    tmux.wait_for(alpha.search, "alpha running its Bash call")
    cms.ok("delegate", "second W-BETA", "--name", "beta", "--background")
    tmux.row("beta", "queued")  # one at a time: beta waits for alpha
    tmux.row("alpha", "completed")
    tmux.row("beta", "failed")  # started once alpha ended; the API answers 500
    cms.ok("delegate", "third W-GAMMA", "--name", "gamma", "--background")
    tmux.row("gamma", "running")
    cms.ok("abort", "gamma")
    screen = tmux.row("gamma", "aborted")
    for name, status in (("alpha", "completed"), ("beta", "failed"), ("gamma", "aborted")):
        assert re.search(rf"{name}\s+{status}\s", screen), screen
    spent = sum(r["cost_usd"] for r in cms.ok("list"))
    tmux.wait_for(lambda s: f"project spend ${spent:.4f} of cap $5.00" in s, "the spend")

    tmux.tmux("send-keys", "-t", tmux.target, "C-c")
    # The wrapper prints the exit status, then (a moment later) the terminal's echo mode.
    echo_mode = re.compile(r"^-?echo$", re.M)
    screen = tmux.wait_for(
        lambda s: "exited with" in s and echo_mode.search(s), "watch to exit and stty"
    )
    assert "exited with 0" in screen, screen
    assert "Traceback" not in screen
    # The terminal is as it was: cursor shown, echo on; the last table left once.
    assert tmux.cursor_visible()
    assert re.search(r"^echo$", screen, re.M), screen
    assert screen.count("cms watch ·") == 1, screen
    assert re.search(r"gamma\s+aborted", screen), screen


# -- off a terminal ---------------------------------------------------------------------


def make_store(project: Path, cms_home: Path) -> Store:
    store = Store(ProjectPaths.for_project(project, cms_home))
    store.ensure_dirs()
    return store


def record(name: str, **kw: Any) -> SessionRecord:
    kw.setdefault("task", f"task of {name}")
    return SessionRecord(name=name, **kw)


def test_watch_off_a_terminal_prints_a_plain_table(
    project: Path, cms_home: Path, claude_env: dict[str, str]
) -> None:
    now = datetime.now(UTC)
    store = make_store(project, cms_home)
    store.create(record("done", status=Status.COMPLETED, cost_usd=0.25, turns=3, max_turns=10,
                        turn_started_at=now - timedelta(seconds=75), ended_at=now,
                        last_activity="Edit: src/app.py"))  # fmt: skip
    store.create(record("broke", status=Status.FAILED, error="API Error: 500 boom",
                        preset=Preset.READ_ONLY, model="sonnet", max_cost_usd=1.0))  # fmt: skip
    cms = Cms(claude_env, project)
    cms.ok("budget", "--max-cost", "2")
    started = time.monotonic()
    done = cms.run("watch")  # stdout is a pipe: one table, then exit
    assert done.code == 0 and time.monotonic() - started < 20
    assert "\x1b" not in done.stdout
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"cms watch · {project} · ")
    assert lines[1].split() == [
        "NAME", "STATUS", "PRESET", "MODEL", "TURNS", "COST", "ELAPSED", "LAST", "ACTIVITY"
    ]  # fmt: skip
    rows = {line.split()[0]: line.split(None, 7) for line in lines[2:4]}
    assert rows["done"] == [
        "done", "completed", "edit", "default", "3/10", "$0.2500", "1:15", "Edit: src/app.py"
    ]  # fmt: skip
    assert rows["broke"][:6] == ["broke", "failed", "read-only", "sonnet", "0", "$0.0000/$1.00"]
    assert rows["broke"][7] == "API Error: 500 boom"  # an unsuccessful end shows its error
    assert lines[4] == "project spend $0.2500 of cap $2.00 (12%) · 1 completed, 1 failed"
    assert len(lines) == 5

    again = cms.run("watch", "--once", "--interval", "0.1")
    assert again.code == 0 and again.stdout.count("cms watch ·") == 1


def test_watch_repeats_with_interval_off_a_terminal(
    project: Path, cms_home: Path, claude_env: dict[str, str]
) -> None:
    make_store(project, cms_home).create(record("one", status=Status.COMPLETED))
    proc = subprocess.Popen(
        [*CMS, "watch", "--interval", "0.2"], cwd=project, env=claude_env,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(2.5)
    finally:
        proc.send_signal(2)  # Ctrl-C
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert out.count("cms watch ·") >= 3
    assert "Traceback" not in err


def test_watch_json(project: Path, cms_home: Path, claude_env: dict[str, str]) -> None:
    make_store(project, cms_home).create(record("j", status=Status.COMPLETED, cost_usd=0.5))
    data = Cms(claude_env, project).ok("watch")
    assert data["spent_usd"] == 0.5 and data["cap_usd"] is None
    assert [s["name"] for s in data["sessions"]] == ["j"]
    assert data["project"] == str(project)
    bad = Cms(claude_env, project).run("watch", "--interval", "0")
    assert bad.code == 2 and "--interval" in bad.stderr


# -- the formats ------------------------------------------------------------------------

NOW = datetime(2026, 5, 4, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(2, "just now"), (42, "42s ago"), (3 * 60 + 5, "3m ago"), (5 * 3600, "5h ago"),
     (2 * 86400 + 60, "2d ago"), (40 * 86400, "2026-03-25")],
)  # fmt: skip
def test_ago(seconds: int, shown: str) -> None:
    assert watch.ago(NOW - timedelta(seconds=seconds), NOW) == shown


def test_span_and_money() -> None:
    assert [watch.span(s) for s in (0, 7, 75, 3600 + 61)] == ["0:00", "0:07", "1:15", "1:01:01"]
    assert [watch.money(v) for v in (None, 0, 0.01234, 1, 1234.5)] == [
        "-", "$0.0000", "$0.0123", "$1.00", "$1,234.50"
    ]  # fmt: skip


def test_ordered_puts_active_sessions_first() -> None:
    def at(minutes: int) -> datetime:
        return NOW - timedelta(minutes=minutes)

    records = [
        record("old-done", status=Status.COMPLETED, ended_at=at(50)),
        record("queued", status=Status.QUEUED, updated_at=at(1)),
        record("new-done", status=Status.FAILED, ended_at=at(5)),
        record("running", status=Status.RUNNING, turn_started_at=at(3)),
    ]
    assert [r.name for r in watch.ordered(records)] == [
        "running", "queued", "new-done", "old-done"
    ]  # fmt: skip


def test_progress_line() -> None:
    one = record("alpha", status=Status.RUNNING, turns=4, cost_usd=0.0123,
                 turn_started_at=NOW - timedelta(seconds=65), updated_at=NOW,
                 last_activity="Bash: pytest -q")  # fmt: skip
    assert watch.progress_line([one], NOW, 200) == (
        "alpha running 1:05 · 4 turns · $0.0123 · Bash: pytest -q"
    )
    assert watch.progress_line([one], NOW, 20) == "alpha running 1:05 …"
    other = record("beta", status=Status.QUEUED, updated_at=NOW - timedelta(seconds=10), turns=1,
                   cost_usd=0.01)  # fmt: skip
    done = record("gamma", status=Status.COMPLETED, cost_usd=5)
    assert watch.progress_line([one, other, done], NOW, 200) == (
        "1 running, 1 queued 1:05 · 5 turns · $0.0223 · alpha: Bash: pytest -q"
    )
    assert watch.progress_line([done], NOW, 200) == ""


def test_list_table_fits_the_terminal() -> None:
    records = [record("a", task="x" * 300, status=Status.COMPLETED, created_at=NOW)]
    for width in (100, 120):
        lines = watch.list_table(records, NOW, width, colour=False).splitlines()
        assert max(len(line) for line in lines) < width
        assert lines[1].endswith("…")
    assert "\x1b[" in watch.list_table(records, NOW, 80, colour=True)


def test_the_live_table_renders() -> None:
    from rich.console import Console

    overview = _overview([
        record("r", status=Status.RUNNING, turn_started_at=NOW - timedelta(seconds=9),
               last_activity="Read: a.py"),
        record("f", status=Status.FAILED, error="boom"),
    ])  # fmt: skip
    console = Console(width=120, height=20, record=True, force_terminal=True)
    console.print(watch.watch_table(overview, NOW, 20))
    screen = console.export_text()
    assert re.search(r"r\s+running\s+edit\s+default\s+0\s+\$0\.0000\s+0:09\s+Read: a\.py", screen)
    assert re.search(r"f\s+failed\s.*boom", screen)
    assert "project spend $0.0000 (no cap) · 1 running, 1 failed" in screen
    small = Console(width=120, height=8, record=True, force_terminal=True)
    many = _overview([record(f"s{i}", status=Status.COMPLETED) for i in range(10)])
    small.print(watch.watch_table(many, NOW, 8))
    assert "… 9 more" in small.export_text()


def _overview(records: list[SessionRecord]) -> Any:
    from cms.ops import Overview

    return Overview(Path("/p"), records, [], sum(r.cost_usd for r in records), None)
