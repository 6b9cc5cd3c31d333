"""What a person sees of the sessions: ``cms logs``, the progress line of a blocking
command, ``cms cost``, ``cms doctor``, and the human output of ``list`` and ``show``.

Logs and progress run the real Claude Code CLI against the stand-in, so the log lines
checked here are rendered from the CLI's own event shapes (a denial by the cms hook, a
tool disabled by the preset's flags, a tool's own error). Cost, list and show read
records written straight into the store, so their numbers and times are exact.
Doctor's failing checks are each provoked: claude missing, too old, the plugin
invalid or missing, the state folder unusable, root with the ``full`` preset.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import shutil
import struct
import subprocess
import termios
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from claude_version import CLAUDE_CODE_VERSION
from cmsrun import CMS, Cms
from standin import StandIn, ToolUse, expected_cost, message, text, tool_use

from cms import ops as api
from cms.base.paths import ProjectPaths
from cms.engine.models import Preset, SessionRecord, Status
from cms.engine.store import Store
from cms.ui.watch import ago

MODEL = "claude-sonnet-4-5"
REPO = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def store_for(project: Path, cms_home: Path) -> Store:
    store = Store(ProjectPaths.for_project(project, cms_home))
    store.ensure_dirs()
    return store


def log_file(cms: Cms, name: str) -> Path:
    [path] = Path(cms.env["CMS_HOME"]).glob(f"projects/*/logs/{name}.jsonl")
    return path


def wait_logged_outcome(cms: Cms, name: str, timeout: float = 10) -> None:
    """The supervisor appends its verdict just after recording the outcome."""
    deadline = time.monotonic() + timeout
    while '"cms_outcome"' not in log_file(cms, name).read_text():
        assert time.monotonic() < deadline, f"{name}: no cms_outcome in the log"
        time.sleep(0.05)


def match_lines(lines: list[str], patterns: list[str]) -> None:
    """Each line matches its pattern (a full-line regex), and there are as many."""
    for i, (line, pattern) in enumerate(zip(lines, patterns, strict=False)):
        assert re.fullmatch(pattern, line), f"line {i + 1}: {line!r} !~ {pattern!r}"
    assert len(lines) == len(patterns), "\n".join(lines)


# -- cms logs ----------------------------------------------------------------------------


def test_logs_show_text_calls_results_denials_and_the_result(
    cms: Cms, standin: StandIn, project: Path
) -> None:
    readme = project / "README.md"
    missing = project / "missing.txt"
    script = [
        message("Let me look at the readme.", ToolUse("Read", {"file_path": str(readme)})),
        tool_use("Bash", {"command": "echo hello-from-bash"}),
        tool_use("Bash", {"command": "sudo true"}),
        tool_use("Read", {"file_path": str(missing)}),
        text("Finished.\nAll good."),
    ]
    standin.script("T-LOGS", script)
    out = cms.ok("delegate", "inspect T-LOGS", "--name", "seen", "--model", MODEL)
    assert out["status"] == "completed"
    wait_logged_outcome(cms, "seen")
    shown = cms.run("logs", "seen")
    assert shown.code == 0, shown.stderr
    assert out["cost_usd"] == pytest.approx(expected_cost(MODEL, script))
    cost = re.escape(f"${out['cost_usd']:.4f}")
    p = re.escape(str(project))
    match_lines(
        shown.stdout.splitlines(),
        [
            rf"── turn started · model {MODEL} · Claude Code {re.escape(CLAUDE_CODE_VERSION)}"
            r" · permission mode acceptEdits",
            r"assistant: Let me look at the readme\.",
            rf"→ Read: {p}/README\.md",
            r"  ← 1 # Test project \(\+1 line\)",  # Read numbers the lines
            r"→ Bash: echo hello-from-bash",
            r"  ← hello-from-bash",
            r"→ Bash: sudo true",
            r"  ⛔ denied by cms: preset edit denies `sudo true` \(.+\)",
            rf"→ Read: {p}/missing\.txt",
            r"  ✗ error: File does not exist\..*",
            r"assistant: Finished\.",
            r"           All good\.",
            rf"── result: success · {cost} · 5 turns · \d+\.\ds",
            r"   ⛔ 1 denied: Bash",
            r"── cms: completed",
        ],
    )
    # --raw (and --json) give the stream-json lines exactly as logged.
    raw = cms.run("logs", "seen", "--raw")
    assert raw.stdout.splitlines() == log_file(cms, "seen").read_text().splitlines()
    assert all(json.loads(line)["type"] for line in raw.stdout.splitlines())
    assert cms.run("--json", "logs", "seen").stdout == raw.stdout


def test_logs_mark_a_tool_the_preset_disabled_as_denied(
    cms: Cms, standin: StandIn, project: Path
) -> None:
    target = project / "x.txt"
    standin.script("T-RO", [tool_use("Write", {"file_path": str(target), "content": "x"}),
                            text("Could not write.")])  # fmt: skip
    out = cms.ok("delegate", "write T-RO", "--name", "ro", "--preset", "read-only")
    assert out["status"] == "completed" and not target.exists()
    wait_logged_outcome(cms, "ro")
    lines = cms.run("logs", "ro").stdout.splitlines()
    match_lines(
        lines,
        [
            r"── turn started · model \S+ · Claude Code \S+ · permission mode default",
            rf"→ Write: {re.escape(str(target))}",
            r"  ⛔ denied by Claude Code: .*Write is disabled for this session.*",
            r"assistant: Could not write\.",
            r"── result: success · \$\d+\.\d{4} · 2 turns · \d+\.\ds",
            r"── cms: completed",
        ],
    )


def test_logs_follow_tails_a_running_session_until_it_stops(cms: Cms, standin: StandIn) -> None:
    standin.script(
        "T-FOLLOW",
        [tool_use("Bash", {"command": "echo first-step"}), text("followed", delay=2.0)],
    )
    cms.ok("delegate", "tail me T-FOLLOW", "--name", "tail", "--background")
    started = time.monotonic()
    follow = subprocess.run(
        [*CMS, "logs", "tail", "--follow"], cwd=cms.cwd, env=cms.env, capture_output=True,
        text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert follow.returncode == 0, follow.stderr
    lines = follow.stdout.splitlines()
    assert "→ Bash: echo first-step" in lines
    assert "assistant: followed" in lines
    assert any(line.startswith("── result: success") for line in lines)
    assert cms.show("tail")["status"] == "completed"
    assert time.monotonic() - started < 45


def test_logs_of_a_session_without_a_turn_and_of_an_unknown_one(cms: Cms) -> None:
    cms.ok("spawn", "idle")
    empty = cms.run("logs", "idle")
    assert (empty.code, empty.stdout) == (0, "")
    assert "no events yet" in empty.stderr
    unknown = cms.run("logs", "nope")
    assert unknown.code == 2 and "nope" in unknown.stderr


# -- the progress line ----------------------------------------------------------------


def run_with_tty_stderr(args: list[str], cms: Cms, timeout: float = 90) -> tuple[int, str, str]:
    """Run cms with stderr on a pseudo-terminal (stdout piped): what a person at a
    terminal sees on stderr, and what a script capturing stdout gets."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    proc = subprocess.Popen(
        [*CMS, *args], cwd=cms.cwd, env=cms.env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=slave,
    )  # fmt: skip
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal is gone
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        stdout, _ = proc.communicate(timeout=timeout)
    finally:
        reader.join(5)
        os.close(master)
    return proc.returncode, stdout.decode(), b"".join(chunks).decode("utf-8", "replace")


