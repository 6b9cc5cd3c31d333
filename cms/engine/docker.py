"""The Docker engine: a session's turns as containers on a Docker host.

Everything goes through the docker CLI pointed at the host (``DOCKER_HOST`` or
``--context``), so a remote daemon over ssh works exactly like the local one, and
nothing of the user's machine is ever mounted into a container:

- per session two named volumes on the host: ``…-tree`` (the session's git tree at
  ``/work``) and ``…-state`` (Claude Code's config folder at ``/cms``: the
  conversation ``--resume`` loads). The tree goes in as a git bundle streamed through
  ``docker run -i`` (:meth:`DockerEngine.put_tree`); the work comes out the same way
  after each turn and is fetched into the session's local clone and the user's
  repository as ``cms/NAME`` (:meth:`DockerEngine.get_branch`), so ``cms diff`` and
  ``cms merge`` work as for a ``--worktree`` session;
- per turn two containers: the turn's (``--network none``, non-root, every capability
  dropped, no new privileges, the host's memory/CPU/process limits, the tree
  read-only for the presets that do not write) whose stdin takes the prompt and whose
  stdout is claude's stream-json, read by the supervisor on the user's machine; and
  the turn's proxy (``--network host``), reached only over unix sockets in a per-turn
  volume (:mod:`cms.engine.bridge`), which opens the model API and the project's
  allowed domains and nothing else;
- every container carries labels (``io.cms.session``, ``io.cms.project``,
  ``io.cms.turn``), so one left by a supervisor that died is found and removed.

Credentials go into the turn's container per turn as the first line of its stdin,
read by :mod:`cms.engine.bridge` into claude's environment: never on a command line,
in a container's configuration (which ``docker inspect`` shows and the Docker host
keeps on disk), in an image or in a volume.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from cms.base import vocab
from cms.base.errors import CmsError, EnvironmentProblem
from cms.base.paths import ProjectPaths
from cms.engine import claude, procs, worktree
from cms.engine.bridge import PROXY_PORT
from cms.engine.claude import Launch
from cms.engine.hosts import Host
from cms.engine.models import Preset, SessionRecord

LABEL = "io.cms"
#: Where things are inside a container (the image makes these folders, owned by cms).
TREE, STATE, NET, HOME = "/work", "/cms", "/net", "/home/cms"
USER = "1000:1000"
#: The credentials passed into a turn's container by name, when the user has them.
SECRETS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")
#: Variables of the user's environment a child's claude also gets (non-secret).
_PASSED_PREFIXES = ("ANTHROPIC_", "CLAUDE_CODE_", "DISABLE_", "MAX_THINKING", "BASH_")
_NOT_PASSED = frozenset({"ANTHROPIC_BASE_URL", *SECRETS, "CLAUDE_CODE_TMPDIR"})
READ_ONLY_PRESETS = frozenset({Preset.READ_ONLY, Preset.REVIEW, Preset.PLAN})
CHECK_TIMEOUT_S = 30.0
BUNDLE_TIMEOUT_S = 300.0
HARDENING = ("--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--user", USER)


@dataclass(frozen=True)
class Run:
    code: int
    stdout: bytes
    stderr: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    def error(self) -> str:
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower()]
        return (errors or lines or [f"exit status {self.code}"])[-1]


def _docker_env(host: Host, base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update(host.docker_env())
    return env


def docker(
    host: Host,
    *args: str,
    stdin: bytes | None = None,
    timeout: float = CHECK_TIMEOUT_S,
    env: Mapping[str, str] | None = None,
) -> Run:
    """Run the docker CLI against ``host``; exit-3 error when docker is not installed."""
    argv = ["docker", *host.docker_args(), *args]
    try:
        done = subprocess.run(
            argv,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            env={**_docker_env(host), **(env or {})},
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise EnvironmentProblem(
            "docker not found on PATH; install the Docker CLI (e.g. apt-get install docker.io)"
        ) from exc
    except subprocess.TimeoutExpired:
        return Run(124, b"", f"docker {args[0]} did not answer within {timeout:g}s")
    return Run(done.returncode, done.stdout, done.stderr.decode("utf-8", "replace"))


def check_reachable(host: Host) -> str:
    """The host's daemon answers (exit 3 otherwise); its version."""
    info = docker(host, "version", "--format", "{{.Server.Version}}")
    if not info.ok:
        raise EnvironmentProblem(
            f"host {host.name!r} ({host.docker}) cannot be reached: {info.error()}; "
            f"check it with `cms host check {host.name}`"
        )
    return info.stdout.decode().strip()


