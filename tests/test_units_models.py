"""The records without pydantic: what callers and the files on disk rely on, pinned.

:class:`cms.engine.models.Model` keeps the part of pydantic's behaviour cms used:
coercion and checks on construction and on every assignment, unknown keys ignored,
``model_dump`` (Python and JSON), ``model_copy`` and ``model_validate``; a record that
breaks a rule is refused with the field's name. The store's lock is ``flock`` on
``<file>.lock``, so filelock's ``FileLock`` (what earlier versions took) and cms's
exclude each other.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from filelock import FileLock, Timeout

from cms.base.errors import CorruptRecord
from cms.base.paths import ProjectPaths, cms_home
from cms.engine import hosts
from cms.engine.models import (
    Defaults,
    InvalidRecord,
    Limits,
    Preset,
    ProjectConfig,
    SandboxConfig,
    SessionRecord,
    Status,
)
from cms.engine.store import LOCK_POLL_S, LockTimeout, Store, file_lock


def record(**fields: object) -> SessionRecord:
    return SessionRecord.model_validate({"name": "a", **fields})


# -- coercion, on construction and on assignment --------------------------------------


def test_assignment_coerces_as_construction_does() -> None:
    r = record()
    r.status = "running"  # type: ignore[assignment]
    assert r.status is Status.RUNNING
    r.preset = "review"  # type: ignore[assignment]
    assert r.preset is Preset.REVIEW
    r.cost_usd = 2  # an int for a float
    assert r.cost_usd == 2.0 and type(r.cost_usd) is float
    r.turns = 3.0  # type: ignore[assignment]
    assert r.turns == 3 and type(r.turns) is int
    r.ended_at = "2026-01-01T10:00:00Z"  # type: ignore[assignment]
    assert r.ended_at == datetime(2026, 1, 1, 10, tzinfo=UTC)
    r.after = ("x", "y")  # type: ignore[assignment]
    assert r.after == ["x", "y"]
    assert record(has_conversation="true", depth="2").has_conversation is True
    assert record(created_at=date(2026, 1, 2)).created_at == datetime(2026, 1, 2)


@pytest.mark.parametrize(
    ("field", "value", "where", "why"),
    [
        ("status", "bogus", "status", "Input should be 'queued', 'running'"),
        ("turns", "many", "turns", "Input should be a valid integer"),
        ("turns", 1.5, "turns", "fractional part"),
        ("task", 3, "task", "Input should be a valid string"),
        ("task", None, "task", "Input should be a valid string"),
        ("has_conversation", 2, "has_conversation", "a valid boolean"),
        ("after", ["x", 1], "after.1", "Input should be a valid string"),
        ("after", "x", "after", "Input should be a valid list"),
        ("ended_at", "yesterday", "ended_at", "a valid datetime"),
        ("max_cost_usd", math.nan, "max_cost_usd", "budget must be a finite number >= 0"),
        ("max_cost_usd", -1, "max_cost_usd", "budget must be a finite number >= 0"),
        ("timeout_s", math.inf, "timeout_s", "budget must be a finite number >= 0"),
        ("cost_usd", math.nan, "cost_usd", "spend must be a finite number >= 0"),
        ("settled_cost_usd", -0.5, "settled_cost_usd", "spend must be"),
        ("max_turns", -1, "max_turns", "max_turns must be >= 0"),
    ],
)
def test_a_value_a_field_cannot_take_is_refused_by_name(
    field: str, value: object, where: str, why: str
) -> None:
    with pytest.raises(InvalidRecord) as built:
        record(**{field: value})
    assert str(built.value).startswith(f"{where}: ") and why in str(built.value)
    assert isinstance(built.value, ValueError)

    r = record(max_cost_usd=1.0, after=["p"])
    before = r.model_dump()
    with pytest.raises(InvalidRecord) as assigned:
        setattr(r, field, value)
    assert str(assigned.value) == str(built.value)
    assert r.model_dump() == before, "a refused assignment changed the record"


def test_zero_budgets_and_none_are_fine() -> None:
    r = record(max_cost_usd=0, max_turns=0, timeout_s=None, cost_usd=0)
    assert (r.max_cost_usd, r.max_turns, r.timeout_s) == (0.0, 0, None)


def test_required_and_unknown_fields() -> None:
    with pytest.raises(InvalidRecord, match=r"^name: Field required$"):
        SessionRecord.model_validate({"task": "t"})
    r = SessionRecord.model_validate({"name": "a", "from_a_newer_cms": 1, "x": [1]})
    assert "from_a_newer_cms" not in r.model_dump()
    with pytest.raises(AttributeError):
        r.nonsense = 1  # type: ignore[attr-defined]


def test_project_limits_are_checked() -> None:
    assert Limits().max_parallel == 4 and Limits().max_depth == 2
    for bad in ({"max_parallel": 0}, {"max_depth": -1}, {"daily_cap_usd": math.nan}):
        with pytest.raises(InvalidRecord) as info:
            ProjectConfig.model_validate({"limits": bad})
        assert str(info.value).startswith(f"limits.{next(iter(bad))}: ")
    limits = Limits()
    with pytest.raises(InvalidRecord):
        limits.max_parallel = 0
    assert limits.max_parallel == 4
    assert Limits(max_depth=0, max_parallel=1).max_depth == 0


def test_defaults_are_made_anew_for_each_record() -> None:
    one, two = ProjectConfig(), ProjectConfig()
    one.sandbox.allowed_domains.append("example.com")
    one.limits.max_parallel = 2
    assert two.sandbox.allowed_domains == [] and two.limits.max_parallel == 4
    assert record().after is not record().after
    assert isinstance(ProjectConfig.model_validate({"defaults": {"preset": "plan"}}).defaults,
                      Defaults)  # fmt: skip


# -- dumps and copies --------------------------------------------------------------------


def test_json_dump_is_what_pydantic_printed() -> None:
    r = record(
        status="completed",
        created_at=datetime(2026, 1, 1, 10, tzinfo=UTC),
        updated_at=datetime(2026, 1, 1, 10, 0, 0, 500000, tzinfo=timezone(timedelta(hours=2))),
        ended_at=datetime(2026, 1, 1, 10, 0, 0, 123),
    )
    data = r.model_dump(mode="json")
    assert data["status"] == "completed" and data["preset"] == "edit"
    assert data["created_at"] == "2026-01-01T10:00:00Z"
    assert data["updated_at"] == "2026-01-01T10:00:00.500000+02:00"
    assert data["ended_at"] == "2026-01-01T10:00:00.000123"
    assert data["model"] is None and data["after"] == []
    assert json.loads(json.dumps(data)) == data
    assert SessionRecord.model_validate(data) == r  # the listing index's round trip
    python = r.model_dump()
    assert python["status"] is Status.COMPLETED and isinstance(python["created_at"], datetime)
    assert list(python) == list(SessionRecord.model_fields)
    public = r.public()
    assert "settled_cost_usd" not in public and public["status"] == "completed"


def test_dump_exclude_and_nested() -> None:
    host = hosts.Host(name="h", docker="unix:///x", cpus=2)
    assert host.model_dump(exclude={"name"}, exclude_none=True) == {
        "docker": "unix:///x", "image": hosts.DEFAULT_IMAGE, "cpus": 2.0, "pids_limit": 512,
    }  # fmt: skip
    config = ProjectConfig(project="p", sandbox=SandboxConfig(allowed_domains=["a.org"]))
    dumped = config.model_dump(mode="json", exclude_none=True)
    assert dumped["limits"] == {"max_parallel": 4, "max_depth": 2}
    assert dumped["sandbox"] == {"allowed_domains": ["a.org"], "denied_domains": []}


def test_copies() -> None:
    r = record(after=["x"], turns=2)
    shallow = r.model_copy(update={"status": "failed", "turns": 5})
    assert (shallow.status, shallow.turns, r.turns) == (Status.FAILED, 5, 2)
    assert shallow.after is r.after
    deep = r.model_copy(deep=True)
    assert deep == r and deep is not r and deep.after is not r.after
    deep.after.append("y")
    assert r.after == ["x"]
    assert r != shallow and r != "a"


def test_hosts_are_checked() -> None:
    for bad in ({"cpus": 0}, {"max_parallel": 0}, {"pids_limit": 15}, {"image": 3}):
        with pytest.raises(InvalidRecord):
            hosts.Host.model_validate({"name": "h", "docker": "unix:///x", **bad})
    assert hosts.Host(name="h", docker="unix:///x", pids_limit=16).pids_limit == 16


def test_a_bad_host_file_is_one_line(tmp_path: Path) -> None:
    hosts.hosts_file(tmp_path).write_text(
        '[hosts.b1]\ndocker = "unix:///x"\ncpus = -1\nname = "other"\nnew_key = 1\n'
    )
    with pytest.raises(CorruptRecord) as info:
        hosts.load(tmp_path)
    assert info.value.why == "hosts.b1: cpus: Input should be greater than 0"
    assert "\n" not in info.value.message


def test_a_bad_project_file_is_one_line(project: Path) -> None:
    store = Store(ProjectPaths.for_project(project, cms_home()))
    store.update_project(lambda c: None)
    path = store.paths.project_file
    path.write_text(path.read_text().replace("max_parallel = 4", "max_parallel = 0"))
    with pytest.raises(CorruptRecord) as info:
        store.load_project()
    assert info.value.why == "limits.max_parallel: Input should be greater than or equal to 1"
    assert info.value.exit_code == 2 and "\n" not in info.value.message


# -- the lock ----------------------------------------------------------------------------

HOLD = """
import sys, time
from filelock import FileLock
with FileLock(sys.argv[1] + ".lock"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_cms_and_filelock_exclude_each_other(tmp_path: Path) -> None:
    path = tmp_path / "thing"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), "30"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        started = time.monotonic()
        with pytest.raises(LockTimeout, match=str(path)), file_lock(path, timeout_s=0.2):
            pass
        assert 0.2 <= time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait()
    # The dead holder's lock is free at once, and while cms holds it filelock waits.
    with file_lock(path, timeout_s=0):
        assert os.stat(str(path) + ".lock").st_mode & 0o777 == 0o600
        with pytest.raises(Timeout):
            FileLock(str(path) + ".lock", timeout=0.05).acquire()
    with FileLock(str(path) + ".lock", timeout=0):
        pass


def test_a_lock_file_removed_while_waiting_is_taken_anew(tmp_path: Path) -> None:
    """``delete`` unlinks a record's lock file: a waiter that opened the old one locks
    the file that is there once it gets its turn, not the unlinked one (which would
    exclude no one)."""
    path = tmp_path / "rec"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), "0.5"], stdout=subprocess.PIPE, text=True
    )
    held, done = threading.Event(), threading.Event()

    def waiter() -> None:
        with file_lock(path, timeout_s=20):
            held.set()
            done.wait(20)

    thread = threading.Thread(target=waiter)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        thread.start()
        time.sleep(0.1)  # the waiter has opened the lock file and polls it
        assert not held.is_set()
        os.unlink(str(path) + ".lock")
        assert held.wait(20)
        assert os.path.exists(str(path) + ".lock")
        with pytest.raises(Timeout):
            FileLock(str(path) + ".lock", timeout=0.05).acquire()
    finally:
        done.set()
        thread.join(20)
        holder.wait(timeout=30)
    assert LOCK_POLL_S <= 0.005