SLOW = [tool_use("Bash", {"command": "echo working"}), text("slow answer", delay=1.5)]


def test_progress_on_a_terminal_and_never_in_json_or_pipes(cms: Cms, standin: StandIn) -> None:
    standin.script("T-PROG", SLOW)
    # A person at a terminal: the line is drawn and redrawn on stderr, then erased.
    code, stdout, stderr = run_with_tty_stderr(["delegate", "go T-PROG", "--name", "prog"], cms)
    assert code == 0, stderr
    assert "\r\x1b[K" in stderr
    drawn = [part for part in stderr.split("\r\x1b[K") if part.strip()]
    assert any(
        re.match(r"prog running \d+:\d\d · \d+ turns · \$\d+\.\d{4}( · .+)?$", part)
        for part in drawn
    ), drawn
    assert any("Bash: echo working" in part for part in drawn), drawn
    assert stderr.endswith("\r\x1b[K") or stderr.rstrip().endswith("\x1b[K")
    assert stdout.startswith("prog: completed") and "\x1b" not in stdout and "\r" not in stdout

    # --json: stdout is the JSON alone and stderr stays empty, terminal or not.
    code, stdout, stderr = run_with_tty_stderr(["--json", "send", "prog", "again T-PROG"], cms)
    assert code == 0
    assert json.loads(stdout)["status"] == "completed"
    assert stderr == ""
    # Piped stderr (a script, Claude Code's Bash tool): nothing but the result.
    piped = cms.run("send", "prog", "once more T-PROG")
    assert piped.code == 0 and piped.stderr == ""
    assert piped.stdout.startswith("prog: completed") and "\x1b" not in piped.stdout


