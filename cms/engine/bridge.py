"""What runs inside the containers of a turn on a Docker host (standard library only).

A turn's container has no network at all (``--network none``). claude in it reaches
the model API, and the child's commands the project's allowed domains, through a
small proxy in a second container of the same turn on the Docker host's own network
(``--network host``): the two share a per-turn volume holding two unix sockets, and
this module runs on both ends, as Claude Code's own sandbox bridges its network.

- ``python3 -m cms.engine.bridge turn -- ARGV...`` (the turn's container): writes the
  record snapshot the child's hook reads (``CMS_RECORD_SNAPSHOT``, given at the start
  of the turn: the record itself never enters the container), listens on the
  container's own 127.0.0.1 for each ``CMS_BRIDGE_FORWARD`` pair (``PORT=SOCKET``,
  comma-separated) and relays every connection to that socket, then runs ARGV
  (claude) with this process's stdin and stdout and exits with its status. With
  ``CMS_BRIDGE_STDIN_ENV`` the first line of stdin is a JSON object of variables for
  claude (the credentials, which so appear in no container's configuration).
- ``python3 -m cms.engine.bridge proxy DIR API_HOST:API_PORT [DOMAIN...]`` (the
  proxy's container): ``DIR/api.sock`` relays to the model API's host and port, and
  ``DIR/proxy.sock`` is an HTTP ``CONNECT`` proxy that opens only the allowed domains
  (a domain, or any name below it) on ports 80 and 443. Nothing else is reachable:
  no other host, no other port, none of the Docker host's loopback listeners.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from cms.base import paths

API_SOCKET = "api.sock"
PROXY_SOCKET = "proxy.sock"
#: The port of the allowlisting proxy inside a turn's container (HTTPS_PROXY).
PROXY_PORT = 3128
SOCKET_WAIT_S = 10.0


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def relay(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until both sides closed, then close both."""
    other = threading.Thread(target=_pump, args=(b, a), daemon=True)
    other.start()
    _pump(a, b)
    other.join()
    a.close()
    b.close()


def _connect_unix(path: str) -> socket.socket:
    deadline = time.monotonic() + SOCKET_WAIT_S
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except OSError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _serve(server: socket.socket, handle: object) -> None:
    assert callable(handle)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def forward(port: int, socket_path: str) -> None:
    """Listen on 127.0.0.1:port and relay each connection to ``socket_path``."""
    server = socket.create_server(("127.0.0.1", port))

    def handle(conn: socket.socket) -> None:
        try:
            upstream = _connect_unix(socket_path)
        except OSError:
            conn.close()
            return
        relay(conn, upstream)

    threading.Thread(target=_serve, args=(server, handle), daemon=True).start()


def _write_snapshot(text: str, env: dict[str, str]) -> None:
    """The record as the child's hook reads it, where it looks for it."""
    project = paths.resolve_project(env=env)
    where = paths.ProjectPaths.for_project(project, paths.cms_home(env))
    target = where.session_file(env["CMS_SESSION"])
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    target.write_text(text, encoding="utf-8")


def _read_env_line() -> dict[str, str]:
    """The first line of stdin: a JSON object of variables (the credentials), read
    byte by byte so that the rest, the prompt, is left for claude."""
    line = b""
    while not line.endswith(b"\n"):
        byte = os.read(0, 1)
        if not byte:
            break
        line += byte
    data = json.loads(line or b"{}")
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def turn(argv: list[str]) -> int:
    env = dict(os.environ)
    if env.pop("CMS_BRIDGE_STDIN_ENV", ""):
        env.update(_read_env_line())
    snapshot = env.pop("CMS_RECORD_SNAPSHOT", "")
    if snapshot and env.get("CMS_SESSION"):
        _write_snapshot(snapshot, env)
    for pair in filter(None, env.pop("CMS_BRIDGE_FORWARD", "").split(",")):
        port, _, socket_path = pair.partition("=")
        forward(int(port), socket_path)
    child = subprocess.Popen(argv, env=env)

    def stop(signum: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    return child.wait()


def allowed(host: str, port: int, domains: list[str]) -> bool:
    """Whether the proxy opens ``host:port``: an entry ``HOST:PORT`` (the model API)
    exactly, a domain (and any name below it) on ports 80 and 443."""
    host = host.lower().rstrip(".")
    for entry in (d.lower() for d in domains):
        name, _, port_text = entry.partition(":")
        if port_text:
            if host == name and str(port) == port_text:
                return True
        elif port in (80, 443) and (host == name or host.endswith("." + name)):
            return True
    return False


def _read_head(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _connect_handler(domains: list[str]) -> object:
    def handle(conn: socket.socket) -> None:
        head = _read_head(conn)
        parts = head.split(b"\r\n", 1)[0].split()
        target = parts[1].decode("ascii", "replace") if len(parts) >= 2 else ""
        host, _, port_text = target.rpartition(":")
        port = int(port_text) if port_text.isdigit() else 0
        if len(parts) < 2 or parts[0] != b"CONNECT" or not allowed(host, port, domains):
            with contextlib.suppress(OSError):
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            conn.close()
            return
        try:
            upstream = socket.create_connection((host, port), timeout=30)
            upstream.settimeout(None)
        except OSError:
            with contextlib.suppress(OSError):
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            conn.close()
            return
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        relay(conn, upstream)

    return handle


def proxy(directory: str, api: str, domains: list[str]) -> int:
    api_host, _, api_port = api.rpartition(":")

    def to_api(conn: socket.socket) -> None:
        try:
            upstream = socket.create_connection((api_host, int(api_port)), timeout=30)
            upstream.settimeout(None)
        except OSError:
            conn.close()
            return
        relay(conn, upstream)

    servers = []
    for name, handle in ((API_SOCKET, to_api), (PROXY_SOCKET, _connect_handler(domains))):
        path = os.path.join(directory, name)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen(64)
        servers.append(threading.Thread(target=_serve, args=(server, handle), daemon=True))
    for thread in servers:
        thread.start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(3600)


def main(argv: list[str]) -> int:
    if argv[:1] == ["turn"]:
        rest = argv[1:]
        return turn(rest[1:] if rest[:1] == ["--"] else rest)
    if argv[:1] == ["proxy"] and len(argv) >= 3:
        return proxy(argv[1], argv[2], argv[3:])
    sys.stderr.write("usage: python3 -m cms.engine.bridge turn -- ARGV | proxy DIR API [D...]\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
