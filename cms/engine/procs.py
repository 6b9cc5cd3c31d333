"""Processes: liveness that survives pid reuse, and stopping a whole process tree.

A pid alone is not an identity: after a reboot or a long time the number is reused.
So cms records a process's start time (``/proc/<pid>/stat`` field 22, clock ticks
since boot) beside its pid and calls it alive only when both match.

Stopping a turn must leave nothing behind. ``claude`` runs in its own process group
(``start_new_session``), but tools it starts may make groups of their own, so
:func:`kill_tree` collects the descendants by parent pid first, then signals the group
and every descendant: SIGTERM, a short grace, then SIGKILL for whatever is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime


def _stat_fields(pid: int | str) -> list[bytes]:
    """Fields 3 and on of /proc/<pid>/stat (state, ppid, ...), [] if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return []
    # The command name (field 2) may contain spaces and parens: split after the last ')'.
    return raw[raw.rfind(b")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it is gone."""
    try:
        return int(_stat_fields(pid)[19])
    except (IndexError, ValueError):
        return None


def _state(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[0].decode() if fields else None


def alive(pid: int | None, started: int | None = None) -> bool:
    """True when ``pid`` runs (not a zombie) and, if given, started at ``started``."""
    if not pid or pid <= 0:
        return False
    if os.path.isdir("/proc"):
        if _state(pid) in (None, "Z", "X"):
            return False
        return started is None or start_ticks(pid) == started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: A turn marked running whose supervisor pid is not yet recorded is given this long
#: (seconds) before it counts as dead: the window between marking it and spawning.
LAUNCH_GRACE_S = 30.0


def supervisor_alive(pid: int | None, started: int | None, marked_at: datetime | None) -> bool:
    """Whether the supervisor of a running turn lives: its pid (checked against its
    start time), or, before the pid is recorded, a turn marked less than
    :data:`LAUNCH_GRACE_S` ago. The one rule for the engine and the parent's hooks."""
    if pid is None:
        if marked_at is None:
            return False
        return (datetime.now(UTC) - marked_at).total_seconds() < LAUNCH_GRACE_S
    return alive(pid, started)


def _children(pid: int) -> list[int] | None:
    """The direct children of ``pid`` from ``/proc/<pid>/task/*/children`` ([] when it
    is gone), or None where the kernel does not list them."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return [] if os.path.isdir(f"/proc/{os.getpid()}/task") else None
    found: list[int] = []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", "rb") as handle:
                found += [int(child) for child in handle.read().split()]
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{task}/stat"):
                continue  # that thread ended meanwhile
            return None  # a kernel without CONFIG_PROC_CHILDREN
        except (OSError, ValueError):
            continue
    return found


def descendants(pid: int) -> list[int]:
    """All processes below ``pid`` (children, grandchildren, ...), from /proc: by each
    process's list of children where the kernel keeps one (a few reads, not one per
    process of the machine), else by every process's parent pid."""
    found: list[int] = []
    stack = [pid]
    while stack:
        children = _children(stack.pop())
        if children is None:
            return _descendants_by_scan(pid)
        for child in children:
            if child not in found:
                found.append(child)
                stack.append(child)
    return found


def _descendants_by_scan(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        fields = _stat_fields(entry)
        try:
            parent = int(fields[1])
        except (IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.append(child)
                stack.append(child)
    return found


def _signal_all(pids: Iterable[int], pgid: int | None, sig: signal.Signals) -> None:
    if pgid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def kill_tree(pid: int, grace_s: float = 3.0, started: int | None = None) -> None:
    """Stop ``pid``, its process group and all its descendants; escalate to SIGKILL.

    ``pid`` is expected to lead its own process group (started with
    ``start_new_session``). When ``started`` is given and does not match, the pid was
    reused by an unrelated process and nothing is signalled.
    """
    if not alive(pid, started):
        return
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    group = pgid if pgid == pid else None
    tree = [pid, *descendants(pid)]
    _signal_all(tree, group, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        tree = [p for p in tree if alive(p)] + [p for p in descendants(pid) if p not in tree]
        if not tree and not (group and _group_alive(group)):
            return
        time.sleep(0.05)
    tree = [p for p in {pid, *tree, *descendants(pid)} if alive(p)]
    _signal_all(tree, group, signal.SIGKILL)


def become_subreaper() -> bool:
    """Adopt this process's orphaned descendants (Linux ``PR_SET_CHILD_SUBREAPER``).

    Claude Code runs each Bash tool call in a session of its own (``setsid``), so when
    claude dies those processes leave its process group and, orphaned, would be
    re-parented to init where no pid walk finds them. A subreaper gets them instead,
    and :func:`descendants` of the supervisor still lists them. False where this is
    not supported (then only what is still below claude can be stopped).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(36, 1, 0, 0, 0)) == 0  # 36: PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def stop_descendants(grace_s: float = 1.0) -> None:
    """Stop every process below this one (what a finished child left behind), and
    reap the adopted ones so no zombie lingers."""
    for pid in descendants(os.getpid()):
        kill_tree(pid, grace_s=grace_s)
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def with_environment(wanted: Mapping[str, str]) -> list[int]:
    """Pids of live processes (not this one) whose environment holds every pair of
    ``wanted``: what a dead supervisor's turn left behind, found by the variables cms
    gave it (a child's CMS_HOME and CMS_SESSION), whoever their parent is now."""
    needles = [f"{k}={v}".encode() for k, v in wanted.items()]
    found: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                environ = handle.read().split(b"\0")
        except OSError:
            continue
        if all(n in environ for n in needles) and _state(int(entry)) not in (None, "Z", "X"):
            found.append(int(entry))
    return found


def sweep(marker: Mapping[str, str], grace_s: float = 1.0) -> None:
    """Stop every live process whose environment carries ``marker`` (and what is below
    each): what a turn started, wherever it was re-parented."""
    for pid in with_environment(marker):
        kill_tree(pid, grace_s=grace_s)


def start_reaper(marker: Mapping[str, str]) -> tuple[int, int] | None:
    """Fork a watcher that outlives this process, for the one end of a turn no code of
    the supervisor sees: its own SIGKILL. Its orphans (claude, the sandbox's ``socat``
    bridges, tool commands) are then re-parented past it to init or an outer
    subreaper, where no walk from here finds them. The watcher waits on a pipe;
    :func:`release_reaper` (the turn ended in order) lets it go, while end of file
    without a word (this process died) makes it :func:`sweep` every process that
    carries ``marker``. Fork it before any pipe to claude is open, so it holds none.
    Returns the watcher's pid and the write end of its pipe (None: no fork here)."""
    if not hasattr(os, "fork"):
        return None
    try:
        read_end, write_end = os.pipe()
    except OSError:
        return None  # no reaper: the turn still runs; a read that finds it dead cleans up
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return None
    if pid:
        os.close(read_end)
        return pid, write_end
    try:  # the watcher: no return from here
        os.close(write_end)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with contextlib.suppress(BaseException):
            released = os.read(read_end, 1)
            if not released:
                sweep(marker)
    finally:
        os._exit(0)


def release_reaper(reaper: tuple[int, int] | None) -> None:
    """Tell the watcher of :func:`start_reaper` that the turn ended in order, and reap
    it (it exits as soon as it reads that)."""
    if reaper is None:
        return
    pid, write_end = reaper
    with contextlib.suppress(OSError):
        os.write(write_end, b"x")
    with contextlib.suppress(OSError):
        os.close(write_end)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0)


class ExitWatch:
    """Sleeps that end early when a watched process ends: a waiter sees a turn's end
    the moment its supervisor exits (it records the outcome first), not at its next
    poll. Linux pidfds (``os.pidfd_open``); elsewhere, or for a pid that cannot be
    opened, a plain sleep. Each process wakes the waiter once: an ended one is dropped.
    """

    def __init__(self) -> None:
        self._fds: dict[int, int] = {}
        self._ended: set[int] = set()

    def follow(self, pids: Iterable[int]) -> None:
        """Watch exactly these processes (those no longer given are let go)."""
        wanted = {pid for pid in pids if pid and pid > 0} - self._ended
        for pid in list(self._fds):
            if pid not in wanted:
                os.close(self._fds.pop(pid))
        opener = getattr(os, "pidfd_open", None)
        for pid in wanted - set(self._fds):
            if opener is None:
                return
            try:
                self._fds[pid] = opener(pid)
            except OSError:
                self._ended.add(pid)  # gone already (or not ours to watch)

    @property
    def watching(self) -> bool:
        """Whether an end would wake the sleeper (else it only sleeps)."""
        return bool(self._fds)

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less if a watched process ends meanwhile."""
        if not self._fds:
            time.sleep(seconds)
            return
        import select

        poller = select.poll()
        for fd in self._fds.values():
            poller.register(fd, select.POLLIN)
        for fd, _ in poller.poll(seconds * 1000):
            pid = next(p for p, f in self._fds.items() if f == fd)
            os.close(self._fds.pop(pid))
            self._ended.add(pid)

    def close(self) -> None:
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


@dataclass(frozen=True)
class Completed:
    """The outcome of a short command run to completion."""

    argv: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    def first_error_line(self) -> str:
        for line in (self.stderr or self.stdout).splitlines():
            if line.strip():
                return line.strip()
        return f"exit status {self.code}"


def run(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    stdin_text: str | None = None,
) -> Completed:
    """Run a short command and capture its output: the one wrapper for such calls.

    Raises OSError when it cannot be started and subprocess.TimeoutExpired when it
    runs past ``timeout``; a non-zero exit is a result, not an exception.
    """
    return begin(argv, cwd=cwd, env=env, stdin_text=stdin_text).result(timeout)


class Running:
    """A short command started by :func:`begin`; :meth:`result` waits for it."""

    def __init__(
        self, argv: Sequence[str], proc: subprocess.Popen[str], stdin_text: str | None
    ) -> None:
        self.argv, self._proc, self._stdin_text = tuple(argv), proc, stdin_text

    def result(self, timeout: float = 60.0) -> Completed:
        """Its outcome (subprocess.TimeoutExpired past ``timeout``, the command killed)."""
        try:
            out, err = self._proc.communicate(self._stdin_text, timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.communicate()
            raise
        return Completed(self.argv, self._proc.returncode, out, err)


def begin(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    stdin_text: str | None = None,
) -> Running:
    """Start a short command whose output is read later (:meth:`Running.result`), so a
    caller does other work meanwhile; OSError when it cannot be started."""
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return Running(argv, proc, stdin_text)