def test_progress_of_wait_and_not_with_json(cms: Cms, standin: StandIn) -> None:
    # The second turn is slow enough that the bare `wait` below meets it running even
    # on a loaded machine (it waits for the sessions running or queued when it starts).
    standin.script("T-WAIT", [*SLOW, text("second answer", delay=8)])
    cms.ok("delegate", "a T-WAIT", "--name", "wa", "--background")
    code, stdout, stderr = run_with_tty_stderr(["wait", "wa"], cms)
    assert code == 0
    assert re.search(r"wa (running|queued) \d+:\d\d", stderr), stderr
    assert "wa: completed" in stdout and "\x1b" not in stdout
    cms.ok("send", "wa", "b T-WAIT", "--background")
    code, stdout, stderr = run_with_tty_stderr(["wait", "--json"], cms)
    assert code == 0 and stderr == ""
    [waited] = json.loads(stdout)
    assert waited["name"] == "wa" and waited["response"] == "second answer"


# -- cms cost ----------------------------------------------------------------------------


def _record(name: str, *, cost: float = 0.0, model: str | None = None, **kw: Any) -> SessionRecord:
    return SessionRecord(name=name, task=f"task of {name}", cost_usd=cost, model=model, **kw)


def test_cost_by_session_model_and_day(
    project: Path, cms_home: Path, claude_env: dict[str, str]
) -> None:
    store = store_for(project, cms_home)
    day1 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    day2 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    store.create(_record("a", cost=0.5, model="opus", status=Status.COMPLETED, ended_at=day1))
    store.create(_record("b", cost=1.2, model="opus", status=Status.FAILED, ended_at=day2))
    store.create(_record("c", cost=0.3, status=Status.COMPLETED, ended_at=day2))
    cms = Cms(claude_env, project)
    cms.ok("budget", "--max-cost", "10")

    by_session = cms.run("cost")
    assert by_session.code == 0
    assert by_session.stdout.splitlines() == [
        "SESSION     COST  SHARE  SESSIONS",
        "b          $1.20    60%         1",
        "a        $0.5000    25%         1",
        "c        $0.3000    15%         1",
        "total      $2.00   100%         3",
        "project cap $10.00: 20% used, $8.00 left",
    ]
    by_model = cms.run("cost", "--by", "model").stdout.splitlines()
    assert by_model[0].split() == ["MODEL", "COST", "SHARE", "SESSIONS"]
    assert [line.split() for line in by_model[1:4]] == [
        ["opus", "$1.70", "85%", "2"],
        ["default", "$0.3000", "15%", "1"],
        ["total", "$2.00", "100%", "3"],
    ]
    by_day = cms.run("cost", "--by", "day").stdout.splitlines()
    assert [line.split()[:2] for line in by_day[1:4]] == [
        ["2026-03-01", "$0.5000"],
        ["2026-03-02", "$1.50"],
        ["total", "$2.00"],
    ]
    data = cms.ok("cost", "--by", "model")
    assert data["by"] == "model" and data["total_cost_usd"] == 2.0 and data["cap_usd"] == 10.0
    assert data["rows"] == [
        {"key": "opus", "cost_usd": 1.7, "sessions": 2, "kind": "cms"},
        {"key": "default", "cost_usd": 0.3, "sessions": 1, "kind": "cms"},
    ]
    bad = cms.run("cost", "--by", "week")
    assert bad.code == 2 and "session, model, day or agent" in bad.stderr


