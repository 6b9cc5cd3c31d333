"""The ``cms host`` commands and the choice of a new session's host.

Hosts are the user's (``$CMS_HOME/hosts.toml``, :mod:`cms.engine.hosts`); ``add``
records one without contacting it, ``check`` contacts it, ``build-image`` builds the
child image on it from the Dockerfile that ships with cms (``cms/engine/image``).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cms
from cms.base import paths
from cms.base.errors import BadInput, EnvironmentProblem
from cms.engine import docker, hosts
from cms.engine.hosts import Host
from cms.engine.models import ProjectConfig

#: The Claude Code version a child image carries (the one cms is tested with).
CLAUDE_CODE_VERSION = "2.1.332"
DOCKERFILE = Path(__file__).resolve().parent.parent / "engine" / "image" / "Dockerfile"
BUILD_TIMEOUT_S = 1800.0


def add_host(
    home: Path,
    name: str,
    endpoint: str,
    image: str | None = None,
    max_parallel: int | None = None,
    cpus: float | None = None,
    memory: str | None = None,
) -> Host:
    """Record a Docker host (never contacting it); exit 2 for bad input."""
    hosts.check_name(name)
    hosts.check_endpoint(endpoint)
    hosts.check_settings(image, memory)
    if max_parallel is not None and max_parallel < 1:
        raise BadInput(f"--max-parallel {max_parallel} must be 1 or more")
    if cpus is not None and cpus <= 0:
        raise BadInput(f"--cpus {cpus} must be more than 0")
    known = hosts.load(home)
    if name in known:
        raise BadInput(f"a host named {name!r} exists already; `cms host remove {name}` first")
    fields: dict[str, Any] = {"max_parallel": max_parallel, "cpus": cpus, "memory": memory}
    host = Host(
        name=name,
        docker=endpoint,
        image=image or hosts.DEFAULT_IMAGE,
        **{k: v for k, v in fields.items() if v is not None},
    )
    hosts.save(home, {**known, name: host})
    return host


def list_hosts(home: Path) -> list[dict[str, Any]]:
    local = {"name": hosts.LOCAL, "docker": None, "image": None}
    return [local, *(h.public() for _, h in sorted(hosts.load(home).items()))]


def show_host(home: Path, name: str) -> dict[str, Any]:
    host = hosts.get(home, name)
    if host is None:
        return {"name": hosts.LOCAL, "docker": None, "image": None}
    return host.public()


def remove_host(home: Path, name: str) -> Host:
    host = hosts.get(home, name)
    if host is None:
        raise BadInput("'local' is built in and cannot be removed")
    known = hosts.load(home)
    del known[name]
    hosts.save(home, known)
    return host


@dataclass(frozen=True)
class HostCheck:
    name: str
    ok: bool
    lines: list[str]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "checks": self.lines}


def check_host(home: Path, name: str) -> HostCheck:
    """Whether the host is usable: reachable, its image present, Claude Code in it
    running. Exit 3 (one line) when it is not."""
    host = hosts.get(home, name)
    if host is None:
        return HostCheck(hosts.LOCAL, True, ["local: this machine"])
    version = docker.check_usable(host)
    probe = docker.docker(
        host,
        "run", "--rm", "--network", "none", *docker.HARDENING,
        "--entrypoint", "claude", host.image, "--version",
        timeout=120,
    )  # fmt: skip
    if not probe.ok:
        raise EnvironmentProblem(
            f"host {name!r}: claude in image {host.image} does not run ({probe.error()}); "
            f"rebuild it with `cms host build-image {name}`"
        )
    claude_version = probe.stdout.decode().split()[0] if probe.stdout.strip() else "?"
    return HostCheck(
        name,
        True,
        [
            f"reachable: {host.docker} (Docker {version})",
            f"image: {host.image}",
            f"claude: {claude_version}",
        ],
    )


def _context_files() -> list[Path]:
    root = paths.PACKAGE_PARENT / "cms"
    return sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def content_tag(base: str) -> str:
    """A tag naming the image's inputs: the Dockerfile, cms's files, Claude Code's
    version and the base image; the same inputs make the same tag (no rebuild)."""
    digest = hashlib.sha256()
    digest.update(f"{base}\n{CLAUDE_CODE_VERSION}\n{cms.__version__}\n".encode())
    root = paths.PACKAGE_PARENT
    for path in _context_files():
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Built:
    name: str
    image: str
    tag: str
    reused: bool

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "image": self.image, "tag": self.tag, "reused": self.reused}


def build_image(home: Path, name: str, base: str | None = None) -> Built:
    """Build the host's image (``docker build --network host``, the classic builder),
    tagged by content too, so the same inputs on the same host are built once."""
    host = hosts.get(home, name)
    if host is None:
        raise BadInput("'local' runs no image; name a Docker host (`cms host list`)")
    base = base or "debian:bookworm-slim"
    if not hosts.IMAGE_NAME.match(base):
        raise BadInput(f"--base {base!r} is not an image name")
    docker.check_reachable(host)
    repository = host.image.rsplit(":", 1)[0] if ":" in host.image.split("/")[-1] else host.image
    tagged = f"{repository}:{content_tag(base)}"
    if docker.docker(host, "image", "inspect", tagged).ok:
        docker.docker(host, "tag", tagged, host.image)
        return Built(name, host.image, tagged, True)
    with tempfile.TemporaryDirectory(prefix="cms-image-") as tmp:
        context = Path(tmp)
        shutil.copy(DOCKERFILE, context / "Dockerfile")
        shutil.copytree(
            paths.PACKAGE_PARENT / "cms",
            context / "cms",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        built = docker.docker(
            host,
            "build", "--network", "host", "-q",
            "--build-arg", f"BASE={base}",
            "--build-arg", f"CLAUDE_CODE_VERSION={CLAUDE_CODE_VERSION}",
            "--build-arg", f"CMS_VERSION={cms.__version__}",
            "-t", tagged, "-t", host.image, str(context),
            timeout=BUILD_TIMEOUT_S,
            env={"DOCKER_BUILDKIT": "0"},
        )  # fmt: skip
    if not built.ok:
        raise EnvironmentProblem(f"building {host.image} on host {name!r} failed: {built.error()}")
    return Built(name, host.image, tagged, False)


def host_for_new_session(home: Path, asked: str | None, config: ProjectConfig) -> Host | None:
    """The Docker host a new session runs on (None: this machine), checked usable:
    exit 2 for a name that is no host, exit 3 when it cannot be reached or has no
    image (before any record exists)."""
    name = asked or config.defaults.host or hosts.LOCAL
    host = hosts.get(home, name)
    if host is not None:
        docker.check_usable(host)
    return host


__all__ = [
    "Built",
    "HostCheck",
    "add_host",
    "build_image",
    "check_host",
    "content_tag",
    "host_for_new_session",
    "list_hosts",
    "remove_host",
    "show_host",
]
