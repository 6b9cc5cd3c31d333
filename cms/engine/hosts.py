"""The hosts a session's turns can run on: ``local`` (built in) and the user's Docker
hosts, kept in ``$CMS_HOME/hosts.toml`` (0600) and usable from every project.

A Docker host is an endpoint (anything ``DOCKER_HOST`` takes: ``unix://``, ``ssh://``,
``tcp://`` with Docker's TLS variables; or ``context:NAME``, a Docker context), the
image its children run in, and the limits of its containers. Recording a host never
contacts it (``cms host check`` does, in :mod:`cms.engine.docker`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cms.base import paths, readers
from cms.base.errors import BadInput, CorruptRecord, EnvironmentProblem
from cms.base.files import atomic_write
from cms.engine.models import InvalidRecord, Model, at_least, more_than

LOCAL = "local"
#: The image a host runs when ``--image`` is not given (``cms host build-image`` tags it).
DEFAULT_IMAGE = "cms-child:latest"
_SCHEMES = ("unix://", "ssh://", "tcp://", "context:")
_SIZE = re.compile(r"^[0-9]+(\.[0-9]+)?[bkmgBKMG]?$")
IMAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$")


class Host(
    Model,
    checks={"max_parallel": at_least(1), "cpus": more_than(0), "pids_limit": at_least(16)},
):
    """One Docker host."""

    name: str
    docker: str
    image: str = DEFAULT_IMAGE
    max_parallel: int | None = None
    cpus: float | None = None
    memory: str | None = None
    pids_limit: int = 512

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def docker_env(self) -> dict[str, str]:
        """The variables that point the docker CLI at this host (none for a context)."""
        return {} if self.docker.startswith("context:") else {"DOCKER_HOST": self.docker}

    def docker_args(self) -> list[str]:
        """The docker CLI's own options for this host (``--context`` for a context)."""
        if self.docker.startswith("context:"):
            return ["--context", self.docker.removeprefix("context:")]
        return []


def hosts_file(home: Path) -> Path:
    return home / "hosts.toml"


def check_name(name: str) -> None:
    if name == LOCAL:
        raise BadInput("'local' is the built-in host (this machine); choose another name")
    if not paths.valid_name(name):
        raise BadInput(
            f"host name {name!r} is not valid: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )


def check_endpoint(endpoint: str) -> None:
    """A malformed endpoint is bad input (exit 2), said in one line."""
    scheme = next((s for s in _SCHEMES if endpoint.startswith(s)), None)
    rest = endpoint[len(scheme) :] if scheme else ""
    well_formed = bool(rest) and not any(c.isspace() for c in endpoint)
    if scheme == "unix://":
        well_formed = well_formed and rest.startswith("/")
    elif scheme == "ssh://":
        well_formed = well_formed and bool(
            re.fullmatch(r"([^@/\s]+@)?[^@/:\s]+(:[0-9]{1,5})?", rest)
        )
    elif scheme == "tcp://":
        well_formed = well_formed and bool(re.fullmatch(r"[^@/:\s]+:[0-9]{1,5}", rest))
    elif scheme == "context:":
        well_formed = well_formed and paths.valid_name(rest)
    if not scheme or not well_formed:
        raise BadInput(
            f"--docker {endpoint!r} is not a Docker endpoint: give unix:///PATH, "
            "ssh://USER@HOST[:PORT], tcp://HOST:PORT or context:NAME"
        )


def check_settings(image: str | None, memory: str | None) -> None:
    if image is not None and not IMAGE_NAME.match(image):
        raise BadInput(f"--image {image!r} is not an image name (e.g. cms-child:latest)")
    if memory is not None and not _SIZE.match(memory):
        raise BadInput(f"--memory {memory!r} is not a size (e.g. 2g, 512m)")


def load(home: Path) -> dict[str, Host]:
    """The user's Docker hosts by name (none when the file does not exist)."""
    path = hosts_file(home)
    try:
        data = readers.load_toml(str(path))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:  # tomllib.TOMLDecodeError, UnicodeDecodeError
        raise CorruptRecord(str(path), str(exc)) from exc
    found: dict[str, Host] = {}
    table = data.get("hosts", {})
    if not isinstance(table, dict):
        raise CorruptRecord(str(path), "[hosts] is not a table")
    for name, fields in table.items():
        if not isinstance(fields, dict):
            raise CorruptRecord(str(path), f"hosts.{name} is not a table")
        try:
            found[name] = Host.model_validate({**fields, "name": name})
        except InvalidRecord as exc:
            raise CorruptRecord(str(path), f"hosts.{name}: {exc}") from exc
    return found


def save(home: Path, hosts: Mapping[str, Host]) -> None:
    lines = ["# cms's Docker hosts (cms host add/remove); 'local' is built in.", ""]
    for name, host in sorted(hosts.items()):
        lines.append(f"[hosts.{_quote(name)}]")
        for key, value in host.model_dump(exclude={"name"}, exclude_none=True).items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(hosts_file(home), "\n".join(lines))
        hosts_file(home).chmod(0o600)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write {hosts_file(home)}: {exc.strerror}") from exc


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return _quote(str(value))


def get(home: Path, name: str) -> Host | None:
    """The Docker host ``name``; None for ``local``; bad input (exit 2) for no host."""
    if name == LOCAL:
        return None
    known = load(home)
    if name not in known:
        names = ", ".join([LOCAL, *sorted(known)])
        raise BadInput(f"no host named {name!r} (hosts: {names}); add it with `cms host add`")
    return known[name]