def test_cost_of_an_empty_project_without_a_cap(project: Path, claude_env: dict[str, str]) -> None:
    done = Cms(claude_env, project).run("cost")
    assert done.code == 0
    assert done.stdout.splitlines() == [
        "SESSION     COST  SHARE  SESSIONS",
        "total    $0.0000      -         0",
        "no project spend cap (set one: cms budget --max-cost USD)",
    ]


# -- cms list and show ------------------------------------------------------------------


def test_list_aligns_columns_with_relative_times_and_short_tasks(
    project: Path, cms_home: Path, claude_env: dict[str, str]
) -> None:
    store = store_for(project, cms_home)
    now = datetime.now(UTC)
    long_task = "Refactor the payment module " + "and its tests " * 10
    old = {"status": Status.FAILED, "max_cost_usd": 5.0, "turns": 4, "max_turns": 10}
    store.create(_record("old", cost=1.5, created_at=now - timedelta(days=3), **old))
    mid = {"status": Status.COMPLETED, "preset": Preset.READ_ONLY}
    store.create(_record("mid", model="sonnet", created_at=now - timedelta(minutes=7), **mid))
    created = now - timedelta(seconds=1)
    new = SessionRecord(name="new", task=long_task, status=Status.COMPLETED, created_at=created)
    store.create(new)
    cms = Cms(claude_env, project)
    before = datetime.now(UTC)
    done = cms.run("list")
    after = datetime.now(UTC)
    assert done.code == 0 and "\x1b" not in done.stdout
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "PRESET", "MODEL", "COST", "TURNS", "AGE", "TASK"]
    columns = [lines[0].index(h) for h in ("STATUS", "PRESET", "MODEL", "COST", "TURNS", "AGE")]
    for line in lines[1:]:
        for start in columns:  # every cell starts under its header
            assert line[start - 2 : start] == "  " and line[start] != " ", line
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"old", "mid", "new"}
    assert "3d ago" in rows["old"] and "$1.50/$5.00" in rows["old"] and "4/10" in rows["old"]
    assert "7m ago" in rows["mid"] and "read-only" in rows["mid"] and "sonnet" in rows["mid"]
    # "just now" under 5 s; a loaded machine may take longer to start `cms list`, and then
    # the age it shows is the one of the moment it ran
    steps = range(int((after - before).total_seconds()) + 1)
    shown = {ago(created, before + timedelta(seconds=k)) for k in steps} | {ago(created, after)}
    assert any(age in rows["new"] for age in shown), (rows["new"], shown)
    task_cell = rows["new"][lines[0].index("TASK") :]
    assert task_cell.endswith("…") and len(task_cell) == 60
    assert long_task.startswith(task_cell[:-1])
    # --json stays the machine interface: full records, full task.
    data = cms.ok("list")
    assert [r["name"] for r in data] == ["old", "mid", "new"]
    assert data[2]["task"] == long_task and data[0]["cost_usd"] == 1.5


def test_list_colours_status_only_on_a_terminal(
    project: Path, cms_home: Path, claude_env: dict[str, str]
) -> None:
    store_for(project, cms_home).create(_record("red", status=Status.FAILED))
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    proc = subprocess.run(
        [*CMS, "list"], cwd=project, env=claude_env, stdin=subprocess.DEVNULL, stdout=slave,
        stderr=subprocess.PIPE, timeout=60,
    )  # fmt: skip
    os.close(slave)
    out = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        out += data
    os.close(master)
    assert proc.returncode == 0
    screen = out.decode()
    assert re.search(r"\x1b\[31m(\x1b\[\d+m)*failed", screen), screen  # red
    assert ANSI.sub("", screen).splitlines()[1].split()[:2] == ["red", "failed"]


