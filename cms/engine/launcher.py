"""Starting supervisors detached, the queue of sessions waiting for a slot, and
telling a live supervisor from a dead one.

A supervisor is started as a new process (forked twice, or ``python -m
cms.engine.launcher``, which forks it) in its own process session, no descendant of its
caller, with stdin, stdout and stderr on /dev/null and no other inherited file
descriptor: ``$(cms delegate --background ...)`` and Claude Code's Bash tool wait
until every holder of their pipe closes it, so the detached process must hold none.

The queue: at most ``limits.max_parallel`` sessions of a project run at once. A session
over the limit is recorded ``queued`` with its message; whenever a turn ends (and on any
:func:`cms.ops.reconcile` of a command) :func:`start_queued` starts the oldest queued
sessions while slots are free, under a project-wide lock so two finishing supervisors
never start the same session twice. Queued sessions that run after others (``--after``)
are settled first, under the same lock (:mod:`cms.engine.dependencies`): released to
wait for a slot like the others, or ended ``failed``.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterable, Mapping
from pathlib import Path

from cms.base.errors import CmsError, EnvironmentProblem
from cms.base.paths import PACKAGE_PARENT, ProjectPaths
from cms.engine import dependencies, hosts, lifecycle, procs
from cms.engine.models import SessionRecord, Status
from cms.engine.store import Store


def supervisor_alive(record: SessionRecord) -> bool:
    marked_at = record.turn_started_at or record.updated_at
    return procs.supervisor_alive(record.pid, record.pid_started, marked_at)


def spawn_supervisor(store: Store, name: str) -> int:
    """Start the detached supervisor of ``name``'s turn; returns its pid.

    The supervisor is no descendant of the caller: it is forked twice (the first child
    makes a new process session, forks the supervisor and exits), so its parent is
    init, or the nearest subreaper above the caller, never the caller itself. Claude
    Code stops a Bash command, a hook or a slash command by killing its whole process
    tree (every process below it by parent pid, and its group): that can no longer
    reach the turn (docs/DESIGN.md: "the command that started it may exit or be
    killed without harm").

    A single-threaded caller (the CLI) forks: the child already has every module
    imported, which saves a fresh interpreter's start on the path of every turn. A
    threaded caller (the MCP server) must not fork, so it starts a new interpreter
    (``python -m cms.engine.launcher``), which detaches the same way and prints the
    supervisor's pid.
    """
    paths = store.paths
    log_path = paths.supervisor_log(name)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        if threading.active_count() == 1 and hasattr(os, "fork"):
            pid = _fork_supervisor(store, name, log_fd)
        else:
            pid = _start_launcher(paths, name, log_fd)
    finally:
        os.close(log_fd)
    # The supervisor records its own pid (lifecycle.claim); until it has, the turn
    # counts as alive for procs.LAUNCH_GRACE_S from when it was marked running.
    return pid


def _start_launcher(paths: ProjectPaths, name: str, log_fd: int) -> int:
    """``python -m cms.engine.launcher HOME PROJECT NAME``: it detaches the supervisor
    and prints its pid, then exits (and is reaped here)."""
    argv = [sys.executable, "-m", "cms.engine.launcher", str(paths.home), str(paths.project), name]
    done = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log_fd,
        start_new_session=True,
        close_fds=True,
        cwd="/",
        env=_supervisor_env(),
        timeout=120,
        check=False,
    )
    try:
        return int(done.stdout.split()[0])
    except (IndexError, ValueError):
        raise EnvironmentProblem(
            f"the cms supervisor of {name!r} did not start (exit {done.returncode}); see "
            f"{paths.supervisor_log(name)}"
        ) from None


def _detach(log_fd: int) -> None:
    """In a process about to become a supervisor: stdio on /dev/null and the log, no
    other inherited descriptor, no working directory to hold, default signals."""
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.dup2(log_fd, 2)
    os.closerange(3, _max_fd())
    os.chdir("/")
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def _fork_supervisor(store: Store, name: str, log_fd: int) -> int:
    """Fork twice: the first child starts a new session, forks the supervisor, writes
    its pid into a pipe and exits at once; this process reaps it and reads the pid.
    ``os._exit`` in both children, so no cleanup of this process runs twice."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    reader, writer = os.pipe()
    first = os.fork()
    if first:
        os.close(writer)
        with os.fdopen(reader, "rb") as pipe:
            told = pipe.read()
        os.waitpid(first, 0)
        try:
            return int(told)
        except ValueError:
            raise EnvironmentProblem(
                f"the cms supervisor of {name!r} did not start; see "
                f"{store.paths.supervisor_log(name)}"
            ) from None
    code = 1
    try:
        os.close(reader)
        os.setsid()
        supervisor = os.fork()
        if supervisor:
            os.write(writer, str(supervisor).encode())
            code = 0
        else:
            _detach(log_fd)
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
    # A supervisor started from a child's MCP server is no process of that child's
    # turn: without its marker, that turn's reaper leaves it (and its turn) alone.
    env.pop("CMS_TURN", None)
    package_parent = str(PACKAGE_PARENT)
    env["PYTHONPATH"] = package_parent + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    return env


#: How long a command waits for the queue lock (seconds): longer than a record's, since
#: many commands started at once (a script, a parent model's burst) all queue on it,
#: each for a short time.
QUEUE_LOCK_TIMEOUT_S = 120.0


def queue_locked(store: Store) -> contextlib.AbstractContextManager[None]:
    """The project's queue lock: held while running turns are counted and one is marked
    started (or queued); never while a supervisor is spawned."""
    return store.locked(store.paths.root / "queue", timeout_s=QUEUE_LOCK_TIMEOUT_S)


def running(records: Iterable[SessionRecord]) -> int:
    """How many exchanges of these records run now (their supervisors alive)."""
    return sum(1 for r in records if r.status is Status.RUNNING and supervisor_alive(r))


def running_per_host(records: Iterable[SessionRecord]) -> collections.Counter[str]:
    """How many exchanges run now on each host (of these records)."""
    return collections.Counter(
        r.host for r in records if r.status is Status.RUNNING and supervisor_alive(r)
    )


def host_full(store: Store, host_name: str, busy: Mapping[str, int]) -> bool:
    """Whether a Docker host's own parallel limit (``--max-parallel``) is reached by
    the project's running sessions on it."""
    if host_name == hosts.LOCAL:
        return False
    try:
        host = hosts.get(store.paths.home, host_name)
    except CmsError:
        return False  # its turn fails saying why
    limit = host.max_parallel if host is not None else None
    return limit is not None and busy.get(host_name, 0) >= limit


def start_queued(store: Store) -> list[str]:
    """Start queued sessions while the project has free slots; returns their names."""
    started: list[str] = []
    with queue_locked(store):
        records = dependencies.settle(store, store.list().records)
        limit = store.load_project().limits.max_parallel
        now = running(records)
        queued = sorted(
            (r for r in records if r.status is Status.QUEUED and not lifecycle.waiting(r)),
            key=lambda r: (r.turn_started_at or r.created_at, r.created_at, r.name),
        )
        busy = running_per_host(records)
        for record in queued:
            if now >= limit:
                break
            if host_full(store, record.host, busy):
                continue  # its host's own limit; others may still start
            if not _begin_queued(store, record.name):
                continue  # aborted (or started) meanwhile
            now += 1
            busy[record.host] += 1
            started.append(record.name)
    # Outside the lock: a turn marked running counts as alive for procs.LAUNCH_GRACE_S
    # before its pid is recorded, so the slot stays taken, and twenty starting commands
    # do not each wait for nineteen forks (the lock guards the count, not the start).
    for name in started:
        spawn_supervisor(store, name)
    return started


def _begin_queued(store: Store, name: str) -> bool:
    """Mark ``name``'s queued exchange running, if it still waits for a slot."""
    began: list[bool] = []

    def begin(record: SessionRecord) -> None:
        if record.status is Status.QUEUED and not lifecycle.waiting(record):
            lifecycle.begin(record)
            began.append(True)

    lifecycle.apply(store, name, begin)
    return bool(began)


def _supervise(paths: ProjectPaths, name: str) -> int:
    """Run the supervisor of ``name``'s exchange; when it ends, start what the queue holds."""
    from cms.engine.supervisor import Supervisor  # the forked child or a fresh interpreter

    store = Store(paths)
    return Supervisor(paths, name, after=lambda: start_queued(store)).run()


def main(argv: list[str] | None = None) -> int:
    """``python -m cms.engine.launcher HOME PROJECT NAME``: a supervisor in a fresh
    interpreter (how a threaded caller such as the MCP server starts one), detached:
    it forks the supervisor, prints its pid and exits."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m cms.engine.launcher HOME PROJECT NAME", file=sys.stderr)
        return 2
    home, project, name = args
    paths = ProjectPaths.for_project(Path(project), Path(home))
    supervisor = os.fork()
    if supervisor:  # the caller reads the pid; this process ends at once
        sys.stdout.write(f"{supervisor}\n")
        sys.stdout.flush()
        return 0
    _detach(2)  # this interpreter's stderr is the supervisor's log already
    return _supervise(paths, name)


if __name__ == "__main__":
    sys.exit(main())
