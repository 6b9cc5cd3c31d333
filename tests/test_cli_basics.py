"""The ``cms`` console script's refusals: exit codes, one-line errors, nothing changed.

Runs the installed ``cms`` as a subprocess, as a user or script would, and checks
DESIGN.md "Commands": exit 2 for bad input (names, budgets, unknown sessions), exit 3
for the environment (claude missing or not runnable, state folder unusable), every
error exactly one line on stderr without a traceback, and no session record left
behind by a refused command. Also ``--json`` on either side of the command name,
``cms doctor`` and ``cms delete``.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import cmsrun
import pytest

from cms.base.paths import ProjectPaths
from cms.engine.models import SessionRecord, Status
from cms.engine.store import Store

BAD_NAMES = {
    "dotdot": "../x",
    "absolute": "/abs",
    "too-long": "a" * 1000,
    "uppercase": "Upper",
    "cyrillic-e": "t\u0435st",
    "leading-dash": "-x",
    "space": "a b",
}

BAD_BUDGETS = {
    "negative-cost": ["--max-cost", "-1"],
    "nan-cost": ["--max-cost", "nan"],
    "inf-cost": ["--max-cost", "inf"],
    "zero-cost": ["--max-cost", "0"],
    "zero-turns": ["--max-turns", "0"],
    "negative-turns": ["--max-turns", "-3"],
    "negative-timeout": ["--timeout", "-5"],
    "nan-timeout": ["--timeout", "nan"],
    "word-cost": ["--max-cost", "lots"],
}


def run_cms(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return cmsrun.run_cms(*args, cwd=cwd, env=env, console=True)


def one_line_error(done: subprocess.CompletedProcess[str], code: int) -> str:
    """Assert exit ``code`` and exactly one line on stderr (no traceback); return it."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("cms: error: "), lines[0]
    return lines[0]


def path_without_claude() -> str:
    """PATH minus every folder that has a ``claude`` in it."""
    keep = [
        d
        for d in os.environ.get("PATH", os.defpath).split(os.pathsep)
        if d and not os.path.exists(os.path.join(d, "claude"))
    ]
    return os.pathsep.join(keep)


def session_files(cms_home: Path) -> list[Path]:
    """Every session record under ``cms_home`` (there are none before cms writes one)."""
    if not cms_home.exists():
        return []
    return sorted(cms_home.glob("projects/*/sessions/*.toml"))


@pytest.fixture
def bare_env(fake_home: Path, cms_home: Path) -> dict[str, str]:
    """A minimal environment with no claude anywhere."""
    return {
        "HOME": str(fake_home),
        "CMS_HOME": str(cms_home),
        "PATH": path_without_claude(),
        "LANG": "C.UTF-8",
    }


def store_for(project: Path, cms_home: Path) -> Store:
    return Store(ProjectPaths.for_project(project, cms_home))


# -- bad input: exit 2 ---------------------------------------------------------------


@pytest.mark.parametrize("name", list(BAD_NAMES.values()), ids=list(BAD_NAMES))
def test_delegate_refuses_a_bad_name(
    name: str, project: Path, claude_env: dict[str, str], cms_home: Path, tmp_path: Path
) -> None:
    done = run_cms(
        "delegate", "say hi", "--name", name, "--background", cwd=project, env=claude_env
    )
    line = one_line_error(done, 2)
    assert "invalid session name" in line
    assert len(line) < 400, "the error echoes a 1000-character name in full"
    assert session_files(cms_home) == []
    assert not list(tmp_path.rglob("x.toml")) and not Path("/abs.toml").exists()


@pytest.mark.parametrize("command", ["show", "result", "delete", "abort", "send"])
@pytest.mark.parametrize("name", ["../x", "t\u0435st"], ids=["dotdot", "cyrillic-e"])
def test_other_commands_refuse_a_bad_name(
    command: str, name: str, project: Path, bare_env: dict[str, str]
) -> None:
    extra = ["hello"] if command == "send" else []
    line = one_line_error(run_cms(command, name, *extra, cwd=project, env=bare_env), 2)
    assert "invalid session name" in line


@pytest.mark.parametrize("option", list(BAD_BUDGETS.values()), ids=list(BAD_BUDGETS))
def test_delegate_refuses_a_bad_budget(
    option: list[str], project: Path, claude_env: dict[str, str], cms_home: Path
) -> None:
    done = run_cms(
        "delegate",
        "say hi",
        "--name",
        "budget",
        *option,
        "--background",
        cwd=project,
        env=claude_env,
    )
    line = one_line_error(done, 2)
    assert option[0] in line, line
    assert session_files(cms_home) == []