def test_show_for_a_person(project: Path, cms_home: Path, claude_env: dict[str, str]) -> None:
    now = datetime.now(UTC)
    store_for(project, cms_home).create(
        _record(
            "shown", cost=0.0123, max_cost_usd=2.0, turns=3, status=Status.FAILED,
            error="the API said no", response="Line one.\nLine two.",
            created_at=now - timedelta(hours=2), turn_started_at=now - timedelta(minutes=5),
            ended_at=now - timedelta(minutes=4), last_activity="Bash: pytest -q",
        )
    )  # fmt: skip
    cms = Cms(claude_env, project)
    done = cms.run("show", "shown")
    assert done.code == 0 and "\x1b" not in done.stdout
    lines = done.stdout.splitlines()
    fields = {line[:14].strip(): line[16:] for line in lines if line and not line.startswith(" ")}
    assert fields["name"] == "shown" and fields["status"] == "failed"
    assert fields["cost"] == "$0.0123/$2.00"
    assert fields["turns"] == "3 (no cap)"
    assert fields["error"] == "the API said no"
    assert fields["last activity"] == "Bash: pytest -q"
    assert fields["created"].endswith("(2h ago)")
    assert fields["turn ended"].endswith("(4m ago)")
    assert fields["last turn took"] == "1:00"
    assert lines[-3:] == ["response:", "  Line one.", "  Line two."]
    assert cms.ok("show", "shown")["response"] == "Line one.\nLine two."


# -- cms doctor --------------------------------------------------------------------------


def fake_claude(folder: Path, version: str, validate_exit: int = 0) -> Path:
    """A stand-in ``claude`` executable: prints ``version``; ``plugin validate`` exits
    with ``validate_exit``."""
    script = folder / f"claude-{version}"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "--version" ]; then echo "{version} (Claude Code)"; exit 0; fi\n'
        f'if [ "$1" = "plugin" ]; then echo "  \u276f name: bad"; exit {validate_exit}; fi\n'
        "exit 2\n"
    )
    script.chmod(0o755)
    return script


def doctor(env: dict[str, str], project: Path, code: int) -> dict[str, dict[str, object]]:
    done = subprocess.run(
        [*CMS, "--json", "doctor"], cwd=project, env=env, capture_output=True, text=True,
        timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == code, (done.stdout, done.stderr)
    return {c["check"]: c for c in json.loads(done.stdout)}


def test_doctor_all_good_for_a_person(project: Path, claude_env: dict[str, str]) -> None:
    done = Cms(claude_env, project).run("doctor")
    assert done.code == 0, done.stdout
    names = [line.split()[1] for line in done.stdout.splitlines() if not line.startswith(" ")]
    assert names[:6] == ["claude", "version", "sign-in", "plugin", "state", "root"]  # then setup
    assert all(line.split()[0] in ("ok", "warn") for line in done.stdout.splitlines()
               if not line.startswith(" "))  # fmt: skip


def test_doctor_claude_missing(project: Path, fake_home: Path, cms_home: Path) -> None:
    path = os.pathsep.join(
        d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "claude").exists()
    )
    env = {"HOME": str(fake_home), "CMS_HOME": str(cms_home), "PATH": path}
    checks = doctor(env, project, 3)
    assert checks["claude"]["ok"] is False and "npm install" in str(checks["claude"]["fix"])
    assert checks["version"]["ok"] is False and checks["state"]["ok"] is True
    done = subprocess.run([*CMS, "doctor"], cwd=project, env=env, capture_output=True, text=True)
    assert done.returncode == 3
    assert re.search(r"^FAIL  claude +claude not found", done.stdout, re.M), done.stdout
    assert re.search(r"^ +fix: install Claude Code", done.stdout, re.M), done.stdout


def test_doctor_says_whether_claude_code_is_signed_in(
    project: Path, claude_env: dict[str, str], tmp_path: Path
) -> None:
    checks = doctor(claude_env, project, 0)
    assert checks["sign-in"]["ok"] is True
    assert "ANTHROPIC_API_KEY" in str(checks["sign-in"]["detail"])
    empty = tmp_path / "empty-home"
    empty.mkdir()
    env = {k: v for k, v in claude_env.items() if k != "ANTHROPIC_API_KEY"}
    checks = doctor({**env, "HOME": str(empty)}, project, 3)
    assert checks["sign-in"]["ok"] is False
    assert "not signed in" in str(checks["sign-in"]["detail"])
    assert "/login" in str(checks["sign-in"]["fix"])
    assert checks["claude"]["ok"] is True


