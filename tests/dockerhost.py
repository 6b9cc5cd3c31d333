"""Helpers for the tests of Docker hosts: the child image (built by scripts/docker-images,
which scripts/test runs first), cms's containers and volumes by their labels, a
loopback listener that counts connections, and a real sshd on 127.0.0.1 for the
remote endpoint (``ssh://root@127.0.0.1:PORT``)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from cms.base.paths import project_key

REPO = Path(__file__).resolve().parent.parent
LOCAL_ENDPOINT = "unix:///var/run/docker.sock"


def child_image() -> str:
    """The child image's name: ``$CMS_TEST_DOCKER_IMAGE`` (scripts/test sets it), else
    what scripts/docker-images builds (or finds built) now."""
    given = os.environ.get("CMS_TEST_DOCKER_IMAGE")
    if given:
        return given
    done = subprocess.run(
        [str(REPO / "scripts" / "docker-images")],
        capture_output=True,
        text=True,
        timeout=3600,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, f"scripts/docker-images failed:\n{done.stderr[-3000:]}"
    return done.stdout.strip().splitlines()[-1]


def docker(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    done = subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr}"
    return done.stdout


def containers(session: str | None = None, *, running: bool = False) -> list[str]:
    """cms's containers (of one session, when named), found by their labels."""
    label = f"io.cms.session={session}" if session else "io.cms.session"
    args = ["ps", "-q", "--filter", f"label={label}"]
    return docker(*(args if running else [*args, "-a"])).split()


def volumes(session: str, project: Path | None = None) -> list[str]:
    """cms's volumes of a session (of one project's, when given)."""
    filters = ["--filter", f"label=io.cms.session={session}"]
    if project is not None:
        filters += ["--filter", f"label=io.cms.project={project_key(project.resolve())}"]
    return docker("volume", "ls", "-q", *filters).split()


def remove_project_leftovers(project: Path) -> None:
    """After a test: whatever of its project a failed test left on the Docker host."""
    label = f"label=io.cms.project={project_key(project.resolve())}"
    for cid in docker("ps", "-aq", "--filter", label).split():
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True, check=False)
    for volume in docker("volume", "ls", "-q", "--filter", label).split():
        subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True, check=False)


def inspect(container: str) -> dict[str, Any]:
    data: list[dict[str, Any]] = json.loads(docker("inspect", container))
    return data[0]


def wait_for_container(session: str, timeout: float = 60) -> dict[str, Any]:
    """The inspection of the session's running turn container (not its proxy)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for cid in containers(session, running=True):
            with contextlib.suppress(AssertionError):
                data = inspect(cid)
                if (
                    not data["Name"].endswith("-proxy")
                    and data["HostConfig"]["NetworkMode"] == "none"
                    and "helper" not in data["Config"]["Labels"].get("io.cms.turn", "")
                ):
                    return data
        time.sleep(0.2)
    raise AssertionError(f"no running container of session {session} within {timeout}s")


def wait_no_containers(session: str, timeout: float = 10) -> float:
    """Seconds until none of the session's containers is left."""
    start = time.monotonic()
    while containers(session):
        if time.monotonic() - start > timeout:
            raise AssertionError(f"containers of {session} left: {containers(session)}")
        time.sleep(0.1)
    return time.monotonic() - start


class Sshd:
    """A real sshd on 127.0.0.1 (a throwaway host key and client key, root by key
    only), and an ``ssh`` on PATH that uses this test's client config: ssh reads the
    account's ``~/.ssh``, not ``$HOME``, so the config is given explicitly."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        for name in ("host_key", "client_key"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)],
                check=True,
            )
        shutil.copy(root / "client_key.pub", root / "authorized_keys")
        probe = socket.create_server(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        (root / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {root}/host_key\n"
            f"AuthorizedKeysFile {root}/authorized_keys\nPermitRootLogin prohibit-password\n"
            f"PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            f"StrictModes no\nPidFile {root}/sshd.pid\nLogLevel ERROR\n"
        )
        (root / "ssh_config").write_text(
            f"Host *\n  IdentityFile {root}/client_key\n  IdentitiesOnly yes\n"
            "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
            "  BatchMode yes\n  LogLevel ERROR\n"
        )
        self.bin = root / "bin"
        self.bin.mkdir()
        real_ssh = shutil.which("ssh") or "/usr/bin/ssh"
        wrapper = self.bin / "ssh"
        wrapper.write_text(f'#!/bin/sh\nexec {real_ssh} -F {root}/ssh_config "$@"\n')
        wrapper.chmod(0o755)
        Path("/run/sshd").mkdir(exist_ok=True)
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        self.proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(root / "sshd_config")])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 1),
            ):
                return
            time.sleep(0.1)
        raise AssertionError("sshd did not start")

    @property
    def endpoint(self) -> str:
        return f"ssh://root@127.0.0.1:{self.port}"

    def path(self, path: str) -> str:
        return os.pathsep.join([str(self.bin), path])

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def restart_dockerd(log: Path) -> None:
    """Stop the Docker daemon (SIGTERM: it kills its containers, as a reboot would)
    and start it again as scripts/docker-images does."""
    pid = int(Path("/var/run/docker.pid").read_text().strip())
    os.kill(pid, 15)
    deadline = time.monotonic() + 60
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    with open(log, "ab") as out:
        subprocess.Popen(
            ["dockerd", "--bridge=none", "--iptables=false"],
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError("dockerd did not come back")
