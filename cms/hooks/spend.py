"""Spend read from Claude Code's own transcripts: the user's sessions, their native
subagents and cms's children, priced by :mod:`cms.hooks.prices`.

Where Claude Code 2.1.332 keeps them (checked with a real run, docs/DESIGN.md "Budgets
over all of Claude Code"): a session's transcript is the hook input's
``transcript_path``, ``<config>/projects/<cwd with every other character than a
letter or digit made '-'>/<session id>.jsonl``; each native subagent of it writes its
own, ``<that folder>/<session id>/subagents/agent-<agent id>.jsonl`` (with an
``agent-<id>.meta.json`` beside it naming its type), and the subagent's hook calls
carry ``agent_id`` and ``agent_type`` with the parent's ``transcript_path``.

Each assistant message's ``usage`` is counted once: Claude Code writes a message of
several content blocks as several lines that share the message's ``id``, each with the
whole usage, so a line whose id is the one counted last replaces it. A line that is not
JSON is skipped (and counted in ``bad_lines``). What was read is kept per transcript in
the project's state folder (``spend/<session id>[.<agent id>].json``): the offset, the
file's identity (device, inode), its size and modification time, and the last bytes
before the offset. A transcript whose identity changed, which shrank, or whose bytes
before the offset are no longer the same was rewritten: it is read again from the
start, never miscounted. An unchanged transcript costs one ``stat``.

Standard library only: it runs in the PreToolUse hook of capped sessions.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cms.base import paths
from cms.hooks import prices

if TYPE_CHECKING:
    from typing import Any

STATE_VERSION = 1
#: Bytes before the offset kept to tell a rewritten transcript from a grown one.
_TAIL = 64
#: Read this much at a time (a transcript of many megabytes is read once, in pieces).
_CHUNK = 1 << 20
#: How long a hook waits for Claude Code to write the message of the call it judges.
FLUSH_WAIT_S = 2.0
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")

State = dict[str, "Any"]


def valid_id(value: object) -> bool:
    """A session or agent id that is safe as part of a file name."""
    return isinstance(value, str) and bool(_ID_RE.fullmatch(value))


def local_day(stamp: object, fallback: float) -> str:
    """The user's local calendar day of an ISO time stamp (else of ``fallback``)."""
    if isinstance(stamp, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(stamp).astimezone().date().isoformat()
    return datetime.fromtimestamp(fallback).date().isoformat()


def today(now: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if now is None else now).date().isoformat()


def claude_folder(directory: str | os.PathLike[str], env: Mapping[str, str]) -> Path:
    """Where Claude Code keeps the transcripts of sessions started in ``directory``."""
    name = re.sub(r"[^A-Za-z0-9]", "-", os.fspath(directory))
    return paths.claude_config_dir(env) / "projects" / name


def subagent_transcript(transcript: str, session_id: str, agent_id: str) -> Path:
    return Path(transcript).parent / session_id / "subagents" / f"agent-{agent_id}.jsonl"


def _fresh(meta: Mapping[str, Any]) -> State:
    return {
        "v": STATE_VERSION,
        **meta,
        "dev": None,
        "ino": None,
        "size": 0,
        "mtime_ns": 0,
        "offset": 0,
        "tail": "",
        "last_id": None,
        "last": None,
        "total": 0.0,
        "days": {},
        "models": {},
        "unknown": [],
        "bad_lines": 0,
        "first_prompt": None,
        "tool_ids": [],
    }


def _load(state_file: Path) -> State | None:
    try:
        with open(state_file, "rb") as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and state.get("v") == STATE_VERSION else None


class Ledger:
    """The spend folder of one project: a state per transcript read."""

    def __init__(self, where: paths.ProjectPaths, env: Mapping[str, str]) -> None:
        self.where = where
        self.env = env
        self.folder = where.root / "spend"

    def state_file(self, session_id: str, agent_id: str | None = None) -> Path:
        return self.folder / (f"{session_id}.{agent_id}.json" if agent_id else f"{session_id}.json")

    def read(
        self,
        transcript: str | os.PathLike[str],
        session_id: str,
        agent_id: str | None = None,
        **meta: Any,
    ) -> State:
        """The transcript's tally, brought up to date (only what was added is read)."""
        state_file = self.state_file(session_id, agent_id)
        meta = {"transcript": os.fspath(transcript), "session_id": session_id,
                "agent_id": agent_id, **meta}  # fmt: skip
        state = _load(state_file)
        if state is None or state.get("transcript") != meta["transcript"]:
            state = _fresh(meta)
        if agent_id and not meta.get("agent_type") and not state.get("agent_type"):
            meta["agent_type"] = _agent_type(Path(meta["transcript"]))
        changed = any(state.get(k) != v for k, v in meta.items() if v is not None)
        for key, value in meta.items():
            if value is not None:
                state[key] = value
        if _catch_up(state, Path(meta["transcript"])) or changed:
            self._save(state_file, state)
        return state

    def read_through(
        self,
        transcript: str | os.PathLike[str],
        session_id: str,
        agent_id: str | None = None,
        tool_use_id: str | None = None,
        **meta: Any,
    ) -> State:
        """:meth:`read`, waiting (up to :data:`FLUSH_WAIT_S`) until the transcript holds
        the message that asks for ``tool_use_id``: Claude Code 2.1.332 writes a
        transcript (a subagent's, and the session's own on a busy machine) some tens of
        milliseconds after the message came, and its PreToolUse hook may run before
        that, so the call would be judged without the price of the very message that
        made it."""
        deadline = time.monotonic() + FLUSH_WAIT_S
        while True:
            state = self.read(transcript, session_id, agent_id, **meta)
            if not tool_use_id or tool_use_id in state.get("tool_ids", ()):
                return state
            if time.monotonic() >= deadline or not os.path.exists(transcript):
                return state
            time.sleep(0.01)

    def _save(self, state_file: Path, state: State) -> None:
        """Keep what was read. A state folder that cannot be written (a child's sandbox,
        a full disk) only costs reading the transcript again next time."""
        data = json.dumps(state).encode()
        try:
            try:
                replace_file(state_file, data)
            except FileNotFoundError:
                os.makedirs(self.folder, mode=0o700, exist_ok=True)
                replace_file(state_file, data)
        except OSError:
            pass

    def subagents(self, transcript: str, session_id: str) -> list[State]:
        """Every subagent of the session, each brought up to date."""
        folder = Path(transcript).parent / session_id / "subagents"
        found = []
        for path in _listing(folder):
            name = path.name
            if name.startswith("agent-") and name.endswith(".jsonl"):
                agent_id = name[len("agent-") : -len(".jsonl")]
                if valid_id(agent_id):
                    found.append(self.read(path, session_id, agent_id))
        return found

    def states(self, since: float | None = None) -> Iterator[State]:
        """Every state kept, as last read (nothing is read again); with ``since``, those
        written after it (a session that spent since then had its state written by its
        own hook calls, or its transcript is found in the project's folders)."""
        for path in _listing(self.folder):
            if path.name.endswith(".json") and not path.name.startswith("."):
                state = _load(path) if _newer(path, since) else None
                if state is not None:
                    yield state

    def read_all(self, folders: Iterable[Path], since: float | None = None) -> list[State]:
        """Every transcript of the project brought up to date: those in Claude Code's
        ``folders`` (with their subagents) and those read before by a hook. With
        ``since``, only transcripts written after it are read again."""
        seen: dict[tuple[str, str | None], State] = {}
        for state in self.states(since):
            seen[(str(state.get("session_id")), state.get("agent_id"))] = state
        for folder in folders:
            for path in _listing(folder):
                sid = path.name[: -len(".jsonl")]
                if not path.name.endswith(".jsonl") or not valid_id(sid):
                    continue
                if _newer(path, since):
                    seen[(sid, None)] = self.read(path, sid)
                for sub in _listing(folder / sid / "subagents"):
                    agent = sub.name[len("agent-") : -len(".jsonl")]
                    named = sub.name.startswith("agent-") and sub.name.endswith(".jsonl")
                    if named and valid_id(agent) and _newer(sub, since):
                        seen[(sid, agent)] = self.read(sub, sid, agent)
        for key, state in list(seen.items()):
            transcript = state.get("transcript")
            if isinstance(transcript, str) and _newer(Path(transcript), since):
                seen[key] = self.read(transcript, key[0], key[1])
        return list(seen.values())


def replace_file(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all (a temp file renamed over it; a cache, so no
    fsync), mode 0600. Not :func:`cms.base.files.atomic_write`: ``tempfile`` costs the
    hook a tenth of an interpreter's start."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _agent_type(transcript: Path) -> str | None:
    """The subagent's type from the ``.meta.json`` Claude Code writes beside its
    transcript (``agentType``), if it can be read."""
    try:
        with open(transcript.with_suffix(".meta.json"), "rb") as handle:
            meta = json.load(handle)
    except (OSError, ValueError):
        return None
    kind = meta.get("agentType") if isinstance(meta, dict) else None
    return kind if isinstance(kind, str) and kind else None


def _listing(folder: Path) -> list[Path]:
    try:
        return sorted(folder / name for name in os.listdir(folder))
    except OSError:
        return []


def _newer(path: Path, since: float | None) -> bool:
    if since is None:
        return True
    try:
        return os.stat(path).st_mtime >= since
    except OSError:
        return False


def _catch_up(state: State, transcript: Path) -> bool:
    """Read what was added to ``transcript`` since ``state``; True when it changed."""
    try:
        st = os.stat(transcript)
    except OSError:
        return False  # not there (yet): nothing spent that can be read
    same_file = (state["dev"], state["ino"]) == (st.st_dev, st.st_ino)
    if same_file and st.st_size == state["size"] and st.st_mtime_ns == state["mtime_ns"]:
        return False
    with open(transcript, "rb") as handle:
        offset = state["offset"]
        if not same_file or st.st_size < offset or not _tail_holds(handle, state):
            state.update(_fresh({k: state.get(k) for k in _META}))
            offset = 0
        handle.seek(offset)
        rest = b""
        while True:
            chunk = handle.read(_CHUNK)
            if not chunk:
                break
            data = rest + chunk
            end = data.rfind(b"\n") + 1
            for line in data[:end].splitlines():
                _take(state, line, st.st_mtime)
            offset += end
            rest = data[end:]
        handle.seek(max(offset - _TAIL, 0))
        state["tail"] = handle.read(min(offset, _TAIL)).hex()
    state.update(dev=st.st_dev, ino=st.st_ino, size=st.st_size, mtime_ns=st.st_mtime_ns)
    state["offset"] = offset  # a last line still being written is read next time
    return True


_META = ("transcript", "session_id", "agent_id", "agent_type", "cms_name")


def _tail_holds(handle: Any, state: State) -> bool:
    offset, tail = state["offset"], state["tail"]
    if offset == 0:
        return True
    handle.seek(max(offset - _TAIL, 0))
    return bool(handle.read(min(offset, _TAIL)).hex() == tail)


def _take(state: State, line: bytes, mtime: float) -> None:
    """Count one transcript line into ``state``."""
    if b'"assistant"' in line and b'"usage"' in line:
        entry = _json(state, line)
        if entry is not None and entry.get("type") == "assistant":
            _count(state, entry, mtime)
    elif state["first_prompt"] is None and b'"user"' in line:
        entry = _json(state, line)
        if entry is not None and entry.get("type") == "user" and not entry.get("isMeta"):
            message = entry.get("message")
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str) and content.strip():
                state["first_prompt"] = " ".join(content.split())[:80]
    elif line.strip() and line.lstrip()[:1] != b"{":
        state["bad_lines"] += 1


def _json(state: State, line: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(line)
    except ValueError:
        state["bad_lines"] += 1
        return None
    return entry if isinstance(entry, dict) else None


def _count(state: State, entry: Mapping[str, Any], mtime: float) -> None:
    message = entry.get("message")
    if not isinstance(message, dict) or not isinstance(message.get("usage"), dict):
        return
    model = message.get("model")
    model = model if isinstance(model, str) and model else "unknown"
    cost, known = prices.usage_cost(model, message["usage"])
    msg_id = message.get("id")
    if isinstance(msg_id, str) and msg_id and msg_id == state["last_id"] and state["last"]:
        last_cost, last_day, last_model = state["last"]
        _add(state, -last_cost, last_day, last_model)  # one message, several lines
    day = local_day(entry.get("timestamp"), mtime)
    _add(state, cost, day, model)
    same = isinstance(msg_id, str) and msg_id == state["last_id"]
    ids = [
        b["id"]
        for b in message.get("content") or []
        if isinstance(b, dict) and b.get("type") == "tool_use" and isinstance(b.get("id"), str)
    ]
    state["tool_ids"] = [*state["tool_ids"], *ids] if same else ids
    state["last_id"] = msg_id if isinstance(msg_id, str) else None
    state["last"] = [cost, day, model]
    if not known and cost > 0 and model not in state["unknown"]:
        state["unknown"].append(model)


def _add(state: State, cost: float, day: str, model: str) -> None:
    state["total"] += cost
    state["days"][day] = state["days"].get(day, 0.0) + cost
    state["models"][model] = state["models"].get(model, 0.0) + cost