def test_doctor_claude_too_old(project: Path, claude_env: dict[str, str], tmp_path: Path) -> None:
    env = {**claude_env, "CMS_CLAUDE_BIN": str(fake_claude(tmp_path, "2.0.50"))}
    checks = doctor(env, project, 3)
    assert checks["claude"]["ok"] is True
    version = checks["version"]
    assert version["ok"] is False
    assert "2.0.50 is too old" in str(version["detail"]) and "2.0.73" in str(version["detail"])
    assert "--max-budget-usd" in str(version["detail"])
    assert "claude update" in str(version["fix"])
    # Recent enough for the flags, too old for its sandbox to hold (issue 24).
    env = {**claude_env, "CMS_CLAUDE_BIN": str(fake_claude(tmp_path, "2.1.100"))}
    version = doctor(env, project, 3)["version"]
    assert version["ok"] is False and "older than 2.1.216" in str(version["detail"]), version
    assert "claude update" in str(version["fix"])
    # Its sandbox holds, but too old for the budget to stop background subagents.
    env = {**claude_env, "CMS_CLAUDE_BIN": str(fake_claude(tmp_path, "2.1.216"))}
    checks = doctor(env, project, 0)
    assert checks["version"]["ok"] is True and checks["version"]["warning"] is True
    assert "subagents" in str(checks["version"]["detail"])


def _copy_package(tmp_path: Path, manifest: str | None) -> Path:
    """This cms package in a fresh tree, with ``manifest`` as its plugin.json."""
    tree = tmp_path / "tree"
    shutil.copytree(REPO / "cms", tree / "cms", ignore=shutil.ignore_patterns("__pycache__"))
    if manifest is not None:
        (tree / ".claude-plugin").mkdir()
        (tree / ".claude-plugin" / "plugin.json").write_text(manifest)
    return tree


@pytest.mark.parametrize("manifest", ['{"name": "cms", "version": "1"', None], ids=["bad", "none"])
def test_doctor_plugin_invalid_or_missing(
    manifest: str | None, project: Path, claude_env: dict[str, str], tmp_path: Path
) -> None:
    tree = _copy_package(tmp_path, manifest)
    env = {**claude_env, "PYTHONPATH": str(tree)}
    checks = doctor(env, project, 3)
    plugin = checks["plugin"]
    assert plugin["ok"] is False and plugin["fix"]
    if manifest is None:
        assert "no .claude-plugin/plugin.json" in str(plugin["detail"])
    else:
        assert "fails `claude plugin validate`" in str(plugin["detail"])
        assert "JSON" in str(plugin["detail"])  # the validator's own words
        assert f"claude plugin validate {tree}" in str(plugin["fix"])
    assert all(c["ok"] for name, c in checks.items() if name != "plugin")


def test_doctor_state_folder_unusable(
    project: Path, claude_env: dict[str, str], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"  # chmod does not stop root: use ENOTDIR
    blocker.write_text("not a folder\n")
    env = {**claude_env, "CMS_HOME": str(blocker / "cms-home")}
    checks = doctor(env, project, 3)
    assert checks["state"]["ok"] is False
    assert "CMS_HOME" in str(checks["state"]["fix"])
    assert checks["claude"]["ok"] is True


def test_doctor_root_with_the_full_preset(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cms_home: Path
) -> None:
    env = {**os.environ, "CMS_CLAUDE_BIN": str(fake_claude(tmp_path, "2.1.300"))}
    proj = api.open_project(project, env)

    def root_check() -> dict[str, object]:
        [check] = [c for c in api.doctor(proj) if c.name == "root"]
        return vars(check)

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert root_check()["ok"] is True and root_check()["warning"] is False
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    check = root_check()
    assert check["ok"] is True and check["warning"] is True
    assert "'full' cannot be used" in str(check["detail"])

    def default_full(config: object) -> None:
        config.defaults.preset = Preset.FULL  # type: ignore[attr-defined]

    proj.store.update_project(default_full)
    check = root_check()
    assert check["ok"] is False
    assert "default preset is 'full'" in str(check["detail"])
    assert "normal user" in str(check["fix"]) and "project.toml" in str(check["fix"])
