"""The session store as a user would check it: what lands on disk and how it reads back.

Covers DESIGN.md "State on disk": TOML records that round-trip (every status word),
0700/0600 permissions on everything under ``$CMS_HOME`` (lock files too), no lost
update when many processes read-modify-write one record at once, a parseable record
after a writer is SIGKILLed at any instant, corrupt files reported by name and skipped
(also through the ``cms`` command line), the project key, and session-name generation.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import random
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import cmsrun
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cms.base.errors import BadInput, CorruptRecord, NotFound
from cms.base.paths import NAME_PATTERN, ProjectPaths, cms_home, project_key, valid_name
from cms.engine.models import Preset, SessionRecord, Status
from cms.engine.store import Store
from cms.ops import name_from_task, open_project

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event

#: The status words of DESIGN.md ("Sessions"), spelled out so a renamed enum fails here.
STATUS_WORDS = (
    "queued",
    "running",
    "completed",
    "failed",
    "cost_exceeded",
    "turns_exceeded",
    "timed_out",
    "aborted",
    "interrupted",
    "finished",
)

WORKERS = 16
#: 1,600 locked updates of one record: enough to lose some if the cycles were not
#: serialized, few enough that no worker waits the lock's 30 s on a loaded machine
#: (a waiter polls the lock; waiters are not queued fairly).
UPDATES_PER_WORKER = 100
KILLS = 30


def make_store(project: Path) -> Store:
    return Store(ProjectPaths.for_project(project, cms_home()))


def full_record(name: str, status: Status) -> SessionRecord:
    """A record with every kind of field set to something that is not its default."""
    moment = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
    return SessionRecord(
        name=name,
        status=status,
        preset=Preset.REVIEW,
        model="sonnet",
        task='Fix the "login" bug\nin auth.py — naïve ünïcødé, tabs\tand \\ backslashes',
        response="multi\nline\n\n'''triple''' \"\"\"quotes\"\"\"\x7f",
        error="exit 1: boom",
        cost_usd=0.1234,
        settled_cost_usd=0.1,
        turns=7,
        settled_turns=5,
        input_tokens=12345,
        output_tokens=678,
        max_cost_usd=2.5,
        max_turns=40,
        timeout_s=600.0,
        session_id="0b6c2a52-5b7e-4c1e-9b1c-3f4d5e6f7a8b",
        has_conversation=True,
        cwd="/tmp/some where",
        project="/tmp/proj",
        pid=4242,
        pid_started=99999,
        deadline=1_700_000_000.5,
        depth=2,
        exchanges=3,
        last_activity="Bash: ls",
        created_at=moment,
        updated_at=moment,
        turn_started_at=moment,
        ended_at=moment,
    )


def walk_modes(root: Path) -> tuple[list[str], int, int]:
    """Every path under ``root`` (itself included) whose mode is not 0700/0600."""
    bad: list[str] = []
    dirs = files = 0
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_dir():
            dirs += 1
            if mode != 0o700:
                bad.append(f"{path} is a directory with mode {mode:o}")
        else:
            files += 1
            if mode != 0o600:
                bad.append(f"{path} is a file with mode {mode:o}")
    return bad, dirs, files


def run_cms(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return cmsrun.run_cms(*args, cwd=cwd, env=env, timeout=60, console=True)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """umask 000, so a file or folder created without an explicit mode shows up."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


# -- round trip --------------------------------------------------------------------


def test_status_words_are_those_of_the_design() -> None:
    assert sorted(s.value for s in Status) == sorted(STATUS_WORDS)


@pytest.mark.parametrize("word", STATUS_WORDS)
def test_record_round_trips_through_toml(project: Path, word: str) -> None:
    store = make_store(project)
    record = full_record(f"rt-{word.replace('_', '-')}", Status(word))
    store.create(record)

    path = store.paths.session_file(record.name)
    with open(path, "rb") as handle:
        on_disk = tomllib.load(handle)
    assert on_disk["status"] == word
    assert on_disk["name"] == record.name
    assert on_disk["task"] == record.task
    assert on_disk["response"] == record.response

    loaded = store.load(record.name)
    assert loaded.model_dump() == record.model_dump()
    assert loaded.status is Status(word)


