"""Reading, waiting for, stopping and removing sessions, and :func:`reconcile`.

Waiting is polling the record, so a waiter can come and go (another terminal, a later
conversation) without affecting the exchange. Nothing here prints; failures are
:class:`cms.base.errors.CmsError`, raised before anything is changed.

Reading a record never changes it (:func:`get_session`, :func:`list_sessions`,
:func:`predecessors` read and nothing else). What a dead supervisor left behind and a
queue that nobody advanced are put right by one explicit step, :func:`reconcile`,
which the commands call where they start (docs/DESIGN.md, "Reconciling").
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cms.base.errors import (
    BadInput,
    CmsError,
    EnvironmentProblem,
    WrongState,
)
from cms.engine import claude, hosts, launcher, lifecycle, procs, seam, worktree
from cms.engine.models import (
    SUCCESSFUL,
    SessionRecord,
    Status,
)
from cms.engine.store import LockTimeout
from cms.ops.checks import check_name, check_timeout
from cms.ops.nesting import check_steer
from cms.ops.project import Project

#: How often a waiter re-reads the records (seconds): an exchange's end is seen this soon.
POLL_S = 0.02
#: The same while the supervisors' ends are watched (:class:`cms.engine.procs.ExitWatch`):
#: then a poll only shows progress, and a waiter takes less of the turn's CPU.
WATCHED_POLL_S = 0.1
#: How long ``abort`` waits for a record's lock before it stops the turn itself.
ABORT_LOCK_S = 2.0
#: How often a waiter reads the records even when their files did not change.
FULL_READ_S = 0.5
#: How often a long-running command (``wait``, ``watch``) reconciles (seconds): a
#: supervisor that died is seen this soon, and a queue whose every supervisor died moves.
RECONCILE_EVERY_S = 2.0

Progress = Callable[[list[SessionRecord]], None]


@dataclass
class Reconciled:
    """What :func:`reconcile` moved."""

    #: Running sessions whose supervisor was gone: now ``interrupted``.
    interrupted: list[str]
    #: Queued sessions it started (a slot had freed with nobody left to notice).
    started: list[str]


def reconcile(project: Project) -> Reconciled:
    """The one code path that repairs the project's sessions: a ``running`` one whose
    supervisor is gone becomes ``interrupted``, with what it left (claude, the
    processes of its turn, its temp folder) stopped and removed; then queued sessions
    start while slots are free (those that run after others settled first). Never
    fails a command: what it cannot do now (read-only state inside a child's sandbox,
    a lock held too long) is left for the next one."""
    interrupted: list[str] = []
    listing = project.store.list()
    for record in listing.records:
        if record.status is Status.RUNNING and not launcher.supervisor_alive(record):
            with contextlib.suppress(CmsError):
                if _interrupt(project, record.name).status is Status.INTERRUPTED:
                    interrupted.append(record.name)
    started: list[str] = []
    if interrupted or any(r.status is Status.QUEUED for r in listing.records):
        with contextlib.suppress(CmsError):
            started = launcher.start_queued(project.store)
    return Reconciled(interrupted, started)


def _interrupt(project: Project, name: str) -> SessionRecord:
    """Record ``name`` interrupted if its supervisor is still gone under the lock."""

    def interrupt(r: SessionRecord) -> None:
        if r.status is Status.RUNNING and not launcher.supervisor_alive(r):
            # What the dead supervisor left: claude, whatever its turn started (the
            # sandbox's proxies outlive a killed claude), its temp folder.
            if r.child_pid and r.child_started:
                procs.kill_tree(r.child_pid, grace_s=1.0, started=r.child_started)
            mark = {
                "CMS_HOME": str(project.paths.home),
                "CMS_PROJECT": str(project.directory),
                "CMS_SESSION": r.name,
            }
            for pid in procs.with_environment(mark):
                procs.kill_tree(pid, grace_s=1.0)
            if r.temp_dir:
                shutil.rmtree(r.temp_dir, ignore_errors=True)
            if r.host != hosts.LOCAL:  # its container, found on the host by its labels
                with contextlib.suppress(CmsError):
                    seam.engine_for(project.paths, r).clear()
            lifecycle.interrupt(r, claude.transcript_exists(r.session_id, project.env))

    return lifecycle.apply(project.store, name, interrupt)


def get_session(project: Project, name: str, mark_read: bool = False) -> SessionRecord:
    """The record of ``name`` as it is on disk; with ``mark_read`` (``cms result``)
    its result counted as read."""
    record = project.store.load(check_name(name))
    if mark_read and not record.result_read and not record.status.active:
        # No fsync: a crash that loses it shows the result as unread once more.
        record = lifecycle.apply(project.store, record.name, lifecycle.read_result, durable=False)
    return record


def predecessors(project: Project, record: SessionRecord) -> dict[str, SessionRecord]:
    """The sessions ``record`` runs after (``--after``), by name; a deleted one is
    left out."""
    found: dict[str, SessionRecord] = {}
    for name in record.after:
        with contextlib.suppress(CmsError):
            found[name] = project.store.load(name)
    return found


@dataclass
class SessionList:
    sessions: list[SessionRecord]
    problems: list[str]


def list_sessions(project: Project, status: str | None = None) -> SessionList:
    if status is not None:
        try:
            wanted: Status | None = Status(status)
        except ValueError:
            choices = ", ".join(s.value for s in Status)
            raise BadInput(f"unknown status {status!r}: choose one of {choices}") from None
    else:
        wanted = None
    listing = project.store.list()
    records = listing.records
    if wanted is not None:
        records = [r for r in records if r.status is wanted]
    return SessionList(records, listing.problems)


def kick_queue(project: Project) -> None:
    """Start what the queue holds, after a command queued a session or freed a slot;
    a command must not fail because the queue could not be advanced."""
    with contextlib.suppress(CmsError):
        launcher.start_queued(project.store)


def wait_sessions(
    project: Project,
    names: list[str] | None = None,
    timeout_s: float | None = None,
    on_progress: Progress | None = None,
    mark_read: bool = True,
    first: bool = False,
    reconciled: bool = False,
) -> list[SessionRecord]:
    """Block until the named sessions (default: all running or queued) stop, or with
    ``first`` (``cms wait --any``) until one of them has stopped: then only that one
    is returned (of several stopped already, the one that ended first).

    Returns the records as they are at the end; sessions still running when the
    timeout runs out are returned as they are (status running or queued).
    ``reconciled``: the caller has just reconciled the project (it started the turn
    it waits for), so the wait does not begin with another reconcile.
    """
    if timeout_s is not None:
        check_timeout(timeout_s)
    if not reconciled:
        reconcile(project)
    last_reconcile = time.monotonic()
    if names:
        for n in names:
            check_name(n)
        targets = list(dict.fromkeys(names))
        for n in targets:
            project.store.load(n)  # NotFound before waiting
    else:
        targets = [r.name for r in list_sessions(project).sessions if r.status.active]
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    seen: list[tuple[int, int, int] | None] = []
    last_read = 0.0
    records: list[SessionRecord] = []
    watch = procs.ExitWatch()
    try:
        while True:
            # A record is read again when its file changed (a stat per poll, not a
            # parse), and every FULL_READ_S anyway: a dead supervisor changes no file.
            stamps = [_stamp(project, n) for n in targets]
            if stamps != seen or time.monotonic() - last_read >= FULL_READ_S:
                records = [get_session(project, n) for n in targets]
                seen, last_read = stamps, time.monotonic()
            if on_progress is not None:
                on_progress(records)
            ended = [r for r in records if not r.status.active]
            if first and ended:
                records = [min(ended, key=lambda r: r.ended_at or r.updated_at)]
                break
            if len(ended) == len(records):
                break
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return records
            if now - last_reconcile >= RECONCILE_EVERY_S:
                reconcile(project)
                last_reconcile = now
            # The end of a turn wakes the waiter at once (its supervisor exits).
            watch.follow(r.pid for r in records if r.status.active and r.pid)
            watch.sleep(WATCHED_POLL_S if watch.watching else POLL_S)
    finally:
        watch.close()
    if mark_read:
        records = [get_session(project, r.name, mark_read=True) for r in records]
    return records


def _stamp(project: Project, name: str) -> tuple[int, int, int] | None:
    """What changes when a record is rewritten (atomically: a new inode)."""
    try:
        info = os.stat(project.paths.session_file(name))
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def all_successful(records: Iterable[SessionRecord]) -> bool:
    return all(r.status in SUCCESSFUL for r in records)


def abort_session(project: Project, name: str, grace_s: float = 3.0) -> SessionRecord:
    """Stop a running (or queued) turn and its whole process tree: status aborted.

    The processes are gone within 10 s whatever the record's lock does: when the lock
    is not had within :data:`ABORT_LOCK_S`, the supervisor cannot learn of the abort
    from the record, so the turn's processes are stopped here, and the outcome is
    recorded once the lock is free."""
    record = get_session(project, name)
    check_steer(project, record)
    if not record.status.active:
        raise WrongState(
            f"session {name!r} is {record.status.value}, not running; nothing to abort"
        )
    if record.status is Status.QUEUED:
        record = lifecycle.apply(project.store, name, lifecycle.abort_queued)
        if record.status is Status.ABORTED:
            return record
    asked = True
    try:
        record = lifecycle.apply(
            project.store, name, lifecycle.request_abort, timeout_s=ABORT_LOCK_S
        )
    except LockTimeout:
        asked = False
    if asked and record.pid and procs.alive(record.pid, record.pid_started):
        import signal

        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signal.SIGTERM)
    # The supervisor stops claude and records the outcome; give it time, then do it
    # ourselves if it could not.
    deadline = time.monotonic() + (grace_s + 5.0 if asked else 0.0)
    while time.monotonic() < deadline:
        record = project.store.load(name)
        if not record.status.active:
            return record
        if record.pid and not procs.alive(record.pid, record.pid_started):
            break
        time.sleep(POLL_S)
    record = project.store.load(name)
    if record.pid:  # first the supervisor, so that it does not record another outcome
        procs.kill_tree(record.pid, grace_s=1.0, started=record.pid_started)
    if record.child_pid:
        procs.kill_tree(record.child_pid, grace_s=grace_s, started=record.child_started)
    try:
        return lifecycle.apply(project.store, name, lifecycle.abort)
    except LockTimeout as exc:
        raise EnvironmentProblem(
            f"stopped every process of session {name!r}, but could not record it: {exc.message}"
        ) from exc


def finish_session(project: Project, name: str) -> SessionRecord:
    """Close a session; it stays on record as finished (``resume`` reopens it)."""
    record = get_session(project, name)
    check_steer(project, record)
    if record.status.active:
        raise WrongState(
            f"session {name!r} is {record.status.value}; wait for it or abort it first"
        )
    return lifecycle.apply(project.store, record.name, lifecycle.finish)


@dataclass
class Deleted:
    """A session as it was when its record and logs were removed."""

    record: SessionRecord

    def as_json(self) -> dict[str, Any]:
        return {**self.record.public(), "deleted": True}


def delete_session(project: Project, name: str, force: bool = False) -> Deleted:
    """Remove a session's record and logs. A running session must be aborted first."""
    record = get_session(project, name)
    check_steer(project, record)
    if record.status.active and not force:
        raise WrongState(
            f"session {name!r} is {record.status.value}; abort it first "
            f"(`cms abort {name}`) or delete with --force"
        )
    if record.worktree and record.branch and not force:
        lost = worktree.unmerged(project.directory, Path(record.worktree), record.branch)
        if lost:
            raise WrongState(
                f"session {name!r} has {' and '.join(lost)}; `cms merge {name}` first, "
                "or delete with --force to throw them away"
            )
    if record.status.active:
        record = abort_session(project, name)
    if record.worktree and record.branch:
        worktree.remove(project.directory, Path(record.worktree), record.branch)
    if record.host != hosts.LOCAL:  # its volumes on the Docker host
        seam.engine_for(project.paths, record).remove()
    project.store.delete(record.name)
    return Deleted(record)


def read_log(
    project: Project, name: str, follow: bool = False, poll_s: float = 0.2
) -> Iterator[bytes]:
    """The session's raw stream-json lines; with ``follow``, until its turn ends."""
    record = get_session(project, name)
    path = project.paths.log_file(record.name)
    position = 0
    pending = b""
    while True:
        try:
            with open(path, "rb") as handle:
                handle.seek(position)
                chunk = handle.read()
                position = handle.tell()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            yield from lines
        if not follow:
            break
        if not get_session(project, record.name).status.active and not chunk:
            break
        time.sleep(poll_s)
    if pending.strip():
        yield pending