def check_reachable_quietly(host: Host) -> bool:
    return docker(host, "version", "--format", "{{.Server.Version}}").ok


def check_usable(host: Host) -> str:
    """The host answers and has its image (exit 3 otherwise, one line naming the host
    and what to do); returns the daemon's version."""
    version = check_reachable(host)
    image = docker(host, "image", "inspect", "--format", "{{.Id}}", host.image)
    if not image.ok:
        raise EnvironmentProblem(
            f"host {host.name!r} has no image {host.image}; build it with "
            f"`cms host build-image {host.name}`"
        )
    return version


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", text)


def volume_names(key: str, name: str) -> tuple[str, str]:
    stem = f"cms-{_safe(key)}-{_safe(name)}"
    return f"{stem}-tree", f"{stem}-state"


def _labels(key: str, name: str, turn: str = "") -> list[str]:
    labels = ["--label", f"{LABEL}.session={name}", "--label", f"{LABEL}.project={key}"]
    return labels + (["--label", f"{LABEL}.turn={turn}"] if turn else [])


def remove_containers(host: Host, key: str, name: str) -> int:
    """Remove every container of the session (a dead supervisor's); how many."""
    found = docker(
        host,
        "ps", "-aq",
        "--filter", f"label={LABEL}.session={name}",
        "--filter", f"label={LABEL}.project={key}",
    )  # fmt: skip
    ids = found.stdout.decode().split() if found.ok else []
    if ids:
        docker(host, "rm", "-f", *ids)
    return len(ids)


def container_hook_command() -> str:
    """The child's PreToolUse hook inside the container: the image's cms."""
    return "exec python3 -S -m cms.hooks.child pre-tool-use"


def _container_settings() -> str:
    hook = {"type": "command", "command": container_hook_command()}
    return json.dumps({"hooks": {"PreToolUse": [{"matcher": "*", "hooks": [hook]}]}})


def _snapshot(record: SessionRecord) -> str:
    """What the child's hook needs of the record, as TOML: the record itself stays on
    the user's machine, and the supervisor enforces the budget from there."""
    fields: dict[str, object] = {
        "name": record.name,
        "status": vocab.RUNNING,
        "preset": record.preset.value,
        "cwd": TREE,
        "cost_usd": record.settled_cost_usd,
        "turns": record.settled_turns,
        "sandbox": True,  # the container is the boundary the hook leaves the rest to
    }
    for key in ("max_cost_usd", "max_turns", "deadline"):
        value = getattr(record, key)
        if value is not None:
            fields[key] = value
    lines = []
    for key, value in fields.items():
        text = json.dumps(value) if not isinstance(value, bool) else str(value).lower()
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