def test_unknown_keys_are_ignored(project: Path) -> None:
    store = make_store(project)
    store.create(SessionRecord(name="future", task="t", status=Status.COMPLETED, turns=3))
    path = store.paths.session_file("future")
    text = path.read_text()
    path.write_text(
        'from_a_newer_cms = "yes"\nanother = [1, 2, 3]\n' + text + "\n[some_new_table]\nx = 1\n"
    )

    loaded = store.load("future")
    assert (loaded.name, loaded.status, loaded.turns) == ("future", Status.COMPLETED, 3)
    listing = store.list()
    assert [r.name for r in listing.records] == ["future"]
    assert listing.problems == []


def test_none_fields_are_omitted_from_the_file(project: Path) -> None:
    store = make_store(project)
    record = SessionRecord(name="sparse", task="t")
    assert record.model is None and record.pid is None and record.ended_at is None
    store.create(record)

    with open(store.paths.session_file("sparse"), "rb") as handle:
        on_disk = tomllib.load(handle)
    none_fields = {k for k, v in record.model_dump().items() if v is None}
    assert none_fields >= {"model", "response", "error", "pid", "max_cost_usd", "ended_at"}
    assert none_fields.isdisjoint(on_disk), f"None fields written: {none_fields & set(on_disk)}"
    assert store.load("sparse").model_dump() == record.model_dump()


# -- permissions -------------------------------------------------------------------


@pytest.mark.usefixtures("loose_umask")
def test_everything_under_cms_home_is_private(project: Path, cms_home: Path) -> None:
    cms_home.mkdir(mode=0o755)  # a folder the user made by hand, too open
    os.chmod(cms_home, 0o755)
    store = make_store(project)

    store.create(SessionRecord(name="one", task="t"))
    store.create(SessionRecord(name="two", task="t"))
    store.update("one", lambda r: setattr(r, "turns", r.turns + 1))
    store.save(store.load("two"))
    assert [r.name for r in store.list().records] == ["one", "two"]
    store.update_project(lambda c: setattr(c.limits, "max_parallel", 2))
    store.delete("two")
    store.create(SessionRecord(name="three", task="t"))
    with store.locked(store.paths.root / "queue"):
        pass

    bad, dirs, files = walk_modes(cms_home)
    assert bad == []
    names = {p.name for p in cms_home.rglob("*")}
    assert {"one.toml", "three.toml", "project.toml"} <= names
    locks = {n for n in names if n.endswith(".lock")}
    assert {"one.toml.lock", "project.toml.lock", "queue.lock"} <= locks
    assert dirs >= 5 and files >= 6
    assert store.load_project().limits.max_parallel == 2


# -- concurrency ---------------------------------------------------------------------

INCREMENT = r"""
import os, sys, time
from pathlib import Path
from cms.base.paths import ProjectPaths
from cms.engine.store import Store

home, project, go, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
store = Store(ProjectPaths.for_project(Path(project), Path(home)))

def bump(record):
    record.turns += 1
    record.exchanges += 1

while not os.path.exists(go):
    time.sleep(0.005)
seen = [store.update("counter", bump).turns for _ in range(count)]
print(" ".join(map(str, seen)))
"""


def test_concurrent_updates_lose_nothing(project: Path, cms_home: Path, tmp_path: Path) -> None:
    store = make_store(project)
    store.create(SessionRecord(name="counter", task="count"))
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                INCREMENT,
                str(cms_home),
                str(project),
                str(go),
                str(UPDATES_PER_WORKER),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(WORKERS)
    ]
    started = time.monotonic()
    go.touch()  # all workers start hammering at once
    seen: list[int] = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            seen += [int(v) for v in out.split()]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    elapsed = time.monotonic() - started

    total = WORKERS * UPDATES_PER_WORKER
    final = store.load("counter")
    assert (final.turns, final.exchanges) == (total, total)
    # Every update saw a distinct value: the read-modify-write cycles were serialized.
    assert sorted(seen) == list(range(1, total + 1))
    assert elapsed < 60, f"{total} locked updates took {elapsed:.1f} s"