@pytest.mark.parametrize("command", ["show", "delete", "send", "result", "abort"])
def test_unknown_session(
    command: str, project: Path, bare_env: dict[str, str], cms_home: Path
) -> None:
    store_for(project, cms_home).create(SessionRecord(name="known", task="t"))
    extra = ["hello"] if command == "send" else []
    line = one_line_error(run_cms(command, "nope", *extra, cwd=project, env=bare_env), 2)
    assert "'nope'" in line
    assert [p.stem for p in session_files(cms_home)] == ["known"]


# -- the environment: exit 3 ----------------------------------------------------------


def test_missing_claude_on_path(project: Path, bare_env: dict[str, str], cms_home: Path) -> None:
    assert shutil.which("claude", path=bare_env["PATH"]) is None
    done = run_cms("delegate", "say hi", "--background", cwd=project, env=bare_env)
    line = one_line_error(done, 3)
    assert "claude" in line and "CMS_CLAUDE_BIN" in line
    assert session_files(cms_home) == []


def test_missing_claude_bin(project: Path, bare_env: dict[str, str], cms_home: Path) -> None:
    env = {**bare_env, "CMS_CLAUDE_BIN": "/nonexistent/claude"}
    line = one_line_error(run_cms("delegate", "say hi", cwd=project, env=env), 3)
    assert "/nonexistent/claude" in line
    assert session_files(cms_home) == []


def _not_executable(folder: Path) -> Path:
    script = folder / "claude-noexec"
    script.write_text("#!/bin/sh\necho '9.9.9 (Claude Code)'\n")
    script.chmod(0o644)
    return script


def _fails_on_version(folder: Path) -> Path:
    script = folder / "claude-broken"
    script.write_text("#!/bin/sh\necho 'node: cannot find module' >&2\nexit 1\n")
    script.chmod(0o755)
    return script


def _silent(folder: Path) -> Path:
    script = folder / "claude-silent"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    return script


@pytest.mark.parametrize("make", [_not_executable, _fails_on_version, _silent])
@pytest.mark.parametrize("command", [["delegate", "say hi"], ["spawn", "later", "say hi"]])
def test_claude_that_does_not_run(
    make: Callable[[Path], Path],
    command: list[str],
    project: Path,
    bare_env: dict[str, str],
    cms_home: Path,
    tmp_path: Path,
) -> None:
    binary = make(tmp_path)
    env = {**bare_env, "CMS_CLAUDE_BIN": str(binary)}
    line = one_line_error(run_cms(*command, "--background", cwd=project, env=env), 3)
    assert str(binary) in line
    assert session_files(cms_home) == []


