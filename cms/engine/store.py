"""The session store: TOML records on disk, locked and replaced atomically.

Readers never lock: every write goes to a temp file in the same folder that is fsynced
and then ``os.replace``d over the record, so a reader sees the old file or the new one,
never half of one, and a writer killed at any instant leaves a parseable file. Writers
that read-modify-write hold the record's lock (``<file>.lock``, :func:`fcntl.flock`, as
filelock takes it) for the whole cycle so concurrent updates from many processes are
never lost; the kernel lets go of a lock whose holder died.

Permissions: ``$CMS_HOME`` and every folder below are 0700, every file 0600.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cms import __version__
from cms.base import readers
from cms.base.errors import BadInput, CorruptRecord, EnvironmentProblem, NotFound
from cms.base.files import DIR_MODE, FILE_MODE, atomic_write, encodable
from cms.base.paths import ProjectPaths, valid_name
from cms.engine.models import (
    SCHEMA_VERSION,
    InvalidRecord,
    Model,
    ProjectConfig,
    SessionRecord,
    spend,
    utcnow,
)

LOCK_TIMEOUT_S = 30.0
#: How often a waiter tries a held lock again (seconds). Locks are held for a read and
#: a write (milliseconds), and the first ones of a delegation are contended at once
#: (the starter notes the supervisor's pid while the supervisor claims the record):
#: a poll of 50 ms (filelock's default) would add up to that to the start of every turn.
LOCK_POLL_S = 0.005
#: Changes whenever the record model changes, so an index from another cms is ignored.
INDEX_VERSION = f"{SCHEMA_VERSION}:{__version__}"

M = TypeVar("M", bound=Model)


def _state_error(path: Path, exc: OSError, verb: str = "write") -> EnvironmentProblem:
    fix = "fix that or point CMS_HOME elsewhere"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        why = "the disk is full"
        fix = "free space or point CMS_HOME elsewhere"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = "permission denied or read-only file system"
    else:
        why = exc.strerror or str(exc)
    return EnvironmentProblem(f"cannot {verb} cms state at {path}: {why}; {fix}")


def _to_toml(data: dict[str, Any]) -> str:
    import tomli_w  # only writers pay for the import

    def prune(value: Any) -> Any:
        if isinstance(value, dict):
            return {encodable(k): prune(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [prune(v) for v in value]
        if isinstance(value, str):
            return encodable(value)
        return value

    return tomli_w.dumps(prune(data))


def _named(path: Path, record: SessionRecord) -> SessionRecord:
    """``record`` if it names itself as its file does. A record edited to another
    name would have every change (``finish``, ``delete``) land on that other session."""
    if record.name != path.name.removesuffix(".toml"):
        raise CorruptRecord(
            str(path), f"it says name = {record.name[:80]!r}, not the name of its file"
        )
    return record


class LockTimeout(EnvironmentProblem):
    """A lock that another process held past the wait a caller could afford."""


def _open_lock(path: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    with contextlib.suppress(PermissionError):  # made under a narrower umask, or not ours
        if os.fstat(fd).st_mode & 0o777 != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    return fd


def _take_lock(path: str, timeout_s: float) -> int | None:
    """The descriptor of ``path`` with an exclusive :func:`fcntl.flock` on it, tried every
    :data:`LOCK_POLL_S` (at least once) until ``timeout_s`` passed (then None); a
    negative timeout waits for good. A lock file unlinked while we waited (``delete``)
    is opened anew: its old inode locks nothing another process would open."""
    started = time.monotonic()
    fd = _open_lock(path)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if 0 <= timeout_s <= time.monotonic() - started:
                    os.close(fd)
                    return None
                time.sleep(LOCK_POLL_S)
                continue
            if os.fstat(fd).st_nlink > 0:
                return fd
            os.close(fd)
            fd = -1
            fd = _open_lock(path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        raise


@contextlib.contextmanager
def file_lock(path: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold ``path``'s lock file (``<path>.lock``, 0600) while the block runs: the one
    locking scheme of cms (the shell launcher in scripts/ keeps its own). It is
    ``flock`` on that file, as filelock's ``FileLock`` takes it, so the two exclude
    each other."""
    try:
        fd = _take_lock(str(path) + ".lock", timeout_s)
    except OSError as exc:  # read-only file system, no space for the lock file, ...
        raise _state_error(path, exc) from exc
    if fd is None:
        raise LockTimeout(f"timed out waiting for the lock on {path}; is another cms stuck?")
    try:
        yield
    except PermissionError as exc:
        raise _state_error(path, exc) from exc
    finally:
        os.close(fd)  # closing the only descriptor releases the lock