# -- crash safety --------------------------------------------------------------------


def _body(i: int) -> str:
    """About 200 KB that differs every time and needs TOML escaping."""
    unit = f'{i}: "quoted" \\ back\tslash ünïcødé ✓ {i * 7919 % 10007}\n'
    return f"{i}:" + (unit * (200_000 // len(unit) + 1))[:200_000]


def _writer(home: str, project: str, ready: Event) -> None:
    store = Store(ProjectPaths.for_project(Path(project), Path(home)))
    record = store.load("big")
    i = record.turns
    ready.set()
    while True:
        i += 1
        body = _body(i)
        if i % 2:
            record.turns, record.response = i, body
            store.save(record)
        else:

            def change(r: SessionRecord, i: int = i, body: str = body) -> None:
                r.turns, r.response = i, body

            store.update("big", change)


def _wait_for_a_write(path: Path, turns: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, tomllib.TOMLDecodeError), open(path, "rb") as handle:
            if tomllib.load(handle).get("turns", 0) > turns:
                return
        time.sleep(0.005)


@pytest.mark.skipif(sys.platform != "linux", reason="uses the fork start method")
def test_sigkilled_writer_never_leaves_a_broken_record(project: Path, cms_home: Path) -> None:
    store = make_store(project)
    store.create(SessionRecord(name="big", task="write a lot", response=_body(0)))
    store.create(SessionRecord(name="bystander", task="t"))
    path = store.paths.session_file("big")
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    ctx = multiprocessing.get_context("fork")
    last_turns = 0

    for attempt in range(KILLS):
        ready = ctx.Event()
        writer = ctx.Process(target=_writer, args=(str(cms_home), str(project), ready))
        writer.start()
        assert ready.wait(10), "writer did not start"
        if attempt % 2 == 0:
            # Every other time, let it finish one write first, so the test also proves
            # progress on a loaded machine (where 0.12 s may not reach a first write).
            _wait_for_a_write(path, last_turns)
        time.sleep(rng.uniform(0.0, 0.12))
        writer.kill()
        writer.join(10)
        where = f"(attempt {attempt}, seed {seed})"

        with open(path, "rb") as handle:
            data = tomllib.load(handle)
        record = SessionRecord.model_validate(data)
        assert record.turns >= last_turns, where
        assert record.response == _body(record.turns), f"response torn {where}"
        last_turns = record.turns

        listing = store.list()
        assert listing.problems == [], where
        assert sorted(r.name for r in listing.records) == ["big", "bystander"], where
        leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
        assert all(n.startswith(".") for n in leftovers), leftovers

        # The dead writer's lock is free again: the next read-modify-write does not wait.
        started = time.monotonic()
        store.update("big", lambda r: None)
        assert time.monotonic() - started < 5, f"lock held by a dead process {where}"

    assert last_turns >= KILLS // 2, "the writer hardly ever wrote; the test proved little"


# -- corrupt records -------------------------------------------------------------------

CORRUPTIONS = {
    "invalid-toml": lambda text: text.replace('status = "', 'status = = "', 1),
    "bogus-status": lambda text: text.replace('status = "completed"', 'status = "bogus"'),
    "wrong-type": lambda text: text.replace("turns = 0", 'turns = "many"', 1),
    "future-schema": lambda text: text.replace("schema_version = 1", "schema_version = 99"),
    "not-utf8": lambda text: text.replace('task = "t"', 'task = "\udcff"'),
}


def _corrupt(store: Store, name: str, kind: str) -> Path:
    path = store.paths.session_file(name)
    text = path.read_text()
    broken = CORRUPTIONS[kind](text)
    assert broken != text
    path.write_bytes(broken.encode("utf-8", "surrogateescape"))
    return path


def _three_sessions(project: Path, kind: str) -> tuple[Store, Path]:
    store = make_store(project)
    for name in ("alpha", "broken", "omega"):
        store.create(SessionRecord(name=name, task="t", status=Status.COMPLETED))
    return store, _corrupt(store, "broken", kind)


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corrupt_record_is_named_and_skipped(project: Path, kind: str) -> None:
    store, bad = _three_sessions(project, kind)

    listing = store.list()
    assert [r.name for r in listing.records] == ["alpha", "omega"]
    assert len(listing.problems) == 1
    assert str(bad) in listing.problems[0]
    with pytest.raises(CorruptRecord) as info:
        store.load("broken")
    assert info.value.path == str(bad)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_cms_list_and_show_with_a_corrupt_record(project: Path, kind: str) -> None:
    _, bad = _three_sessions(project, kind)

    listed = run_cms("list", cwd=project)
    assert listed.returncode == 0, listed.stderr
    warning = listed.stderr.strip().splitlines()
    assert len(warning) == 1 and str(bad) in warning[0], listed.stderr
    assert "Traceback" not in listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines()[1:]]
    assert names == ["alpha", "omega"]

    as_json = run_cms("--json", "list", cwd=project)
    assert as_json.returncode == 0
    assert [s["name"] for s in json.loads(as_json.stdout)] == ["alpha", "omega"]
    assert str(bad) in as_json.stderr

    shown = run_cms("show", "broken", cwd=project)
    assert shown.returncode == 2
    assert len(shown.stderr.strip().splitlines()) == 1
    assert str(bad) in shown.stderr and "Traceback" not in shown.stderr
    assert shown.stdout == ""

    other = run_cms("show", "alpha", cwd=project)
    assert other.returncode == 0 and "alpha" in other.stdout


# -- the project key ---------------------------------------------------------------------


def _git_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


def test_project_key_is_the_git_top_level(project: Path, tmp_path: Path) -> None:
    deep = project / "src" / "pkg"
    deep.mkdir(parents=True)
    top_key = open_project(project).paths.key
    assert open_project(deep).paths.key == top_key
    assert open_project(None, {**os.environ, "CMS_PROJECT": str(deep)}).paths.key == top_key
    link = tmp_path / "link-to-project"
    link.symlink_to(project)
    assert open_project(link / "src").paths.key == top_key

    other = _git_repo(tmp_path / "other")
    assert open_project(other).paths.key != top_key
    # Same folder name elsewhere: still a different project.
    twin = _git_repo(tmp_path / "elsewhere" / project.name)
    assert project_key(twin) != top_key

    plain = tmp_path / "not-a-repo"
    plain.mkdir()
    assert open_project(plain).paths.project == plain.resolve()


def test_project_is_found_the_same_way_by_the_cli(project: Path, tmp_path: Path) -> None:
    make_store(project).create(SessionRecord(name="mine", task="t"))
    deep = project / "src" / "pkg"
    deep.mkdir(parents=True)
    other = _git_repo(tmp_path / "other")
    outside = tmp_path / "outside"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "CMS_PROJECT"}

    def names(*args: str, cwd: Path, extra: dict[str, str] | None = None) -> list[str]:
        done = run_cms("--json", "list", *args, cwd=cwd, env={**env, **(extra or {})})
        assert done.returncode == 0, done.stderr
        return [s["name"] for s in json.loads(done.stdout)]

    assert names(cwd=project) == ["mine"]
    assert names(cwd=deep) == ["mine"]
    assert names("--project", str(deep), cwd=outside) == ["mine"]
    assert names(cwd=outside, extra={"CMS_PROJECT": str(deep)}) == ["mine"]
    assert names(cwd=other) == []
    assert names(cwd=outside, extra={"CMS_PROJECT": str(other)}) == []
    # --project wins over $CMS_PROJECT.
    assert names("--project", str(project), cwd=outside, extra={"CMS_PROJECT": str(other)}) == [
        "mine"
    ]


