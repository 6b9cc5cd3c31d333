"""The cms MCP server as Claude Code first meets it: the handshake answered at once,
the real server (:mod:`cms.ui.mcp_server`) started only when a tool is called.

Every child that may delegate further gets the cms MCP server (README.md, "Safety
presets": a child delegates through it, since its own commands cannot write cms
state), and so does the user's own session, through the plugin. Most never call it,
and the real server costs an interpreter with the ``mcp`` SDK and pydantic, about
two CPU seconds, at every start. Claude Code also waits at most five seconds for the
plugin's server before the first turn (the manifest marks it ``alwaysLoad``), and
that start can take longer on a busy machine: the tools would then be missing.

So this standard-library stand-in answers what a client asks before it uses a tool
from answers the real server gave before, and on the first other request starts the
real server, gives it what the client said so far, and from then on passes every
line both ways unchanged. Two kinds of handshake are known:

- the ``initialize`` one (protocol versions up to 2025-11-25): ``initialize``,
  ``notifications/initialized``, then ``tools/list``, ``prompts/list``,
  ``resources/list`` and ``ping``; the ``initialize`` is replayed to the real server;
- the stateless one of 2026-07-28, which Claude Code 2.1.3xx speaks: every request
  carries its version in ``_meta``; ``server/discover`` and the lists are answered,
  and ``subscriptions/listen`` is acknowledged here and handed to the real server when
  it starts, which then holds it (its second acknowledgement is not passed on).

The answers come from two places, for one protocol version each: the file that
ships beside this module (``mcp_handshake.json``, made by ``python -m
cms.ui.mcp_lazy --write-handshake`` and checked against the real server by the
tests), so that the very first session on a machine is answered at once; and what
this machine's real server answered (kept in the state folder's cache), which wins.
Either is used only while its key (cms's version and the digest of the modules the
answers are made from) matches this cms; a request they do not cover (another
version, a list with a cursor, anything unknown) goes to the real server.

Run as ``python -m cms.ui.mcp_lazy``, with the environment the server should see: the
real server it starts knows which session calls it (``CMS_SESSION``) as it would
directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from cms import __version__
from cms.base import paths
from cms.base.files import atomic_write

#: Requests answered from the known answers (with no parameters but ``_meta``; an
#: ``initialize`` has its own).
_LISTS = ("tools/list", "prompts/list", "resources/list")
_ANSWERED = ("initialize", "server/discover", *_LISTS)
#: Either of these with ``tools/list`` makes a set of answers worth keeping.
_OPENINGS = ("initialize", "server/discover")
LISTEN = "subscriptions/listen"
ACKNOWLEDGED = "notifications/subscriptions/acknowledged"
META_VERSION = "io.modelcontextprotocol/protocolVersion"
META_SUBSCRIPTION = "io.modelcontextprotocol/subscriptionId"
#: The answers that ship with cms (see the module's docstring).
SHIPPED = paths.PACKAGE_DIR / "ui" / "mcp_handshake.json"
#: The modules the server's answers are made from: their digest keys the answers.
SOURCES = ("ui/mcp_server.py", "ui/mcp_schema.py", "base/vocab.py", "__init__.py")
#: The protocol versions whose answers ship: the ``initialize`` ones, then the
#: stateless one.
PROTOCOL_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
STATELESS_VERSIONS = ("2026-07-28",)

Answers = dict[str, dict[str, Any]]  # protocol version -> method -> result


def source_key() -> str:
    """cms's version and the digest of :data:`SOURCES` (empty when one is missing)."""
    digest = hashlib.sha256(__version__.encode())
    for name in SOURCES:
        try:
            digest.update((paths.PACKAGE_DIR / name).read_bytes())
        except OSError:
            return ""
    return digest.hexdigest()[:16]


def _cache_file(env: dict[str, str]) -> Path:
    """The answers this machine's real server gave, kept in the state folder."""
    return paths.cms_home(env) / "cache" / "mcp-handshake.json"


