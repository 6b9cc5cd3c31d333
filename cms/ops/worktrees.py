"""Sessions in git worktrees of their own: made at start, their changes shown and
merged into the user's branch."""

from __future__ import annotations

import os
from pathlib import Path

from cms.base.errors import (
    BadInput,
    WrongState,
)
from cms.engine import worktree
from cms.engine.models import (
    SessionRecord,
)
from cms.ops.nesting import calling_session
from cms.ops.project import Project
from cms.ops.sessions import get_session


def check_worktree_possible(project: Project) -> None:
    if not worktree.is_repository(project.directory):
        raise BadInput(
            f"--worktree needs a git repository, and {project.directory} is not one; "
            "run `git init` and commit first, or leave out --worktree"
        )
    if worktree.head_commit(project.directory) is None:
        raise BadInput(f"--worktree needs at least one commit in {project.directory}; commit first")


def make_worktree(
    project: Project, record: SessionRecord, start: str | None, source: Path | None = None
) -> None:
    """Give ``record`` a tree of its own on ``cms/<name>``, from the commit ``start`` of
    ``source`` (another session's tree), default the project's HEAD."""
    directory = project.directory
    base = worktree.head_commit(directory) if start is None else start
    assert base is not None
    path = worktree.worktrees_root(project.paths.home, project.paths.key) / record.name
    if path.exists():
        raise BadInput(f"{path} already exists; remove it or choose another name")
    branch = worktree.branch_for(record.name)
    worktree.create(directory, path, branch, base, source)
    record.worktree = str(path)
    record.branch = branch
    record.cwd = os.path.realpath(path)
    if start is None:
        record.base_commit = base
        if worktree.changes(directory):
            record.notice = (
                "your uncommitted changes were not carried into the session's worktree "
                f"(it starts from {base[:12]}); commit them first to include them"
            )


def _worktree_session(project: Project, name: str) -> SessionRecord:
    record = get_session(project, name)
    if not record.worktree or not record.branch or not record.base_commit:
        raise BadInput(f"session {name!r} has no worktree of its own (start one with --worktree)")
    if not Path(record.worktree).exists():
        raise WrongState(f"the worktree of {name!r} at {record.worktree} is gone")
    return record


def diff_session(project: Project, name: str) -> str:
    """The session's changes against where it started, committed or not."""
    record = _worktree_session(project, name)
    assert record.worktree is not None and record.base_commit is not None
    return worktree.diff(Path(record.worktree), record.base_commit)


def merge_session(project: Project, name: str) -> SessionRecord:
    """Bring a worktree session's work into the user's current branch."""
    record = _worktree_session(project, name)
    if calling_session(project) is not None:
        raise WrongState("only the user merges a session's work into their branch, not a child")
    assert record.worktree is not None and record.branch is not None
    if record.status.active:
        raise WrongState(
            f"session {name!r} is {record.status.value}; wait for it or abort it first"
        )
    tree = Path(record.worktree)
    worktree.snapshot(tree, f"cms: work of session {name}")
    message = f"Merge work of cms session {name}"
    head = worktree.merge(project.directory, tree, record.branch, message)
    return project.store.update(record.name, lambda r: setattr(r, "merged_commit", head))