# -- name generation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ("Fix the login bug in auth.py", "fix-the-login-bug-in"),
        ("Add tests", "add-tests"),
        ("Réparer l'ascenseur électrique", "reparer-l-ascenseur-electrique"),
        ("  ***  ", "task"),
        ("", "task"),
        ("日本語のタスク", "task"),
        ("x" * 200, "task"),
    ],
)
def test_name_from_task_is_readable(task: str, expected: str) -> None:
    assert name_from_task(task, []) == expected


def test_name_from_task_avoids_taken_names() -> None:
    assert name_from_task("Add tests", ["add-tests"]) == "add-tests-2"
    assert name_from_task("Add tests", ["add-tests", "add-tests-2"]) == "add-tests-3"
    assert name_from_task("", ["task", "task-2"]) == "task-3"

    taken: list[str] = []
    for _ in range(50):
        taken.append(name_from_task("Refactor the store", taken))
    assert len(set(taken)) == 50
    assert all(valid_name(n) for n in taken)


@settings(max_examples=300, deadline=None)
@given(task=st.text(max_size=300), taken=st.lists(st.text(max_size=40), max_size=20))
def test_name_from_task_is_always_valid_and_free(task: str, taken: list[str]) -> None:
    name = name_from_task(task, taken)
    assert valid_name(name), (task, name, NAME_PATTERN)
    assert name not in taken
    assert len(name) <= 63


