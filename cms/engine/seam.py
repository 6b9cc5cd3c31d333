"""Where a session's turns run: one interface, two engines.

The supervisor on the user's machine runs every turn the same way, whatever runs
it: it asks the session's engine to put the tree in place, to start the turn (a
command whose stdin takes the prompt and whose stdout is Claude Code's stream-json),
to stop it, to end it, and to get the branch out; ``delete`` asks it to remove what
the session holds. Two engines implement it:

- :class:`LocalEngine`: ``claude -p`` on this machine under Claude Code's sandbox;
  the tree is the project (or the session's worktree) itself, so putting a tree in
  and getting a branch out are nothing to do;
- :class:`cms.engine.docker.DockerEngine`: a container per turn on a Docker host,
  local or remote (docs/DESIGN.md, "Hosts").

A Kubernetes engine would be a third (a Job per turn, a volume claim per session,
the pod's log as the stream); docs/DESIGN.md says how it maps.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from cms.base.paths import ProjectPaths
from cms.engine import claude, hosts, worktree
from cms.engine.claude import Launch
from cms.engine.models import SessionRecord


class Engine(Protocol):
    """What runs a session's turns (see the module's docstring)."""

    name: str

    def put_tree(self, record: SessionRecord) -> None:
        """Before a turn: the session's tree where the turn runs."""

    def start(
        self,
        record: SessionRecord,
        spec: claude.TurnSpec,
        env: Mapping[str, str],
        domains: list[str],
    ) -> Launch:
        """The turn's command: prompt on its stdin, stream-json on its stdout."""
        ...

    def stop(self) -> None:
        """End the running turn now (abort, timeout, budget)."""

    def end_turn(self) -> None:
        """After a turn, stopped or not: nothing of it left running."""

    def get_branch(self, record: SessionRecord) -> None:
        """After a turn: its work as the branch ``cms/NAME`` in the user's repository."""

    def remove(self) -> None:
        """The session deleted: whatever the engine holds for it, gone."""

    def clear(self) -> None:
        """What a supervisor that died left running of the session's turn, stopped."""

    def lost(self, stderr_tail: str) -> str | None:
        """Why a turn that ended without a result was cut off from outside (its host
        went away: ``interrupted``, resumable), or None."""


class LocalEngine:
    """Turns as ``claude -p`` processes on this machine."""

    name = hosts.LOCAL

    def __init__(self, paths: ProjectPaths) -> None:
        self.paths = paths

    def put_tree(self, record: SessionRecord) -> None:
        return None

    def start(
        self,
        record: SessionRecord,
        spec: claude.TurnSpec,
        env: Mapping[str, str],
        domains: list[str],
    ) -> Launch:
        return Launch(claude.build_argv(spec), dict(env), record.cwd or str(self.paths.project))

    def stop(self) -> None:
        return None  # the supervisor stops claude's process tree itself

    def end_turn(self) -> None:
        return None

    def get_branch(self, record: SessionRecord) -> None:
        """A ``--worktree`` session: commit what the turn changed in its tree on its
        branch, and bring that branch into the user's repository (force-updating that
        one ref only; git itself refuses it while the user has it checked out), so
        ``git log cms/NAME``, a checkout or a push work there. cms does this outside
        the sandbox; the child cannot write the user's repository."""
        if not record.worktree or not record.branch:
            return
        tree = Path(record.worktree)
        worktree.snapshot(tree, f"cms: turn {record.exchanges + 1} of session {record.name}")
        worktree.bring_home(self.paths.project, tree, record.branch)

    def remove(self) -> None:
        return None

    def clear(self) -> None:
        return None  # the reader stops the dead supervisor's process tree itself

    def lost(self, stderr_tail: str) -> str | None:
        return None


def engine_for(paths: ProjectPaths, record: SessionRecord) -> Engine:
    """The engine of the session's host (exit 2 when that host is no longer known)."""
    host = hosts.get(paths.home, record.host)
    if host is None:
        return LocalEngine(paths)
    from cms.engine.docker import DockerEngine  # only a Docker host's turns load it

    return DockerEngine(paths, record, host)
