"""Reliability under load and faults: cms loses nothing and leaks no process.

Runs the real Claude Code CLI under cms's supervisors against the loopback stand-in:

- load: 20 background delegations started at once in one project all reach a final
  status, the project's spend is the sum of the sessions' spend, every record and log
  is intact (the wall time and each supervisor's peak memory are printed; the figures
  for the README come from ``benchmarks/bench_load.py``);
- faults: SIGKILL of a supervisor (``interrupted``), of the ``claude`` child and of a
  tool it runs (``failed``), of the ``cms`` command in the middle of a write (records
  stay parseable, old or new); the API answering 500, 529 or cutting the stream
  (``failed`` with the CLI's own error); a full disk and a read-only ``$CMS_HOME``
  (exit 3, one line, nothing changed).

After every test, no process started by it is left: an autouse fixture looks for
every live process whose environment carries this test's ``CMS_HOME`` (cms commands,
supervisors, claude children and the tools they run all do), and tests check the pids
they know by number too.

Already covered elsewhere and not repeated here: a killed supervisor then ``resume``
(test_engine), SIGKILL of a store writer at the library level (test_store), an
unusable ``CMS_HOME`` under a regular file (test_cli_basics).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cmsrun import CMS, Cms, processes_of_session, processes_with_home, wait_gone
from standin import Reply, StandIn, drop, error, expected_cost, text, tool_use

from cms.base.paths import ProjectPaths

MODEL = "claude-sonnet-4-5"
LOAD_SESSIONS = 20


# -- fixtures: the test's processes ---------------------------------------------------


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in (b"Z", b"X")


def describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            command = handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return f"{pid}: (gone)"
    return f"{pid}: {command[:150]}"


@pytest.fixture(autouse=True)
def no_process_left(cms_home: Path) -> Iterator[None]:
    """Fail the test if any process it started is still alive a few seconds after."""
    yield
    left = wait_gone(lambda: processes_with_home(cms_home), timeout=15)
    for pid in left:  # do not leave them to the next test either
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert left == [], "processes left behind:\n" + "\n".join(describe(p) for p in left)


def state_paths(project: Path, cms_home: Path) -> ProjectPaths:
    return ProjectPaths.for_project(project, cms_home)


def log_events(paths: ProjectPaths, name: str) -> list[dict[str, Any]]:
    """Every line of the session's raw log, each of which must be a JSON object."""
    events = []
    for line in paths.log_file(name).read_text().splitlines():
        event = json.loads(line)
        assert isinstance(event, dict), line
        events.append(event)
    return events


def readable_record(paths: ProjectPaths, name: str) -> dict[str, Any]:
    with open(paths.session_file(name), "rb") as handle:
        return tomllib.load(handle)


# -- load -------------------------------------------------------------------------------


class SupervisorPeaks(threading.Thread):
    """Samples the peak RSS (VmHWM) of every supervisor: the parent of a claude child."""

    def __init__(self, home: Path) -> None:
        super().__init__(daemon=True)
        self.home = home
        self.peak_kb: dict[int, int] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for pid in processes_with_home(self.home):
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as handle:
                        if b"stream-json" not in handle.read():
                            continue
                    with open(f"/proc/{pid}/stat", "rb") as handle:
                        parent = int(handle.read().rsplit(b")", 1)[1].split()[1])
                    with open(f"/proc/{parent}/cmdline", "rb") as handle:
                        if b"stream-json" in handle.read():
                            continue  # a process claude forked: its parent is claude
                    with open(f"/proc/{parent}/status") as handle:
                        hwm = next(int(x.split()[1]) for x in handle if x.startswith("VmHWM:"))
                except (OSError, ValueError, StopIteration, IndexError):
                    continue
                self.peak_kb[parent] = max(self.peak_kb.get(parent, 0), hwm)
            time.sleep(0.05)


