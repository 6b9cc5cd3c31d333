"""The cms MCP server as a child gets it: answers the handshake at once, starts the
real server (:mod:`cms.ui.mcp_server`) only when a tool is called.

Every child that may delegate further gets the cms MCP server (README.md, "Safety
presets": a child delegates through it, since its own commands cannot write cms
state). Most children never call it, and the real server costs an interpreter with
the ``mcp`` SDK and pydantic, about two CPU seconds, per child exchange. So this
standard-library stand-in answers ``initialize``, ``tools/list`` and ``ping`` from
what the real server answered before (cached per cms version in the state folder),
and on the first other request starts the real server, replays the handshake to it
and from then on passes every line both ways unchanged. Without a cached answer (the
first run of this cms) it starts the real server at once and caches its answers.

Run as ``python -m cms.ui.mcp_lazy``, with the child's environment: the real server
it starts knows which session calls it (``CMS_SESSION``) as it would directly.
"""

from __future__ import annotations

import contextlib
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

#: The methods answered from the cache; anything else needs the real server.
_CACHED = ("initialize", "tools/list", "ping")


def _cache_file(env: dict[str, str]) -> Path:
    """One cache per cms version and per server module (a changed tool list in a
    checkout is a changed file)."""
    server = paths.PACKAGE_DIR / "ui" / "mcp_server.py"
    try:
        stamp = f"{server.stat().st_size}-{server.stat().st_mtime_ns}"
    except OSError:
        stamp = "0"
    return paths.cms_home(env) / "cache" / f"mcp-{__version__}-{stamp}.json"


def _load(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and isinstance(data.get("initialize"), dict):
        return data
    return None


def _write(out: IO[str], message: dict[str, Any]) -> None:
    out.write(json.dumps(message, separators=(",", ":")) + "\n")
    out.flush()


class _Server:
    """The real server, started on demand, its output copied to ours."""

    def __init__(self, env: dict[str, str], out: IO[str], cache: Path | None) -> None:
        self.out = out
        self.cache = cache
        self.answers: dict[str, Any] = {}
        self.pending: dict[Any, str] = {}  # request id -> method, for what to cache
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
        """Send a request and read its answer (before the copier runs)."""
        assert self.proc.stdout is not None
        self.send(json.dumps(message))
        for line in self.proc.stdout:
            answer = json.loads(line)
            if answer.get("id") == message.get("id"):
                return dict(answer)
        return None

    def start_copying(self) -> None:
        self.copier.start()

    def _copy(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._note(line)
            self.out.write(line)
            self.out.flush()
        self._save()

    def _note(self, line: str) -> None:
        """Keep the handshake's answers (what the cache will replay)."""
        if self.cache is None or not self.pending:
            return
        with contextlib.suppress(ValueError, AttributeError):
            answer = json.loads(line)
            method = self.pending.pop(answer.get("id"), None)
            if method is not None and "result" in answer:
                self.answers[method] = answer["result"]
                if {"initialize", "tools/list"} <= set(self.answers):
                    self._save()

    def _save(self) -> None:
        if self.cache is None or not {"initialize", "tools/list"} <= set(self.answers):
            return
        with contextlib.suppress(OSError):
            self.cache.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write(self.cache, json.dumps(self.answers))
        self.cache = None


def serve(stdin: IO[str], out: IO[str], env: dict[str, str]) -> int:
    """Answer from the cache while it can, then hand over to the real server."""
    cache_path = _cache_file(env)
    cached = _load(cache_path)
    server: _Server | None = None
    handshake: list[str] = []  # what the client sent before the real server started
    for line in stdin:
        try:
            message = json.loads(line)
        except ValueError:
            message = {}
        method = message.get("method")
        if server is not None:
            if server.cache is not None and method in _CACHED and "id" in message:
                server.pending[message["id"]] = method
            server.send(line)
            continue
        if not message:
            continue
        if cached is not None and method in _CACHED and "id" in message:
            result = {} if method == "ping" else cached[method]
            _write(out, {"jsonrpc": "2.0", "id": message["id"], "result": result})
            if method == "initialize":
                handshake.append(line)
            continue
        if cached is not None and method == "notifications/initialized":
            handshake.append(line)
            continue
        server = _Server(env, out, None if cached is not None else cache_path)
        if cached is not None:
            _replay(server, handshake)
        elif "id" in message and method in _CACHED:
            server.pending[message["id"]] = method
        server.start_copying()
        server.send(line)
    if server is not None:
        assert server.proc.stdin is not None
        with contextlib.suppress(OSError):
            server.proc.stdin.close()
        server.proc.wait()
        server.copier.join(timeout=5)
    return 0


def _replay(server: _Server, handshake: list[str]) -> None:
    """Give the real server the handshake the client already had answered."""
    for line in handshake:
        message = json.loads(line)
        if "id" in message:
            message["id"] = f"cms-lazy-{message['id']}"
            server.ask(message)
        else:
            server.send(line)


def main() -> int:
    try:
        return serve(sys.stdin, sys.stdout, dict(os.environ))
    except (BrokenPipeError, KeyboardInterrupt):
        return 0


if __name__ == "__main__":
    sys.exit(main())