def test_store_refuses_an_invalid_name(project: Path) -> None:
    store = make_store(project)
    with pytest.raises(NotFound):
        store.load("missing")
    for name in ("../escape", "/abs", "UPPER", "t\u0435st", "a" * 64, ""):
        assert not valid_name(name)
        with pytest.raises(BadInput) as info:
            store.load(name)
        assert info.value.exit_code == 2
    assert not list(store.paths.home.rglob("*.toml"))


def test_update_durable_false_skips_fsync_but_a_status_change_never_does(
    project: Path, cms_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A running turn's notes about its own processes (supervisor pid, claude's pid, its
    temp folder) are written without an fsync, so none stands between a delegation and
    the start of its claude; a status change is written durably even when asked not to."""
    store = make_store(project)
    store.create(SessionRecord(name="notes", task="t"))
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])

    def note_pid(r: SessionRecord) -> None:
        r.child_pid = 4242

    store.update("notes", note_pid, durable=False)
    assert synced == []
    assert store.load("notes").child_pid == 4242  # written all the same, atomically

    def finish(r: SessionRecord) -> None:
        r.status = Status.COMPLETED

    store.update("notes", finish, durable=False)
    assert len(synced) == 1
    assert store.load("notes").status is Status.COMPLETED
    store.update("notes", note_pid)  # the default stays durable
    assert len(synced) == 2


def test_reading_a_result_marks_it_read_without_fsync(
    project: Path, cms_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last write of a foreground delegation, after its turn ended (the result
    marked read), costs no fsync on the way to the printed result."""
    from cms.ops import get_session

    opened = open_project(project)
    record = SessionRecord(name="done", task="t", status=Status.COMPLETED, result_read=False)
    opened.store.create(record)
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    assert get_session(opened, "done", mark_read=True).result_read
    assert opened.store.load("done").result_read
    assert synced == []


HOLD = """
import sys, time
from filelock import FileLock
lock = FileLock(sys.argv[1] + ".lock")
with lock:
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_waiter_takes_a_freed_record_lock_within_milliseconds(
    project: Path, cms_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first writes of a delegation contend for its record's lock (the starter notes
    the supervisor's pid while the supervisor claims the record): a waiter looks again
    every few milliseconds, not at filelock's default 50 ms, which the start of every
    turn would pay. The holder is filelock's FileLock: cms's flock excludes it too."""
    import fcntl

    store = make_store(project)
    store.create(SessionRecord(name="contended", task="t"))
    path = store.paths.session_file("contended")
    attempts: list[float] = []
    real_flock = fcntl.flock

    def counted(fd: int, operation: int) -> None:
        if operation & fcntl.LOCK_EX:
            attempts.append(time.monotonic())
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", counted)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), "0.5"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        store.update("contended", lambda r: setattr(r, "task", "changed"))
    finally:
        holder.wait(timeout=30)
    assert store.load("contended").task == "changed"
    waited = attempts[-1] - attempts[0]
    assert waited > 0.2  # it did wait for the holder
    # At filelock's default it tries about 20 times a second; here more than 4 times as
    # often even on a loaded machine (a sleep of 5 ms that takes 10 still counts 100).
    assert len(attempts) / waited > 80, (len(attempts), waited)