@pytest.mark.slow
def test_twenty_background_delegations_lose_nothing(
    cms: Cms, standin: StandIn, project: Path, cms_home: Path
) -> None:
    cms.ok("budget", "--max-parallel", str(LOAD_SESSIONS))
    scripts: dict[str, list[Reply]] = {}
    for i in range(LOAD_SESSIONS):
        name = f"load-{i:02d}"
        target = project / f"{name}.txt"
        scripts[name] = [
            tool_use(
                "Write",
                {"file_path": str(target), "content": f"{name}\n"},
                input_tokens=500 + 37 * i,
                output_tokens=20 + i,
            ),
            text(f"answer {i}", input_tokens=900 + 53 * i, output_tokens=5 + 2 * i),
        ]
        standin.script(f"LOAD-{i:02d}-MARK", scripts[name])

    peaks = SupervisorPeaks(cms_home)
    peaks.start()
    started = time.monotonic()
    launches = [
        subprocess.Popen(
            [
                *CMS,
                "--json",
                "delegate",
                f"load task LOAD-{i:02d}-MARK",
                "--name",
                name,
                "--background",
                "--model",
                MODEL,
            ],
            cwd=project,
            env=cms.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, name in enumerate(scripts)
    ]
    for proc in launches:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        # A turn this fast may already be over when the command reads its record back.
        assert json.loads(out)["status"] in ("running", "completed"), out
    records = cms.ok("wait", *scripts, "--timeout", "150", timeout=180)
    wall = time.monotonic() - started
    peaks.done.set()
    peaks.join()

    # Every session reached a final status, with its own answer and spend.
    assert sorted(r["name"] for r in records) == sorted(scripts)
    for r in records:
        assert r["status"] == "completed", r
        i = int(r["name"][-2:])
        assert r["response"] == f"answer {i}"
        assert r["cost_usd"] == pytest.approx(expected_cost(MODEL, scripts[r["name"]]), abs=1e-12)
        assert r["turns"] == 2 and r["pid"] is None
        assert (project / f"{r['name']}.txt").read_text() == f"{r['name']}\n"

    # The project's spend is the sum of the sessions' spend, to the micro-dollar.
    listed = cms.ok("list")
    session_sum = sum(r["cost_usd"] for r in listed)
    assert session_sum == pytest.approx(sum(expected_cost(MODEL, s) for s in scripts.values()))
    report = cms.ok("cost")
    assert report["total_cost_usd"] == round(session_sum, 6)
    assert sum(row["cost_usd"] for row in report["rows"]) == pytest.approx(session_sum, abs=1e-5)
    assert cms.ok("budget")["spent_usd"] == round(session_sum, 6)

    # No record lost or garbled: 20 files that parse, each naming itself, each log whole.
    paths = state_paths(project, cms_home)
    files = sorted(p.name for p in paths.sessions_dir.glob("*.toml"))
    assert files == sorted(f"{n}.toml" for n in scripts)
    for name in scripts:
        data = readable_record(paths, name)
        assert data["name"] == name and data["status"] == "completed"
        assert f"LOAD-{name[-2:]}-MARK" in data["task"]
        events = log_events(paths, name)
        results = [e for e in events if e.get("type") == "result"]
        assert len(results) == 1 and results[0]["session_id"] == data["session_id"]
        assert events[-1] == {"type": "cms_outcome", "status": "completed", "error": None}
    assert [p.name for p in paths.sessions_dir.iterdir() if p.name.endswith(".tmp")] == []

    peak_mib = sorted(kb / 1024 for kb in peaks.peak_kb.values())
    assert len(peak_mib) >= LOAD_SESSIONS // 2, "the sampler saw too few supervisors"
    print(
        f"\n{LOAD_SESSIONS} background delegations: all final after {wall:.1f}s wall; "
        f"supervisor peak RSS min {peak_mib[0]:.1f} / median {statistics.median(peak_mib):.1f}"
        f" / max {peak_mib[-1]:.1f} MiB ({len(peak_mib)} sampled)"
    )
    for r in records:
        assert wait_gone(lambda r=r: processes_of_session(r["name"]), timeout=5) == []


def _wait_for_file(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_a_new_session_the_queue_started_is_not_started_twice(
    cms: Cms, standin: StandIn, project: Path, cms_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under load, `cms delegate` writes the new record (queued) and then waits for the
    # queue lock; a supervisor finishing meanwhile starts queued sessions, this one
    # too. The delegate must then not start it a second time (it did: the turn ran
    # twice, the spend doubled). Here the test plays that supervisor, deterministically.
    from cms.engine import launcher, lifecycle
    from cms.engine.store import Store

    for key, value in cms.env.items():
        monkeypatch.setenv(key, value)
    standin.script("T-TWICE", [text("once", delay=1)])
    paths = state_paths(project, cms_home)
    store = Store(paths)
    store.ensure_dirs()
    with store.locked(paths.root / "queue"):
        proc = subprocess.Popen(
            [*CMS, "--json", "delegate", "run me T-TWICE", "--name", "twice", "--background"],
            cwd=project,
            env=cms.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_for_file(paths.session_file("twice"))
        assert store.load("twice").status.value == "queued"
        # What launcher.start_queued does, while the delegate waits for the lock:
        store.update("twice", lambda r: lifecycle.begin(r))
        launcher.spawn_supervisor(store, "twice")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out)["status"] in ("running", "completed")
    [final] = cms.ok("wait", "twice")
    assert final["status"] == "completed" and final["exchanges"] == 1
    assert len(standin.requests_for("T-TWICE")) == 1, "the first turn ran twice"


def test_concurrent_sends_start_one_turn(
    cms: Cms, standin: StandIn, project: Path, cms_home: Path
) -> None:
    from cms.engine.store import Store

    standin.script("T-RACE", [text("first"), text("second", delay=1), text("third")])
    cms.ok("delegate", "race T-RACE", "--name", "race")
    paths = state_paths(project, cms_home)
    with Store(paths).locked(paths.root / "queue"):
        # Both pass their checks (the session is completed), then wait for the lock.
        senders = [
            subprocess.Popen(
                [*CMS, "send", "race", f"message {i}", "--background"],
                cwd=project,
                env=cms.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(2)
        ]
        time.sleep(3)
    results = [(*p.communicate(timeout=60), p.returncode) for p in senders]
    codes = sorted(code for _out, _err, code in results)
    assert codes == [0, 2], results
    [refusal] = [err for _out, err, code in results if code == 2]
    assert refusal.startswith("cms: error: ") and len(refusal.strip().splitlines()) == 1
    [final] = cms.ok("wait", "race")
    assert final["exchanges"] == 2 and final["response"] == "second"
    assert len(standin.requests_for("T-RACE")) == 2


# -- SIGKILL of a supervisor, of claude, of a tool ------------------------------------------


def test_sigkilled_supervisor_mid_stream_leaves_a_readable_interrupted_record(
    cms: Cms, standin: StandIn, project: Path, cms_home: Path
) -> None:
    # Many quick tool calls keep the supervisor rewriting the record and appending to
    # the log; it is killed somewhere in the middle of that.
    readme = str(project / "README.md")
    standin.script(
        "T-KILLSUP",
        [tool_use("Read", {"file_path": readme}) for _ in range(40)] + [text("never", delay=60)],
    )
    cms.ok("delegate", "stream T-KILLSUP", "--name", "streamer", "--background")
    record = cms.wait_field("streamer", "child_pid")
    standin.wait_for("T-KILLSUP", count=random.randint(3, 20), timeout=60)
    supervisor, child = record["pid"], record["child_pid"]
    os.kill(supervisor, signal.SIGKILL)
    assert wait_gone(lambda: [supervisor] if pid_alive(supervisor) else [], timeout=5) == []

    paths = state_paths(project, cms_home)
    data = readable_record(paths, "streamer")  # parseable as it was left
    assert data["status"] == "running" and data["pid"] == supervisor
    events = log_events(paths, "streamer")  # every logged line whole
    assert any(e.get("type") == "assistant" for e in events)

    out = cms.show("streamer")  # the first read finds it dead, records it, stops claude
    assert out["status"] == "interrupted"
    assert "supervisor died" in out["error"]
    assert out["pid"] is None and out["child_pid"] is None
    assert wait_gone(lambda: [child] if pid_alive(child) else [], timeout=10) == []
    assert wait_gone(lambda: processes_of_session("streamer")) == []
    assert readable_record(paths, "streamer")["status"] == "interrupted"


def _tree_kill(pid: int) -> list[int]:
    """What Claude Code does to a command it stops (Esc on a running hook, a Bash
    command of a `claude -p` that ends): SIGTERM to the command's process group and
    to every process below it by parent pid. Returns the pids signalled."""
    from cms.engine import procs

    tree = [pid, *procs.descendants(pid)]
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    for member in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(member, signal.SIGTERM)
    return tree


def test_a_tree_kill_of_a_foreground_delegate_does_not_reach_its_turn(
    cms: Cms, standin: StandIn, project: Path
) -> None:
    standin.script("T-TREEKILL", [text("survived it", delay=6)])
    starter = subprocess.Popen(
        [*CMS, "delegate", "outlive the starter T-TREEKILL", "--name", "survivor"],
        cwd=project, env=cms.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    record = cms.wait_field("survivor", "child_pid")
    assert starter.poll() is None, "the foreground delegate should still be waiting"
    tree = _tree_kill(starter.pid)
    starter.communicate(timeout=30)
    assert starter.returncode != 0  # the starter itself was stopped
    assert record["pid"] not in tree and record["child_pid"] not in tree
    [out] = cms.ok("wait", "survivor", timeout=120)
    assert out["status"] == "completed", out["error"]
    assert out["response"] == "survived it"


def test_claude_stopped_by_a_signal_says_so(cms: Cms, standin: StandIn) -> None:
    standin.script("T-SIGTERM", [text("never", delay=60)])
    cms.ok("delegate", "wait T-SIGTERM", "--name", "termed", "--background")
    record = cms.wait_field("termed", "child_pid")
    os.kill(record["child_pid"], signal.SIGTERM)
    out = cms.wait_status("termed", {"failed"}, timeout=30)
    assert out["error"].startswith("claude was "), out["error"]
    assert "by SIGTERM" in out["error"] and "before it finished" in out["error"]


def test_sigkilled_claude_child_fails_and_its_tool_is_stopped_too(
    cms: Cms, standin: StandIn, project: Path, cms_home: Path
) -> None:
    marker = project / "tool-finished"
    command = f"python3 -c 'import time; time.sleep(60)'; touch {marker}"
    standin.script("T-KILLCHILD", [tool_use("Bash", {"command": command}), text("never")])
    cms.ok("delegate", "sleep T-KILLCHILD", "--name", "orphan", "--background")
    record = cms.wait_field("orphan", "child_pid")
    child, supervisor = record["child_pid"], record["pid"]
    deadline = time.monotonic() + 30
    tools: list[int] = []
    while not tools and time.monotonic() < deadline:
        tools = [p for p in processes_of_session("orphan") if "time.sleep(60)" in describe(p)]
        time.sleep(0.1)
    assert tools, "the Bash tool never started"

    os.kill(child, signal.SIGKILL)
    out = cms.wait_status("orphan", {"failed"}, timeout=30)
    assert out["error"].startswith("claude was killed by SIGKILL"), out["error"]
    assert out["pid"] is None and out["child_pid"] is None
    # The supervisor ends, and takes what claude started with it.
    gone = [supervisor, child, *tools]
    assert wait_gone(lambda: [p for p in gone if pid_alive(p)], timeout=15) == []
    assert wait_gone(lambda: processes_of_session("orphan")) == []
    assert not marker.exists()
    assert readable_record(state_paths(project, cms_home), "orphan")["status"] == "failed"


# -- SIGKILL of the cms command mid-write -----------------------------------------------------


def _duration(cms: Cms, *args: str) -> float:
    started = time.monotonic()
    done = cms.run(*args)
    assert done.code == 0, done.stderr
    return time.monotonic() - started


def _run_and_kill(cms: Cms, args: list[str], after: float) -> None:
    proc = subprocess.Popen(
        [*CMS, *args],
        cwd=cms.cwd,
        env=cms.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(after)
    proc.kill()
    proc.wait(10)


def _no_torn_temp_files(folder: Path) -> None:
    # A writer killed between writing its temp file and renaming it leaves the temp
    # file (a dot-file that nothing reads); never a visible half file.
    stray = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert all(n.startswith(".") for n in stray), stray


def test_sigkilled_cms_budget_leaves_old_or_new_limits(
    cms: Cms, project: Path, cms_home: Path
) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    length = _duration(cms, "budget", "--max-cost", "1")
    paths = state_paths(project, cms_home)
    previous = 1.0
    for i in range(12):
        value = float(i + 2)
        _run_and_kill(cms, ["budget", "--max-cost", str(value)], rng.uniform(0, length * 1.3))
        with open(paths.project_file, "rb") as handle:
            limits = tomllib.load(handle)["limits"]
        assert limits["max_cost_usd"] in (previous, value), f"seed {seed}, round {i}: {limits}"
        assert limits["max_parallel"] == 4
        previous = limits["max_cost_usd"]
        _no_torn_temp_files(paths.root)
    # The lock of a killed writer is free: the next change goes through at once.
    assert cms.ok("budget", "--max-cost", "99")["max_cost_usd"] == 99.0


def test_sigkilled_cms_continue_leaves_old_or_raised_budget(
    cms: Cms, standin: StandIn, project: Path, cms_home: Path
) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    standin.script("T-CONTKILL", [text("first")])  # later turns get the default "done"
    cms.ok("delegate", "start T-CONTKILL", "--name", "loop", "--max-cost", "1")
    paths = state_paths(project, cms_home)
    length = 0.6
    previous = 1.0
    for i in range(6):
        args = ["continue", "loop", f"round {i}", "--add-cost", "0.5", "--background"]
        _run_and_kill(cms, args, rng.uniform(0, length))
        data = readable_record(paths, "loop")
        assert data["max_cost_usd"] in (previous, previous + 0.5), f"seed {seed}, round {i}"
        previous = data["max_cost_usd"]
        # Killed before the turn began: nothing else changed. Killed after: the detached
        # supervisor runs the turn to its end regardless.
        # (`wait` exits 1 for an interrupted session, so its output is read as is.)
        [final] = cms.run("--json", "wait", "loop", "--timeout", "60", timeout=90).json()
        assert final["status"] in ("completed", "interrupted"), (seed, i, final)
        if final["status"] == "interrupted":
            # Killed in the instant between marking the turn and starting its
            # supervisor: the launch grace ran out and a read recorded it. Still whole.
            break
        _no_torn_temp_files(paths.sessions_dir)
    assert readable_record(paths, "loop")["name"] == "loop"


def test_sigkilled_cms_delete_leaves_the_record_or_nothing(
    cms: Cms, project: Path, cms_home: Path
) -> None:
    from cms.engine.models import SessionRecord, Status
    from cms.engine.store import Store

    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    paths = state_paths(project, cms_home)
    store = Store(paths)
    names = [f"del-{i}" for i in range(10)]
    for name in names:
        store.create(SessionRecord(name=name, task="t", status=Status.COMPLETED))
        for path in (paths.log_file(name), paths.stderr_file(name)):
            path.write_text('{"type":"result"}\n')
    length = _duration(cms, "show", names[0])
    for name in names:
        _run_and_kill(cms, ["delete", name], rng.uniform(0, length * 1.3))
        shown = cms.run("--json", "show", name)
        if shown.code == 0:
            assert shown.json()["name"] == name  # still there, whole
        else:
            assert shown.code == 2 and "no session named" in shown.stderr, (seed, shown)
        listing = cms.run("--json", "list")
        assert listing.code == 0 and listing.stderr == "", (seed, listing.stderr)
        _no_torn_temp_files(paths.sessions_dir)
    for name in names:  # an unkilled delete finishes the job
        if store.exists(name):
            assert cms.run("delete", name).code == 0
    assert list(paths.sessions_dir.glob("*.toml")) == []
    assert sorted(p.name for p in paths.logs_dir.iterdir()) == []


# -- the API failing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [(error(500), "500"), (error(529), "529"), (drop(), "Connection")],
    ids=["http-500", "http-529-overloaded", "dropped-stream"],
)
def test_api_failure_fails_with_the_clis_error(
    cms: Cms, standin: StandIn, project: Path, cms_home: Path, reply: Reply, expected: str
) -> None:
    standin.script("T-APIFAIL", [reply])
    done = cms.run("--json", "delegate", "fail T-APIFAIL", "--name", "apifail")
    assert done.code == 1, done.stderr
    out = done.json()
    assert out["status"] == "failed"
    # `error` carries what the CLI itself said in its result event.
    paths = state_paths(project, cms_home)
    [result] = [e for e in log_events(paths, "apifail") if e.get("type") == "result"]
    assert result["is_error"] is True
    assert result["result"].strip() in out["error"]
    assert expected in out["error"]
    assert wait_gone(lambda: processes_of_session("apifail")) == []


# -- full disk, read-only state folder --------------------------------------------------------

# These need a small file system of their own: a tmpfs mounted over CMS_HOME. That takes
# root (CAP_SYS_ADMIN); a CI runner that is not root skips them, saying so. (chmod cannot
# stand in for a read-only file system, since root ignores modes; ENOTDIR is covered in
# test_cli_basics.)


@contextlib.contextmanager
def tmpfs(where: Path, size_kb: int) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); needs root")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every record and project file under ``root`` with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.toml"))}


def one_line(done: Any, code: int) -> str:
    assert done.code == code, (done.code, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cms: error: "), done.stderr
    return str(lines[0])


def _fill(folder: Path) -> None:
    with contextlib.suppress(OSError), open(folder / "filler", "wb") as handle:
        while True:
            handle.write(b"\0" * 4096)
            handle.flush()
    assert os.statvfs(folder).f_bavail == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_full_disk_gives_one_line_and_changes_nothing(
    cms: Cms, standin: StandIn, project: Path, cms_home: Path
) -> None:
    with tmpfs(cms_home, 2048):
        standin.script("T-DISK", [text("before the disk filled")])
        cms.ok("delegate", "fill T-DISK", "--name", "early")
        cms.ok("budget", "--max-cost", "5")
        _fill(cms_home)
        before = snapshot(cms_home)
        for args in (
            ["delegate", "more T-DISK", "--name", "late", "--background"],
            ["spawn", "later"],
            ["budget", "--max-cost", "7"],
            ["finish", "early"],
            ["send", "early", "again", "--background"],
        ):
            line = one_line(cms.run(*args), 3)
            assert "disk is full" in line and "CMS_HOME" in line, line
        assert snapshot(cms_home) == before
        _no_torn_temp_files(state_paths(project, cms_home).sessions_dir)
        # Reading still works.
        assert [r["name"] for r in cms.ok("list")] == ["early"]
        assert cms.show("early")["response"] == "before the disk filled"


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_read_only_state_gives_one_line_and_changes_nothing(
    cms: Cms, standin: StandIn, project: Path, cms_home: Path
) -> None:
    with tmpfs(cms_home, 1024):
        standin.script("T-RO", [text("written before")])
        cms.ok("delegate", "ro T-RO", "--name", "early")
        cms.ok("budget", "--max-cost", "5")
        subprocess.run(["mount", "-o", "remount,ro", str(cms_home)], check=True)
        before = snapshot(cms_home)
        for args in (
            ["delegate", "more T-RO", "--name", "late", "--background"],
            ["spawn", "later"],
            ["budget", "--max-cost", "7"],
            ["finish", "early"],
            ["delete", "early"],
            ["send", "early", "again", "--background"],
        ):
            line = one_line(cms.run(*args), 3)
            assert "read-only" in line and "CMS_HOME" in line, line
        assert snapshot(cms_home) == before
        assert [r["name"] for r in cms.ok("list")] == ["early"]
        assert cms.show("early")["response"] == "written before"