def _usable(answers: dict[str, Any]) -> bool:
    return isinstance(answers.get("tools/list"), dict) and any(
        isinstance(answers.get(m), dict) for m in _OPENINGS
    )


def _load(path: Path, key: str) -> Answers:
    """The answers of ``path`` for this cms (none when it was made for another)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not key or not isinstance(data, dict) or data.get("key") != key:
        return {}
    versions, shared = data.get("versions"), data.get("shared", [])
    if not isinstance(versions, dict) or not isinstance(shared, list):
        return {}
    loaded: Answers = {}
    for version, answers in versions.items():
        if not isinstance(answers, dict):
            continue
        answers = {  # an answer that many versions share is kept once, by its index
            m: shared[a] if isinstance(a, int) and 0 <= a < len(shared) else a
            for m, a in answers.items()
        }
        if _usable(answers):
            loaded[version] = answers
    return loaded


def _dump(key: str, versions: Answers) -> str:
    """The file of :func:`_load`: each distinct answer once."""
    shared: list[Any] = []
    compact: dict[str, dict[str, Any]] = {}
    for version, answers in sorted(versions.items()):
        compact[version] = {}
        for method, answer in sorted(answers.items()):
            if answer not in shared:
                shared.append(answer)
            compact[version][method] = shared.index(answer)
    return json.dumps({"key": key, "versions": compact, "shared": shared}, sort_keys=True)


def _write(out: IO[str], message: dict[str, Any]) -> None:
    out.write(json.dumps(message, separators=(",", ":")) + "\n")
    out.flush()


def _params(message: dict[str, Any]) -> dict[str, Any]:
    params = message.get("params")
    return params if isinstance(params, dict) else {}


def _version(message: dict[str, Any], opened: str) -> str:
    """The protocol version of a request: its ``_meta``'s, an ``initialize``'s own, or
    that of the ``initialize`` before it (``opened``)."""
    params = _params(message)
    meta = params.get("_meta")
    if isinstance(meta, dict) and isinstance(meta.get(META_VERSION), str):
        return str(meta[META_VERSION])
    if message.get("method") == "initialize" and isinstance(params.get("protocolVersion"), str):
        return str(params["protocolVersion"])
    return opened


def _plain(message: dict[str, Any]) -> bool:
    """No parameters but ``_meta`` (an ``initialize``'s are its handshake)."""
    return message.get("method") == "initialize" or not set(_params(message)) - {"_meta"}


def _listen_filter(message: dict[str, Any]) -> Any:
    return _params(message).get("notifications")


class _Server:
    """The real server, started on demand, its output copied to ours. ``cache``: where
    to keep its answers for the client's protocol ``version`` (None: keep nothing)."""

    def __init__(
        self, env: dict[str, str], out: IO[str], cache: Path | None, version: str = ""
    ) -> None:
        self.out = out
        self.cache = cache if version else None
        self.version = version
        self.answers: dict[str, Any] = {}
        self.pending: dict[Any, Any] = {}  # request id -> method (or LISTEN's filter)
        self.acknowledged: set[str] = set()  # subscriptions acknowledged here already
        self.ack: dict[str, Any] = {}  # the last acknowledgement ask() met
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cms.ui.cli", "mcp"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**env, "PYTHONPATH": str(paths.PACKAGE_PARENT)},
            text=True,
            bufsize=1,
        )
        self.copier = threading.Thread(target=self._copy, daemon=True)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line if line.endswith("\n") else line + "\n")
        self.proc.stdin.flush()

    def ask(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """Send a request and read its answer (before the copier runs); a listen's
        acknowledgement met on the way is kept in ``ack``."""
        assert self.proc.stdout is not None
        self.send(json.dumps(message))
        for line in self.proc.stdout:
            answer = json.loads(line)
            if "id" not in answer and answer.get("method") == ACKNOWLEDGED:
                self.ack = answer.get("params", {})
            if answer.get("id") == message.get("id") and "method" not in answer:
                return dict(answer)
        return None

    def start_copying(self) -> None:
        self.copier.start()

    def note_request(self, message: dict[str, Any]) -> None:
        """Remember a request whose answer is worth keeping."""
        if self.cache is None or "id" not in message:
            return
        method = message.get("method")
        if method in _ANSWERED and _plain(message) and method not in self.answers:
            self.pending[message["id"]] = method
        elif method == LISTEN:
            self.pending[message["id"]] = (LISTEN, _listen_filter(message))

    def _copy(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if self._note(line):
                self.out.write(line)
                self.out.flush()
        self._save()

    def _note(self, line: str) -> bool:
        """Keep what is worth keeping; False for a line the client must not get again
        (the second acknowledgement of a subscription acknowledged here)."""
        try:
            message = json.loads(line)
        except ValueError:
            return True
        if not isinstance(message, dict):
            return True
        if message.get("method") == ACKNOWLEDGED:
            meta = _params(message).get("_meta")
            subscription = meta.get(META_SUBSCRIPTION) if isinstance(meta, dict) else None
            if subscription in self.acknowledged:
                self.acknowledged.discard(subscription)
                return False
            wanted = self.pending.pop(subscription, None) if self.cache is not None else None
            if isinstance(wanted, tuple):
                self.answers[LISTEN] = {"filter": wanted[1], "ack": _params(message)}
            return True
        method = self.pending.pop(message.get("id"), None) if self.cache is not None else None
        if isinstance(method, str) and "result" in message:
            self.answers[method] = message["result"]
            if _usable(self.answers):
                self._save()
        return True

    def _save(self) -> None:
        """Add this version's answers to the cache file (kept for this cms only)."""
        if self.cache is None or not _usable(self.answers):
            return
        key = source_key()
        versions = _load(self.cache, key)
        versions[self.version] = {**versions.get(self.version, {}), **self.answers}
        with contextlib.suppress(OSError):
            self.cache.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write(self.cache, _dump(key, versions))


class _Front:
    """What the client has been told before the real server runs."""

    def __init__(self, out: IO[str], known: Answers) -> None:
        self.out = out
        self.known = known
        self.opened = ""  # the version of the client's initialize
        self.said: list[str] = []  # lines to give the real server when it starts
        self.acknowledged: set[str] = set()

    def answer(self, message: dict[str, Any], line: str) -> bool:
        """Answer ``message`` from the known answers; False when the real server must."""
        method = message.get("method")
        if method == "initialize":
            self.opened = _version(message, "")
        answers = self.known.get(_version(message, self.opened))
        if answers is None:
            return False
        if "id" not in message:  # a notification: the real server hears it later
            self.said.append(line)
            return True
        if method == "ping":
            result: Any = {}
        elif method in _ANSWERED and method in answers and _plain(message):
            result = answers[method]
        elif method == LISTEN and self._acknowledge(message, answers.get(LISTEN)):
            self.said.append(line)  # held open by the real server, once it runs
            return True
        else:
            return False
        _write(self.out, {"jsonrpc": "2.0", "id": message["id"], "result": result})
        if method == "initialize":
            self.said.append(line)
        return True

    def _acknowledge(self, message: dict[str, Any], known: Any) -> bool:
        if not isinstance(known, dict) or known.get("filter") != _listen_filter(message):
            return False
        subscription = message["id"]
        ack = dict(known.get("ack") or {})
        ack["_meta"] = {**(ack.get("_meta") or {}), META_SUBSCRIPTION: subscription}
        _write(self.out, {"jsonrpc": "2.0", "method": ACKNOWLEDGED, "params": ack})
        self.acknowledged.add(subscription)
        return True

    def hand_over(self, server: _Server) -> None:
        """Give the real server what the client said: an ``initialize`` is asked again
        (its answer was given), the rest is sent as it came."""
        server.acknowledged |= self.acknowledged
        for line in self.said:
            message = json.loads(line)
            if message.get("method") == "initialize":
                message["id"] = f"cms-lazy-{message['id']}"
                server.ask(message)
            else:
                server.send(line)


def serve(stdin: IO[str], out: IO[str], env: dict[str, str]) -> int:
    """Answer from the known answers while it can, then hand over to the real server."""
    key = source_key()
    cache_path = _cache_file(env)
    # This machine's own answers first: the shipped ones were made by another's SDK.
    front = _Front(out, {**_load(SHIPPED, key), **_load(cache_path, key)})
    server: _Server | None = None
    for line in stdin:
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            message = {}
        if server is not None:
            server.note_request(message)
            server.send(line)
            continue
        if not message or front.answer(message, line):
            continue
        version = _version(message, front.opened)
        known = version in front.known
        server = _Server(env, out, None if known else cache_path, version)
        front.hand_over(server)
        server.note_request(message)
        server.start_copying()
        server.send(line)
    if server is not None:
        assert server.proc.stdin is not None
        with contextlib.suppress(OSError):
            server.proc.stdin.close()
        server.proc.wait()
        server.copier.join(timeout=5)
    return 0


def _meta(version: str) -> dict[str, Any]:
    return {
        META_VERSION: version,
        "io.modelcontextprotocol/clientInfo": {"name": "cms", "version": __version__},
        "io.modelcontextprotocol/clientCapabilities": {},
    }


#: What :func:`real_answers` asks at a stateless version to record the listen's answer.
LISTEN_FILTER = {"toolsListChanged": True, "promptsListChanged": True, "resourcesListChanged": True}


def real_answers(version: str, env: dict[str, str]) -> dict[str, Any]:
    """What the real server answers at ``version`` to the handshake's requests."""
    server = _Server(env, sys.stdout, None)
    stateless = version in STATELESS_VERSIONS
    answers: dict[str, Any] = {}
    try:
        if stateless:
            opening: dict[str, Any] = {
                "method": "server/discover",
                "params": {"_meta": _meta(version)},
            }
        else:
            opening = {
                "method": "initialize",
                "params": {
                    "protocolVersion": version,
                    "capabilities": {},
                    "clientInfo": {"name": "cms", "version": __version__},
                },
            }
        requests = [opening] + [
            {"method": m, "params": {"_meta": _meta(version)} if stateless else {}} for m in _LISTS
        ]
        if stateless:
            listen = {"_meta": _meta(version), "notifications": LISTEN_FILTER}
            requests.insert(1, {"method": LISTEN, "params": listen})
        for number, request in enumerate(requests):
            message = {"jsonrpc": "2.0", "id": number, **request}
            if request["method"] == LISTEN:
                server.send(json.dumps(message))  # held open: its acknowledgement comes
                continue
            answer = server.ask(message)
            if answer is None or "result" not in answer:
                raise RuntimeError(f"the real server did not answer {request['method']}: {answer}")
            answers[request["method"]] = answer["result"]
            if request["method"] == "initialize":
                note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
                server.send(json.dumps(note))
        if stateless:
            ack = dict(server.ack)
            meta = {k: v for k, v in (ack.get("_meta") or {}).items() if k != META_SUBSCRIPTION}
            answers[LISTEN] = {"filter": LISTEN_FILTER, "ack": {**ack, "_meta": meta}}
        return answers
    finally:
        assert server.proc.stdin is not None
        server.proc.stdin.close()
        server.proc.wait(timeout=60)


def write_handshake(path: Path = SHIPPED) -> Path:
    """Ask the real server for its answers at every version of :data:`PROTOCOL_VERSIONS`
    and :data:`STATELESS_VERSIONS`, and write them to ``path`` (the shipped file)."""
    env = dict(os.environ)
    versions: Answers = {v: real_answers(v, env) for v in PROTOCOL_VERSIONS + STATELESS_VERSIONS}
    atomic_write(path, _dump(source_key(), versions) + "\n")
    path.chmod(0o644)  # shipped with cms: readable by whoever runs it
    return path


def main() -> int:
    if sys.argv[1:] == ["--write-handshake"]:
        print(write_handshake())
        return 0
    try:
        return serve(sys.stdin, sys.stdout, dict(os.environ))
    except (BrokenPipeError, KeyboardInterrupt):
        return 0


if __name__ == "__main__":
    sys.exit(main())
