"""The project an operation works on: its state, its store and the environment cms
was called with (passed explicitly, never read from globals)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cms.base.errors import (
    BadInput,
    EnvironmentProblem,
)
from cms.base.paths import ProjectPaths, cms_home, resolve_project
from cms.engine.store import Store


@dataclass
class Project:
    """One project's state and the environment cms was called with."""

    paths: ProjectPaths
    store: Store
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    @property
    def directory(self) -> Path:
        return self.paths.project


def open_project(
    project: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Project:
    """The project of ``--project``, ``$CMS_PROJECT`` or the working directory."""
    env = dict(os.environ if env is None else env)
    name = env.get("CMS_SESSION")
    if name and env.get("SANDBOX_RUNTIME") == "1":
        # A child's own command, in Claude Code's sandbox: cms state is out of its
        # reach (not even readable), so say where its way to cms is.
        raise EnvironmentProblem(
            f"inside cms session {name[:80]!r} the commands run in the sandbox, where cms "
            "state can be neither read nor written; start and steer sessions with the cms "
            "MCP tools (mcp__cms__delegate_task, mcp__cms__wait_sessions, ...) instead"
        )
    if project is not None and not os.path.isdir(os.path.expanduser(os.fspath(project))):
        raise BadInput(f"project directory {os.fspath(project)!r} does not exist")
    directory = resolve_project(project, env)
    paths = ProjectPaths.for_project(directory, cms_home(env))
    return Project(paths=paths, store=Store(paths), env=env)