def test_not_signed_in_is_exit_3_with_no_record_and_no_name_taken(
    project: Path, claude_env: dict[str, str], cms_home: Path, tmp_path: Path
) -> None:
    # The real CLI with no key and an empty HOME: Claude Code is not signed in.
    empty = tmp_path / "empty-home"
    empty.mkdir()
    env = {k: v for k, v in claude_env.items() if k != "ANTHROPIC_API_KEY"}
    env["HOME"] = str(empty)
    for command in (["delegate", "say hi"], ["delegate", "say hi", "--background"]):
        line = one_line_error(run_cms(*command, cwd=project, env=env), 3)
        assert "not signed in" in line and "/login" in line and "ANTHROPIC_API_KEY" in line
        assert session_files(cms_home) == []
    # Signed in (the key), the same task gets the name the refused one would have had.
    started = run_cms("--json", "spawn", "later", cwd=project, env=claude_env)
    assert started.returncode == 0, started.stderr
    done = run_cms("--json", "delegate", "say hi", "--background", cwd=project, env=claude_env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["name"] == "say-hi"
    # A turn of an existing session is refused the same way, and changes nothing.
    [later] = [p for p in session_files(cms_home) if p.stem == "later"]
    before = later.read_bytes()
    line = one_line_error(run_cms("send", "later", "hello", cwd=project, env=env), 3)
    assert "not signed in" in line
    assert later.read_bytes() == before
    assert run_cms("wait", "say-hi", cwd=project, env=claude_env).returncode == 0


def _fake_claude_logging_calls(folder: Path, logged_in: bool) -> tuple[Path, Path]:
    calls = folder / "calls"
    script = folder / "claude-auth"
    answer = json.dumps({"loggedIn": logged_in, "authMethod": "claude.ai" if logged_in else "none"})
    code = 0 if logged_in else 1
    script.write_text(
        f'#!/bin/sh\necho "$@" >> {calls}\n'
        f"if [ \"$1 $2\" = 'auth status' ]; then echo '{answer}'; exit {code}; fi\n"
        "exit 2\n"
    )
    script.chmod(0o755)
    return script, calls


@pytest.mark.parametrize(
    "where",
    ["env", "credentials", "helper", "project-env", "login-key", "bedrock"],
)
def test_signed_in_is_read_from_what_claude_reads_without_starting_it(
    where: str, tmp_path: Path, project: Path
) -> None:
    from cms.engine import signin

    home = tmp_path / f"home-{where}"
    (home / ".claude").mkdir(parents=True)
    env = {"HOME": str(home)}
    if where == "env":
        env["ANTHROPIC_API_KEY"] = "sk-ant-key"
    elif where == "credentials":
        oauth = {"claudeAiOauth": {"accessToken": "t", "refreshToken": "r"}}
        (home / ".claude" / ".credentials.json").write_text(json.dumps(oauth))
    elif where == "helper":
        (home / ".claude" / "settings.json").write_text('{"apiKeyHelper": "~/bin/key"}')
    elif where == "project-env":
        (project / ".claude").mkdir()
        settings = {"env": {"ANTHROPIC_AUTH_TOKEN": "tok"}}
        (project / ".claude" / "settings.local.json").write_text(json.dumps(settings))
    elif where == "login-key":
        (home / ".claude.json").write_text('{"primaryApiKey": "sk-ant-x"}')
    else:
        env["CLAUDE_CODE_USE_BEDROCK"] = "1"
    claude, calls = _fake_claude_logging_calls(tmp_path, logged_in=False)
    found = signin.status(str(claude), env, project)
    assert found.signed_in is True, found
    assert not calls.exists(), "claude was started although a local signal was there"
    signin.check_signed_in(str(claude), env, project)


def test_without_a_local_signal_claude_auth_status_decides_and_is_remembered(
    tmp_path: Path, project: Path
) -> None:
    from cms.base.errors import EnvironmentProblem
    from cms.engine import signin

    env = {"HOME": str(tmp_path)}
    claude, calls = _fake_claude_logging_calls(tmp_path, logged_in=False)
    with pytest.raises(EnvironmentProblem, match="not signed in"):
        signin.check_signed_in(str(claude), env, project, tmp_path)
    claude, calls = _fake_claude_logging_calls(tmp_path, logged_in=True)
    calls.unlink()
    for _ in range(3):  # e.g. a macOS keychain sign-in: asked once, then remembered
        assert signin.status(str(claude), env, project, tmp_path).signed_in is True
    assert calls.read_text().splitlines() == ["auth status"]


def _unusable_cms_home(tmp_path: Path) -> Path:
    """A CMS_HOME that cannot be created or written, also for root."""
    if os.geteuid() != 0:
        home = tmp_path / "readonly"
        home.mkdir()
        home.chmod(0o500)
        return home
    # chmod does not stop root: put the state root under a regular file (ENOTDIR).
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    return blocker / "cms-home"


@pytest.mark.parametrize(
    "command",
    [
        ["delegate", "say hi", "--background"],
        ["spawn", "later"],
        ["budget", "--max-cost", "5"],
        ["list"],
        ["show", "anything"],
    ],
    ids=["delegate", "spawn", "budget", "list", "show"],
)
def test_unusable_state_folder(
    command: list[str], project: Path, claude_env: dict[str, str], tmp_path: Path
) -> None:
    home = _unusable_cms_home(tmp_path)
    env = {**claude_env, "CMS_HOME": str(home)}
    try:
        line = one_line_error(run_cms(*command, cwd=project, env=env), 3)
    finally:
        if home.is_dir():
            home.chmod(0o700)
    assert "cms state" in line and "CMS_HOME" in line, line
    assert not list(tmp_path.rglob("*.toml"))


# -- output --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [["--json", "list"], ["list", "--json"], ["--json", "list", "--status", "failed"]]
)
def test_json_before_or_after_the_command(
    args: list[str], project: Path, bare_env: dict[str, str], cms_home: Path
) -> None:
    store = store_for(project, cms_home)
    store.create(SessionRecord(name="first", task="one", status=Status.COMPLETED))
    store.create(SessionRecord(name="second", task="two", status=Status.FAILED, cost_usd=0.5))
    done = run_cms(*args, cwd=project, env=bare_env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    data = json.loads(done.stdout)
    assert isinstance(data, list)
    expected = ["second"] if "--status" in args else ["first", "second"]
    assert [s["name"] for s in data] == expected
    for key in ("name", "status", "preset", "model", "task", "response", "error", "cost_usd",
                "turns", "max_cost_usd", "max_turns", "session_id", "cwd", "pid",
                "created_at", "updated_at"):  # fmt: skip
        assert key in data[0], key


def test_json_list_of_an_empty_project(project: Path, bare_env: dict[str, str]) -> None:
    for args in (["--json", "list"], ["list", "--json"]):
        done = run_cms(*args, cwd=project, env=bare_env)
        assert (done.returncode, json.loads(done.stdout)) == (0, [])


def _doctor(env: dict[str, str], project: Path, code: int) -> dict[str, dict[str, object]]:
    done = run_cms("doctor", "--json", cwd=project, env=env)
    assert done.returncode == code, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    checks = json.loads(done.stdout)
    assert isinstance(checks, list)
    for check in checks:
        assert set(check) >= {"check", "ok", "detail", "fix"}
        assert isinstance(check["ok"], bool) and isinstance(check["detail"], str)
    return {c["check"]: c for c in checks}


def test_doctor_with_claude(project: Path, claude_env: dict[str, str]) -> None:
    checks = _doctor(claude_env, project, 0)
    assert checks["claude"]["ok"] is True
    assert claude_env["CMS_CLAUDE_BIN"] in str(checks["claude"]["detail"])
    assert all(c["ok"] for c in checks.values())
    text = run_cms("--json", "doctor", cwd=project, env=claude_env)
    assert text.returncode == 0 and json.loads(text.stdout)


def test_doctor_without_claude(project: Path, bare_env: dict[str, str]) -> None:
    checks = _doctor(bare_env, project, 3)
    assert checks["claude"]["ok"] is False
    assert checks["claude"]["fix"]
    assert checks["state"]["ok"] is True
    text = run_cms("doctor", cwd=project, env=bare_env)
    assert text.returncode == 3
    assert "claude" in text.stdout and "Traceback" not in text.stderr


# -- delete ----------------------------------------------------------------------------


def test_delete_removes_record_and_logs(
    project: Path, bare_env: dict[str, str], cms_home: Path
) -> None:
    store = store_for(project, cms_home)
    store.create(SessionRecord(name="doomed", task="t", status=Status.COMPLETED))
    store.create(SessionRecord(name="kept", task="t", status=Status.COMPLETED))
    paths = store.paths
    for name in ("doomed", "kept"):
        paths.log_file(name).write_text('{"type": "result"}\n')
        paths.stderr_file(name).write_text("warning\n")

    done = run_cms("delete", "doomed", cwd=project, env=bare_env)
    assert done.returncode == 0, done.stderr
    assert not paths.session_file("doomed").exists()
    assert not paths.log_file("doomed").exists()
    assert not paths.stderr_file("doomed").exists()
    leftovers = [p.name for p in cms_home.rglob("*doomed*")]
    assert leftovers == []
    assert paths.session_file("kept").exists() and paths.log_file("kept").exists()

    again = run_cms("delete", "doomed", cwd=project, env=bare_env)
    one_line_error(again, 2)
    listed = run_cms("--json", "list", cwd=project, env=bare_env)
    assert [s["name"] for s in json.loads(listed.stdout)] == ["kept"]


def test_delete_refuses_a_running_session(
    project: Path, bare_env: dict[str, str], cms_home: Path
) -> None:
    store = store_for(project, cms_home)
    # A live pid (this test process) so the record is not seen as interrupted.
    store.create(SessionRecord(name="busy", task="t", status=Status.RUNNING, pid=os.getpid()))
    line = one_line_error(run_cms("delete", "busy", cwd=project, env=bare_env), 2)
    assert "abort" in line
    assert store.paths.session_file("busy").exists()
    assert stat.S_IMODE(store.paths.session_file("busy").stat().st_mode) == 0o600