@dataclass
class Listing:
    """Records that loaded, and one line for each file that did not."""

    records: list[SessionRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class Store:
    """All reads and writes of one project's state."""

    def __init__(self, paths: ProjectPaths) -> None:
        self.paths = paths

    # -- folders and locks -------------------------------------------------------

    def ensure_dirs(self) -> None:
        """Create the state folders (0700) if needed; exit-3 error when impossible."""
        home = self.paths.home
        for folder in (
            home,
            home / "projects",
            self.paths.root,
            self.paths.sessions_dir,
            self.paths.logs_dir,
        ):
            try:
                folder.mkdir(mode=DIR_MODE, exist_ok=True, parents=folder == home)
                if folder.stat().st_mode & 0o777 != DIR_MODE:
                    os.chmod(folder, DIR_MODE)
            except OSError as exc:
                raise _state_error(folder, exc) from exc

    def locked(
        self, path: Path, timeout_s: float = LOCK_TIMEOUT_S
    ) -> contextlib.AbstractContextManager[None]:
        """Hold ``path``'s lock for a read-modify-write cycle (:func:`file_lock`)."""
        return file_lock(path, timeout_s)

    # -- generic TOML ------------------------------------------------------------

    def _read(self, path: Path, model: type[M]) -> M:
        return self._validate(path, self._parse(path), model)

    def _parse(self, path: Path) -> dict[str, Any]:
        try:
            # The TOML cms writes, read without tomllib (its import and its parser are a
            # good part of a command's reads); tomllib for anything else.
            return readers.load_toml(str(path))
        except FileNotFoundError:
            raise
        except NotADirectoryError as exc:
            # A folder on the way is a regular file: the state root is unusable (exit 3),
            # not this record corrupt.
            raise _state_error(path, exc, "read") from exc
        except ValueError as exc:  # tomllib.TOMLDecodeError, UnicodeDecodeError
            raise CorruptRecord(str(path), f"not valid TOML ({exc})") from exc
        except OSError as exc:
            raise CorruptRecord(str(path), exc.strerror or str(exc)) from exc

    def _validate(self, path: Path, data: dict[str, Any], model: type[M]) -> M:
        version = data.get("schema_version", SCHEMA_VERSION)
        if not isinstance(version, int) or version > SCHEMA_VERSION or version < 1:
            raise CorruptRecord(
                str(path), f"unknown schema_version {version!r} (this cms reads {SCHEMA_VERSION})"
            )
        try:
            return model.model_validate(data)
        except InvalidRecord as exc:
            raise CorruptRecord(str(path), str(exc)) from exc

    def _write(self, path: Path, record: Model, durable: bool = True) -> None:
        try:
            atomic_write(path, _to_toml(record.model_dump(mode="python")), durable=durable)
        except OSError as exc:
            raise _state_error(path, exc) from exc

    # -- sessions ----------------------------------------------------------------

    def _session_path(self, name: str) -> Path:
        if not valid_name(name):
            raise BadInput(
                f"invalid session name {name[:80]!r}: use 1-63 characters of a-z, 0-9, "
                "'.', '_', '-', starting with a letter or digit"
            )
        return self.paths.session_file(name)

    def exists(self, name: str) -> bool:
        return self._session_path(name).exists()

    def load(self, name: str) -> SessionRecord:
        path = self._session_path(name)
        try:
            return _named(path, self._read(path, SessionRecord))
        except FileNotFoundError:
            raise NotFound(
                f"no session named {name!r} in project {self.paths.project}; see `cms list`"
            ) from None

    def list(self) -> Listing:
        """Every session of the project, by creation time; unreadable files reported."""
        listing = Listing()
        try:
            entries = sorted(os.scandir(self.paths.sessions_dir), key=lambda e: e.name)
        except FileNotFoundError:
            return listing
        except OSError as exc:
            raise _state_error(self.paths.sessions_dir, exc, "read") from exc
        index = self._load_index()
        fresh: dict[str, Any] = {}
        for entry in entries:
            if not entry.name.endswith(".toml") or entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                info = entry.stat()
                stamp = [info.st_ino, info.st_size, info.st_mtime_ns]
                cached = index.get(entry.name)
                if isinstance(cached, dict) and cached.get("stamp") == stamp:
                    record = self._validate(path, cached["data"], SessionRecord)
                else:
                    record = self._read(path, SessionRecord)
                _named(path, record)
                fresh[entry.name] = {"stamp": stamp, "data": record.model_dump(mode="json")}
                listing.records.append(record)
            except CorruptRecord as exc:
                listing.problems.append(f"skipped {exc.path}: {exc.why}")
            except FileNotFoundError:
                continue  # deleted while we listed
        if fresh.keys() != index.keys() or any(
            index[k].get("stamp") != v["stamp"] for k, v in fresh.items()
        ):
            self._save_index(fresh)
        listing.records.sort(key=lambda r: (r.created_at, r.name))
        return listing

    # The index is a cache of parsed records keyed by each file's inode, size and
    # mtime: every write replaces the file (a new inode), so a stale entry is never
    # used. tomllib is pure Python and parsing 1,000 records costs ~250 ms; the index
    # makes a listing of unchanged records a JSON load. It is derived data: a missing
    # or damaged index is rebuilt, never trusted.

    @property
    def _index_path(self) -> Path:
        return self.paths.sessions_dir / ".index.json"

    def _load_index(self) -> dict[str, Any]:
        try:
            with open(self._index_path, "rb") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
            return {}
        entries = data.get("entries")
        return entries if isinstance(entries, dict) else {}

    def _save_index(self, entries: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            atomic_write(
                self._index_path,
                json.dumps({"version": INDEX_VERSION, "entries": entries}, separators=(",", ":")),
                durable=False,
            )

    def spend(self, exclude: str | None = None) -> float:
        """The project's spend over its sessions (:func:`cms.engine.models.spend`)."""
        return spend(self.list().records, exclude)

    def create(self, record: SessionRecord) -> SessionRecord:
        """Write a new record; refuses when the name is taken."""
        self.ensure_dirs()
        path = self._session_path(record.name)
        with self.locked(path):
            if path.exists():
                raise BadInput(
                    f"a session named {record.name!r} already exists; "
                    "choose another --name or `cms delete` it"
                )
            self._write(path, record)
        return record

    def save(self, record: SessionRecord) -> SessionRecord:
        path = self._session_path(record.name)
        with self.locked(path):
            record.updated_at = utcnow()
            self._write(path, record)
        return record

    def update(
        self,
        name: str,
        change: Callable[[SessionRecord], object],
        timeout_s: float = LOCK_TIMEOUT_S,
        durable: bool = True,
    ) -> SessionRecord:
        """Read-modify-write one record under its lock; ``change`` edits it in place (or
        returns a record to write instead; any other return value is ignored).
        :class:`LockTimeout` when the lock is not had within ``timeout_s``.

        ``durable=False`` skips the fsync (still atomic for every reader): for what a
        running turn notes about its own processes (pids, its temp folder), which a
        crash of the machine makes moot anyway, so that no fsync stands between a
        delegation and the start of its claude. A status change is always durable."""
        path = self._session_path(name)
        with self.locked(path, timeout_s):
            record = self.load(name)
            was_status = record.status
            returned = change(record)
            updated = returned if isinstance(returned, SessionRecord) else record
            updated.updated_at = utcnow()
            self._write(path, updated, durable=durable or updated.status is not was_status)
            return updated

    def delete(self, name: str) -> None:
        path = self._session_path(name)
        with self.locked(path):
            if not path.exists():
                raise NotFound(f"no session named {name!r} in project {self.paths.project}")
            for target in (
                self.paths.log_file(name),
                self.paths.stderr_file(name),
                self.paths.supervisor_log(name),
                path,
            ):
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()
        with contextlib.suppress(FileNotFoundError):
            Path(str(path) + ".lock").unlink()

    # -- project -----------------------------------------------------------------

    def load_project(self) -> ProjectConfig:
        try:
            return self._read(self.paths.project_file, ProjectConfig)
        except FileNotFoundError:
            return ProjectConfig(project=str(self.paths.project))

    def update_project(
        self, change: Callable[[ProjectConfig], ProjectConfig | None]
    ) -> ProjectConfig:
        self.ensure_dirs()
        path = self.paths.project_file
        with self.locked(path):
            config = self.load_project()
            config = change(config) or config
            config.project = str(self.paths.project)
            self._write(path, config)
            return config
