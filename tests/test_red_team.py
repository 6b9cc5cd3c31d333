"""What the red team of issue 24 found a hostile child could still do, each now held.

Real CLI, real sandbox, the stand-in API scripting the child (the escape classes of
remounts, ``unshare`` and a replaced ``.git`` are in ``test_sandbox_e2e.py``'s hostile
child and its run against the version floor):

- an older Claude Code than the floor is refused before anything is made (exit 3, one
  line naming its version and ``claude update``), and ``cms doctor`` says so;
- a child's commands cannot read ``$CMS_HOME``, so cannot take its record's lock;
- ``cms abort`` stops a turn's processes within 10 s while another process holds the
  record's lock, and the supervisor keeps its turn meanwhile;
- text a child controls (tool inputs, answers) with lone surrogates, NULs and invalid
  UTF-8 reaches the record and the logs without killing the supervisor;
- the API key is in no sandboxed command's environment, its own nor any process's it
  can see, and no tool brings it to the model;
- ``git branch tmp && git branch -D tmp`` is ordinary work.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest
from claude_version import install_claude
from cmsrun import Cms, processes_of_session, tool_results, wait_gone
from standin import StandIn, error, text, tool_use

from cms.base.paths import ProjectPaths
from cms.engine.streamjson import denial
from cms.policy import sandbox
from cms.policy.sandbox import MIN_SANDBOX_VERSION

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None or shutil.which("socat") is None,
    reason="Claude Code's sandbox needs bubblewrap (bwrap) and socat",
)

API_KEY = "sk-test-not-a-real-key"  # what tests/conftest.py gives every child
#: The version the red team found open as root (npm still serves it).
OLD_VERSION = "2.1.197"


@pytest.fixture
def cms(claude_env: dict[str, str], project: Path) -> Cms:
    # This interpreter first on PATH (the children start python), and no cms MCP
    # server for the children (its start costs each turn about 2 s).
    here = str(Path(sys.executable).parent)
    runner = Cms({**claude_env, "PATH": os.pathsep.join([here, claude_env["PATH"]])}, project)
    runner.ok("budget", "--max-depth", "1")
    return runner


def bash_calls(marker: str, commands: list[str], last: str, standin: StandIn) -> None:
    standin.script(marker, [*(tool_use("Bash", {"command": c}) for c in commands), text(last)])


# ------------------------------------------------------------ the version floor


def test_an_older_claude_code_than_the_floor_starts_no_sandboxed_preset(
    cms: Cms, project: Path, cms_home: Path
) -> None:
    old = install_claude(OLD_VERSION)
    env = {"CMS_CLAUDE_BIN": str(old)}
    floor = ".".join(map(str, MIN_SANDBOX_VERSION))
    for preset in ("edit", "review", "read-only", "plan"):
        before = sorted(p.name for p in cms_home.rglob("*.toml"))
        done = cms.run("delegate", "anything", "--name", f"old-{preset}", "--preset", preset,
                       env=env)  # fmt: skip
        assert done.code == 3, (preset, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert OLD_VERSION in lines[0] and floor in lines[0] and "claude update" in lines[0]
        assert sorted(p.name for p in cms_home.rglob("*.toml")) == before
    # Without the sandbox, on purpose, the hook alone holds it: that still starts.
    spawned = cms.run("--json", "spawn", "old-nosb", "--no-sandbox", env=env)
    assert spawned.code == 0, spawned.stderr
    # doctor says why, and what to do.
    doctor = cms.run("--json", "doctor", env=env)
    checks = {c["check"]: c for c in json.loads(doctor.stdout)}
    version = checks["version"]
    assert not version["ok"] and OLD_VERSION in version["detail"], version
    assert floor in version["detail"] and "claude update" in version["fix"], version


def test_the_floor_is_compared_as_a_version() -> None:
    assert sandbox.version_problem("2.1.216 (Claude Code)") is None
    assert sandbox.version_problem("2.1.1000") is None and sandbox.version_problem("3.0.0") is None
    for old in ("2.1.215", "2.1.9", "1.9.999", "not a version", ""):
        problem = sandbox.version_problem(old)
        assert problem is not None and "claude update" in problem and "2.1.216" in problem, old


def test_every_sandboxed_preset_denies_reading_state_and_the_key(tmp_path: Path) -> None:
    state = tmp_path / "cms-home"
    state.mkdir()
    for preset in ("edit", "review", "read-only", "plan"):
        compiled = sandbox.settings(preset, cwd="/w", temp_dir="/t", state_dir=str(state))
        assert compiled is not None
        assert compiled["filesystem"]["denyRead"] == [str(state)]
        denied = {e["name"]: e["mode"] for e in compiled["credentials"]["envVars"]}
        assert denied == dict.fromkeys(sandbox.CREDENTIALS, "deny")
        assert "ANTHROPIC_API_KEY" in denied


# ------------------------------------------------------------ cms state and its locks

#: Takes the lock of every record it finds (found by pieces, as a program would,
#: so that the hook's early refusal does not see cms state named).
LOCK_ATTEMPT = (
    'python3 -c "import fcntl,glob,os\n'
    "try:\n"
    "    ps=glob.glob(os.environ['CMS'+'_HOME']+'/pro'+'jects/*/sess'+'ions/*.to'+'ml')\n"
    "    print('FOUND', len(ps))\n"
    "    f=open(ps[0]+'.lo'+'ck')\n"
    "    fcntl.flock(f, fcntl.LOCK_EX)\n"
    "    print('LOCKED')\n"
    "except Exception as e:\n"
    "    print('NO-LOCK', type(e).__name__)\n\""
)


def test_a_childs_commands_cannot_read_or_lock_cms_state(
    cms: Cms, standin: StandIn, project: Path, cms_home: Path
) -> None:
    state = ProjectPaths.for_project(project, cms_home)
    commands = [
        'ls -a "$CMS_HOME"/projects/*/sessions/; echo listed',
        'cat "$CMS_HOME"/projects/*/sessions/peek.toml; echo read',
        'find "$CMS_HOME" -name "*.toml" | head; echo found',
        LOCK_ATTEMPT,
    ]
    bash_calls("T-PEEK", commands, "looked", standin)
    out = cms.ok("delegate", "peek T-PEEK", "--name", "peek", "--max-cost", "2", timeout=120)
    assert out["status"] == "completed" and out["response"] == "looked", out
    results = tool_results(cms, "peek")
    assert len(results) == len(commands)
    seen = " ".join(content for _, content in results)
    assert "NO-LOCK" in seen and "LOCKED" not in seen.replace("NO-LOCK", ""), seen
    assert "max_cost_usd" not in seen and "FOUND 0" in seen, seen
    assert state.session_file("peek").exists()


def hold_lock(path: Path, seconds: float, held: threading.Event) -> threading.Thread:
    """Hold ``path``'s record lock from another process's point of view (this one)
    for ``seconds``, as a stuck cms or a hostile program would."""
    from filelock import FileLock

    def hold() -> None:
        lock = FileLock(str(path) + ".lock")
        with lock:
            held.set()
            time.sleep(seconds)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert held.wait(10)
    return thread


def test_abort_stops_the_turn_within_10_s_while_the_record_lock_is_held(
    cms: Cms, standin: StandIn, project: Path, cms_home: Path
) -> None:
    command = "python3 -c 'import time; time.sleep(120)'"
    standin.script("T-LOCKED", [tool_use("Bash", {"command": command}), text("done")])
    cms.ok("delegate", "sleep T-LOCKED", "--name", "held", "--background")
    record = cms.wait_field("held", "child_pid")
    deadline = time.monotonic() + 30
    while len(processes_of_session("held")) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    path = ProjectPaths.for_project(project, cms_home).session_file("held")
    held = threading.Event()
    holder = hold_lock(path, 16.0, held)
    # While the lock is held the supervisor keeps its turn: alive, the turn running.
    time.sleep(2.0)
    assert processes_of_session("held"), "the turn died while the lock was held"
    os.kill(record["pid"], 0)
    # abort stops every process of the turn within 10 s, though the lock is still held.
    started = time.monotonic()
    gone_at: list[float] = []

    def watch() -> None:
        wait_gone(lambda: processes_of_session("held"), timeout=20)
        gone_at.append(time.monotonic() - started)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    aborted = cms.run("--json", "abort", "held", timeout=60)
    watcher.join(25)
    assert gone_at and gone_at[0] < 10.0, gone_at
    print(f"the turn's processes were gone {gone_at[0]:.1f} s after cms abort began")
    assert wait_gone(lambda: processes_of_session("held"), timeout=1) == []
    # Once the lock is free the abort is recorded.
    holder.join(30)
    assert aborted.code == 0, aborted.stderr
    assert aborted.json()["status"] == "aborted"
    assert cms.show("held")["status"] == "aborted"


# ------------------------------------------------------- text a child controls

SURROGATE = "\ud800"
BAD_BYTES = b"ok \xff\xfe\xc3( bad utf-8 \x00 nul\n"


def test_surrogates_nuls_and_invalid_utf8_reach_the_record_without_harm(
    cms: Cms, standin: StandIn, project: Path, cms_home: Path
) -> None:
    (project / "bad.bin").write_bytes(BAD_BYTES)
    odd = f"odd{SURROGATE}name\x00x"
    replies = [
        # A Write and a Read whose paths hold a lone surrogate (and a NUL).
        tool_use("Write", {"file_path": str(project / f"w{SURROGATE}.txt"), "content": odd}),
        tool_use("Read", {"file_path": str(project / f"r{SURROGATE}.txt")}),
        # Invalid UTF-8 read back from a file, and printed by a command.
        tool_use("Read", {"file_path": str(project / "bad.bin")}),
        tool_use("Bash", {"command": f"cat bad.bin; echo '{SURROGATE}'; printf 'a\\000b'"}),
        # A command line holding a surrogate and a NUL, refused by the hook.
        tool_use("Bash", {"command": f"git push origin {odd}"}),
        # The answer itself.
        text(f"done {SURROGATE} with \x00 and \udfff in it"),
    ]
    standin.script("T-ODD", replies)
    out = cms.ok("delegate", "odd T-ODD", "--name", "odd", "--max-cost", "2", timeout=120)
    assert out["status"] == "completed", out
    assert out["response"].startswith("done ") and "\\ud800" in out["response"], out
    # The record reads back, through cms and by hand; so do the logs.
    state = ProjectPaths.for_project(project, cms_home)
    raw = state.session_file("odd").read_bytes()
    raw.decode("utf-8")
    shown = cms.show("odd")
    assert shown["status"] == "completed" and shown["denials"] >= 1, shown
    for args in (("logs", "odd"), ("result", "odd"), ("show", "odd"), ("list",)):
        done = cms.run(*args)
        assert done.code == 0 and "Traceback" not in done.stderr, (args, done.stderr)
    assert len(tool_results(cms, "odd")) == 5
    # A second turn through the same session still runs.
    standin.script("T-ODD2", [text(f"again {SURROGATE}")])
    again = cms.ok("send", "odd", "again T-ODD2", timeout=120)
    assert again["status"] == "completed" and again["turns"] >= 2, again
    # An error whose text holds them ends the turn failed, with that error recorded.
    body = {"type": "error", "error": {"type": "api_error", "message": f"bad {odd}"}}
    standin.script("T-ODD3", [error(500, body)])
    failed = cms.run("--json", "delegate", "fail T-ODD3", "--name", "odd-err", timeout=120)
    assert failed.code == 1, failed.stderr
    out = failed.json()
    # (Claude Code 2.1.332 drops the surrogate and the NUL from an API error itself.)
    assert out["status"] == "failed" and "bad odd" in out["error"], out
    assert "Traceback" not in cms.run("logs", "odd-err").stderr


# -------------------------------------------------------------- the API key


def test_the_api_key_is_in_no_sandboxed_commands_environment(
    cms: Cms, standin: StandIn, project: Path
) -> None:
    commands = [
        "env > env.txt",
        "tr '\\0' '\\n' < /proc/self/environ > self.txt",
        # Its parent in the sandbox's own pid namespace (bubblewrap's init there).
        "{ tr '\\0' '\\n' < /proc/$PPID/environ; } > parent.txt 2>&1; true",
        "for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f; done > all.txt 2>/dev/null; true",
        'echo "key=$ANTHROPIC_API_KEY" > var.txt',
        "python3 -c \"import os; open('py.txt','w').write(repr(dict(os.environ)))\"",
    ]
    # Claude Code's own file tools run outside the sandbox, in claude's process: they
    # must not read its environment, named directly or through a link in the tree.
    links = "ln -s /proc/self/environ env-link; ln -s /proc/self self-link; true"
    file_tools = [
        tool_use("Read", {"file_path": "/proc/self/environ"}),
        tool_use("Bash", {"command": links}),
        tool_use("Read", {"file_path": str(project / "env-link")}),
        tool_use("Read", {"file_path": str(project / "self-link" / "environ")}),
        tool_use("Grep", {"pattern": "API_KEY", "path": str(project), "output_mode": "content"}),
    ]
    bash = [tool_use("Bash", {"command": c}) for c in commands]
    standin.script("T-KEY", [*bash, *file_tools, text("looked")])
    out = cms.ok("delegate", "look T-KEY", "--name", "key", "--max-cost", "2", timeout=120)
    # claude itself still has the key: the turn ran against the API.
    assert out["status"] == "completed" and out["response"] == "looked", out
    results = tool_results(cms, "key")
    assert len(results) == len(commands) + len(file_tools)
    for (is_error, content), command in zip(results, commands, strict=False):
        assert not is_error and denial(content) is None, (command, content)
    # Nothing the model was sent holds the key (the log is redacted; the API is not).
    sent = [str(b.get("content")) for r in standin.requests_for("T-KEY")
            for b in r.blocks("tool_result")]  # fmt: skip
    assert len(sent) >= len(results) and not [c for c in sent if API_KEY in c]
    for name in ("env.txt", "self.txt", "parent.txt", "all.txt", "py.txt"):
        data = (project / name).read_text(errors="replace")
        # (The sandbox may show a process its own environ as empty, and its parent's
        # not at all: then there is nothing to find there.)
        assert name in ("self.txt", "parent.txt") or "CMS_SESSION" in data, (name, data[:300])
        assert API_KEY not in data, name
    assert (project / "var.txt").read_text() == "key=\n"


# ------------------------------------------------------------- ordinary work


def test_a_branch_made_and_deleted_is_ordinary_work(
    cms: Cms, standin: StandIn, project: Path
) -> None:
    commands = ["git branch tmp && git branch -D tmp && echo deleted-ok"]
    bash_calls("T-BRANCH", commands, "done", standin)
    out = cms.ok("delegate", "branch T-BRANCH", "--name", "br", "--max-cost", "2", timeout=120)
    assert out["status"] == "completed" and out["denials"] == 0, out
    [(is_error, content)] = tool_results(cms, "br")
    assert not is_error and "deleted-ok" in content, content