class DockerEngine:
    """One session's turns on a Docker host (the seam of :mod:`cms.engine.seam`)."""

    name = "docker"

    def __init__(self, paths: ProjectPaths, record: SessionRecord, host: Host) -> None:
        self.paths = paths
        self.host = host
        self.session = record.name
        self.key = paths.key
        self.tree_volume, self.state_volume = volume_names(self.key, record.name)
        self.turn = uuid.uuid4().hex[:10]
        base = f"cms-{_safe(self.key)}-{_safe(record.name)}-{self.turn}"
        self.container, self.proxy, self.net_volume = base, f"{base}-proxy", f"{base}-net"
        self.allowed_domains: list[str] = []
        self.started_at = time.time()

    # -- put a tree in ---------------------------------------------------------

    def _volume_exists(self, volume: str) -> bool:
        return docker(self.host, "volume", "inspect", volume).ok

    def put_tree(self, record: SessionRecord) -> None:
        """Before a turn: the session's volumes on the host, the tree in them on the
        first turn (from the session's local clone: the project's HEAD, or its
        ``--after`` predecessors' branches merged). A volume gone after a turn that
        used it was removed behind cms's back: the turn fails, saying so."""
        check_usable(self.host)  # a host that is down is no volume removed
        remove_containers(self.host, self.key, self.session)
        tree = self._volume_exists(self.tree_volume)
        state = self._volume_exists(self.state_volume)
        if record.has_conversation and not (tree and state):
            gone = self.tree_volume if not tree else self.state_volume
            raise CmsError(
                f"the volume {gone} of session {record.name!r} on host {self.host.name!r} "
                "is gone (removed outside cms): its tree and conversation are lost; "
                f"`cms delete {record.name}` and delegate again",
                1,
            )
        for volume, present in ((self.tree_volume, tree), (self.state_volume, state)):
            if not present:
                made = docker(
                    self.host, "volume", "create", *_labels(self.key, self.session), volume
                )
                if not made.ok:
                    raise CmsError(f"cannot create volume {volume}: {made.error()}", 1)
        if not tree:
            self._send_tree(record)
        if not state and record.fork_from:
            self._copy_conversation(record.fork_from)

    def _helper(self, *args: str, stdin: bytes | None = None, volumes: list[str]) -> Run:
        """A short-lived container on the session's volumes, confined like a turn's."""
        mounts = [f"--volume={v}" for v in volumes]
        return docker(
            self.host,
            "run", "--rm", "-i", "--network", "none", *HARDENING,
            *_labels(self.key, self.session, f"{self.turn}-helper"),
            *mounts, "--entrypoint", "sh", self.host.image, "-c", *args,
            stdin=stdin,
            timeout=BUNDLE_TIMEOUT_S,
        )  # fmt: skip

    def _send_tree(self, record: SessionRecord) -> None:
        if not record.worktree or not record.branch:
            raise CmsError(f"session {record.name!r} has no tree to send to its host", 1)
        with tempfile.TemporaryDirectory(prefix="cms-bundle-") as tmp:
            bundle = Path(tmp) / "tree.bundle"
            done = procs.run(
                ["git", "bundle", "create", "-q", str(bundle), record.branch],
                cwd=record.worktree,
                timeout=BUNDLE_TIMEOUT_S,
            )
            if not done.ok:
                raise CmsError(f"git bundle of {record.branch} failed: {done.first_error_line()}")
            script = (
                'cat > /tmp/in.bundle && git clone -q -b "$0" /tmp/in.bundle /work '
                "&& git -C /work remote remove origin "
                "&& git -C /work config user.name 'cms child' "
                "&& git -C /work config user.email cms-child@localhost"
            )
            sent = self._helper(
                script,
                record.branch,
                stdin=bundle.read_bytes(),
                volumes=[f"{self.tree_volume}:{TREE}"],
            )
        if not sent.ok:
            raise CmsError(f"putting the tree into {self.tree_volume} failed: {sent.error()}", 1)

    def _copy_conversation(self, claude_session: str) -> None:
        """A fork's first turn resumes its source's conversation: copy the source's
        state volume (the source is found by its Claude session id)."""
        from cms.engine.store import Store

        for other in Store(self.paths).list().records:
            if other.session_id == claude_session and other.host == self.host.name:
                source = volume_names(self.key, other.name)[1]
                self._helper(
                    "cp -a /src/. /cms/",
                    volumes=[f"{source}:/src:ro", f"{self.state_volume}:{STATE}"],
                )
                return

    # -- start a turn, stop it -------------------------------------------------

    def _api(self, env: Mapping[str, str]) -> tuple[str, str, dict[str, str]]:
        """(the proxy's API target, forwards in the turn's container, its variables)."""
        url = env.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"
        parts = urlsplit(url)
        host = parts.hostname or "api.anthropic.com"
        port = parts.port or (443 if parts.scheme == "https" else 80)
        proxy = f"http://127.0.0.1:{PROXY_PORT}"
        variables = {"HTTPS_PROXY": proxy, "HTTP_PROXY": proxy, "NO_PROXY": "127.0.0.1,localhost"}
        forwards = {PROXY_PORT: f"{NET}/proxy.sock"}
        if parts.scheme == "http":
            # A plain-HTTP API (a loopback one above all) is relayed as a raw stream
            # to its host and port, as the Docker host sees them.
            forwards[port] = f"{NET}/api.sock"
            variables["ANTHROPIC_BASE_URL"] = parts._replace(netloc=f"127.0.0.1:{port}").geturl()
        else:
            variables["ANTHROPIC_BASE_URL"] = url
            self.allowed_domains.append(f"{host}:{port}")
        return f"{host}:{port}", ",".join(f"{p}={s}" for p, s in forwards.items()), variables

    def _start_proxy(self, api: str) -> None:
        started = docker(
            self.host,
            "run", "-d", "--rm", "--name", self.proxy, "--network", "host", *HARDENING,
            "--memory", "128m", "--pids-limit", "64",
            *_labels(self.key, self.session, self.turn),
            f"--volume={self.net_volume}:{NET}",
            "--entrypoint", "python3", self.host.image,
            "-m", "cms.engine.bridge", "proxy", NET, api, *self.allowed_domains,
        )  # fmt: skip
        if not started.ok:
            raise CmsError(
                f"the turn's proxy on host {self.host.name!r} did not start: {started.error()}", 1
            )

    def start(
        self,
        record: SessionRecord,
        spec: claude.TurnSpec,
        env: Mapping[str, str],
        domains: list[str],
    ) -> Launch:
        """The turn's container: ``docker run -i --rm`` with the claude command line."""
        self.allowed_domains = list(domains)
        self.started_at = time.time()
        api, forwards, variables = self._api(env)
        docker(
            self.host,
            "volume",
            "create",
            *_labels(self.key, self.session, self.turn),
            self.net_volume,
        )
        self._start_proxy(api)
        argv = claude.build_argv(replace(spec, claude="claude", sandbox=None, delegates=False))
        argv[argv.index("--settings") + 1] = _container_settings()
        inside = {
            key: value
            for key, value in env.items()
            if key.startswith(_PASSED_PREFIXES) and key not in _NOT_PASSED
        }
        inside.update(variables)
        inside.update(
            CMS_SESSION=record.name,
            CMS_DEPTH=str(record.depth),
            CMS_PROJECT=TREE,
            CMS_HOME=f"{HOME}/.cms",
            CMS_SETTINGS_HOOK="1",
            HOME=HOME,
            # The commands' TMPDIR, as Claude Code's sandbox gives one locally: the
            # container's own /tmp, private to the turn and gone with its container.
            TMPDIR="/tmp",
            CLAUDE_CONFIG_DIR=f"{STATE}/claude",
            CMS_RECORD_SNAPSHOT=_snapshot(record),
            CMS_BRIDGE_FORWARD=forwards,
            CMS_BRIDGE_STDIN_ENV="1",
        )
        limits = ["--pids-limit", str(self.host.pids_limit)]
        if self.host.memory:
            limits += ["--memory", self.host.memory]
        if self.host.cpus:
            limits += ["--cpus", f"{self.host.cpus:g}"]
        tree_mode = ":ro" if record.preset in READ_ONLY_PRESETS else ""
        command = [
            "docker", *self.host.docker_args(),
            "run", "-i", "--rm", "--name", self.container, "--network", "none", *HARDENING,
            *limits, *_labels(self.key, self.session, self.turn),
            f"--volume={self.tree_volume}:{TREE}{tree_mode}",
            f"--volume={self.state_volume}:{STATE}",
            f"--volume={self.net_volume}:{NET}",
            "--workdir", TREE,
            *[arg for key, value in sorted(inside.items()) for arg in ("-e", f"{key}={value}")],
            "--entrypoint", "python3", self.host.image,
            "-m", "cms.engine.bridge", "turn", "--", *argv,
        ]  # fmt: skip
        secrets = {key: env[key] for key in SECRETS if env.get(key)}
        prefix = json.dumps(secrets).encode() + b"\n"
        return Launch(command, _docker_env(self.host, env), str(self.paths.project), prefix)

    def stop(self) -> None:
        """End the running turn now: its container killed (``--rm`` removes it)."""
        docker(self.host, "kill", self.container)

    def end_turn(self) -> None:
        """After a turn: its containers and its network volume gone."""
        docker(self.host, "rm", "-f", self.container, self.proxy)
        with contextlib.suppress(CmsError):
            docker(self.host, "volume", "rm", "-f", self.net_volume)

    # -- get a branch out, remove ---------------------------------------------

    def get_branch(self, record: SessionRecord) -> None:
        """After a turn that may write: commit what it changed in the volume, stream
        the branch out as a bundle, and make it ``cms/NAME`` in the session's local
        clone and in the user's repository."""
        if record.preset in READ_ONLY_PRESETS or not record.worktree or not record.branch:
            return
        script = (
            "cd /work && git -c core.hooksPath=/dev/null add -A && "
            "{ git diff --cached --quiet || git -c core.hooksPath=/dev/null commit -q "
            '--no-verify -m "cms: work of session $1"; } >&2 && '
            'git bundle create -q /tmp/out.bundle "$0" >&2 && cat /tmp/out.bundle'
        )
        out = self._helper(
            script, record.branch, record.name, volumes=[f"{self.tree_volume}:{TREE}"]
        )
        if not out.ok:
            raise CmsError(
                f"getting {record.branch} out of {self.tree_volume} failed: {out.error()}", 1
            )
        with tempfile.TemporaryDirectory(prefix="cms-bundle-") as tmp:
            bundle = Path(tmp) / "out.bundle"
            bundle.write_bytes(out.stdout)
            clone = record.worktree
            fetched = procs.run(
                ["git", "fetch", "-q", "--no-tags", str(bundle), f"refs/heads/{record.branch}"],
                cwd=clone,
            )
            if not fetched.ok:
                raise CmsError(
                    f"fetching the work of {record.name!r} failed: {fetched.first_error_line()}", 1
                )
            procs.run(["git", "reset", "-q", "--hard", "FETCH_HEAD"], cwd=clone)
        worktree.bring_home(self.paths.project, Path(clone), record.branch)

    def clear(self) -> None:
        """A dead supervisor's turn: its containers found by their labels and removed."""
        remove_containers(self.host, self.key, self.session)

    def lost(self, stderr_tail: str) -> str | None:
        """The daemon went away under the turn: it does not answer now, or it has no
        memory of starting the turn's container (a restarted daemon forgets its events;
        one that only saw the container die, of an OOM kill say, remembers)."""
        if check_reachable_quietly(self.host):
            since = str(int(self.started_at) - 60)
            until = str(int(time.time()) + 60)
            events = docker(
                self.host,
                "events", "--since", since, "--until", until,
                "--filter", f"container={self.container}", "--filter", "event=start",
                "--format", "{{.ID}}",
            )  # fmt: skip
            if not events.ok or events.stdout.strip():
                return None
        return (
            f"the Docker daemon of host {self.host.name!r} went away during the turn "
            f"(its container with it); `cms resume {self.session}` once the host is back"
        )

    def remove(self) -> None:
        """The session deleted: its containers and volumes gone from the host."""
        remove_containers(self.host, self.key, self.session)
        docker(self.host, "volume", "rm", "-f", self.tree_volume, self.state_volume)
