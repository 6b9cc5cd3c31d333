"""Starting supervisors detached, the queue of sessions waiting for a slot, and
telling a live supervisor from a dead one.

A supervisor is started as a new process (forked, or ``python -m cms.engine.launcher``) in its own
process session, with stdin, stdout and stderr on /dev/null and no other inherited
file descriptor: ``$(cms delegate --background ...)`` and Claude Code's Bash tool wait
until every holder of their pipe closes it, so the detached process must hold none.

The queue: at most ``limits.max_parallel`` sessions of a project run at once. A
session over the limit is recorded ``queued`` with its message; whenever a turn ends
(and on any listing) :func:`start_queued` starts the oldest queued sessions while
slots are free, under a project-wide lock so two finishing supervisors never start
the same session twice. Queued sessions that run after others (``--after``) are
settled first, under the same lock (:mod:`cms.engine.dependencies`): released to
wait for a slot like the others, or ended ``failed``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterable
from pathlib import Path

from cms.base.paths import PACKAGE_PARENT, ProjectPaths
from cms.engine import dependencies, lifecycle, procs
from cms.engine.models import SessionRecord, Status
from cms.engine.store import Store


def supervisor_alive(record: SessionRecord) -> bool:
    marked_at = record.turn_started_at or record.updated_at
    return procs.supervisor_alive(record.pid, record.pid_started, marked_at)


def spawn_supervisor(store: Store, name: str) -> int:
    """Start the detached supervisor of ``name``'s turn; returns its pid.

    A single-threaded caller (the CLI) forks: the child already has every module
    imported, which saves a fresh interpreter's start on the path of every turn. A
    threaded caller (the MCP server) must not fork, so it starts a new interpreter.
    """
    paths = store.paths
    log_path = paths.supervisor_log(name)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        if threading.active_count() == 1 and hasattr(os, "fork"):
            pid = _fork_supervisor(store, name, log_fd)
        else:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cms.engine.launcher",
                    str(paths.home),
                    str(paths.project),
                    name,
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_fd,
                start_new_session=True,
                close_fds=True,
                cwd="/",
                env=_supervisor_env(),
            )
            pid = proc.pid
    finally:
        os.close(log_fd)
    started = procs.start_ticks(pid)

    def note(record: SessionRecord) -> None:
        # The supervisor may already have claimed the record (or even finished).
        if record.status is Status.RUNNING and record.pid is None:
            record.pid = pid
            record.pid_started = started

    store.update(name, note)
    # Not waited for: the supervisor outlives us. A long-lived caller (the MCP server)
    # reaps it through subprocess's own bookkeeping of dropped Popen objects.
    return pid


def _fork_supervisor(store: Store, name: str, log_fd: int) -> int:
    """Fork a detached supervisor: new session, stdio on /dev/null and the log, no
    other inherited descriptor, and ``os._exit`` so no parent cleanup runs twice."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.dup2(log_fd, 2)
        os.closerange(3, _max_fd())
        os.chdir("/")
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        code = _supervise(store.paths, name)
    except BaseException:
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        os._exit(code)


def _max_fd() -> int:
    try:
        return min(os.sysconf("SC_OPEN_MAX"), 65536)
    except (ValueError, OSError):
        return 4096


def _supervisor_env() -> dict[str, str]:
    env = dict(os.environ)
    package_parent = str(PACKAGE_PARENT)
    env["PYTHONPATH"] = package_parent + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    return env


def running(records: Iterable[SessionRecord]) -> int:
    """How many exchanges of these records run now (their supervisors alive)."""
    return sum(1 for r in records if r.status is Status.RUNNING and supervisor_alive(r))


def start_queued(store: Store) -> list[str]:
    """Start queued sessions while the project has free slots; returns their names."""
    started: list[str] = []
    lock_path = store.paths.root / "queue"
    with store.locked(lock_path):
        records = dependencies.settle(store, store.list().records)
        limit = store.load_project().limits.max_parallel
        now = running(records)
        queued = sorted(
            (r for r in records if r.status is Status.QUEUED and not lifecycle.waiting(r)),
            key=lambda r: (r.turn_started_at or r.created_at, r.created_at, r.name),
        )
        for record in queued:
            if now >= limit:
                break
            if not _begin_queued(store, record.name):
                continue  # aborted (or started) meanwhile
            spawn_supervisor(store, record.name)
            now += 1
            started.append(record.name)
    return started


def _begin_queued(store: Store, name: str) -> bool:
    """Mark ``name``'s queued exchange running, if it still waits for a slot."""
    began: list[bool] = []

    def begin(record: SessionRecord) -> None:
        if record.status is Status.QUEUED and not lifecycle.waiting(record):
            lifecycle.begin(record)
            began.append(True)

    store.update(name, begin)
    return bool(began)


def _supervise(paths: ProjectPaths, name: str) -> int:
    """Run the supervisor of ``name``'s exchange; when it ends, start what the queue holds."""
    from cms.engine.supervisor import Supervisor  # the forked child or a fresh interpreter

    store = Store(paths)
    return Supervisor(paths, name, after=lambda: start_queued(store)).run()


def main(argv: list[str] | None = None) -> int:
    """``python -m cms.engine.launcher HOME PROJECT NAME``: a supervisor in a fresh
    interpreter (how a threaded caller such as the MCP server starts one)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m cms.engine.launcher HOME PROJECT NAME", file=sys.stderr)
        return 2
    home, project, name = args
    return _supervise(ProjectPaths.for_project(Path(project), Path(home)), name)


if __name__ == "__main__":
    sys.exit(main())
