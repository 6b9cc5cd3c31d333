"""Working trees of their own for sessions that edit in parallel: create, diff, merge,
remove.

A ``--worktree`` session runs in a repository of its own on the branch ``cms/<name>``,
made from the project's HEAD, so two sessions editing the same file never overwrite
each other and the user's tree is untouched until ``cms merge``. The trees live beside
the state folder (``<CMS_HOME>-worktrees/<project-key>/<name>``), outside the project
and outside ``$CMS_HOME`` (which no child may write).

Each is a clone sharing the project's objects (``git clone --shared``), not a linked
``git worktree``: a linked worktree's git data lives in the main repository, and
Claude Code's sandbox lets a command in one write it, so a child could move the
user's branches or plant a ``MERGE_HEAD`` or a rebase plan that runs at the user's
next git command. A clone keeps all of the session's git data inside its own folder,
the only place its commands may write; the user's repository is written only by cms,
outside the sandbox: at the end of each turn the supervisor commits what the turn
changed (:func:`snapshot`) and fetches ``cms/<name>`` into it (:func:`bring_home`, that
one ref only), so the branch is there for ``git log``, a checkout or a push; and
``cms merge`` merges it.

Every operation that changes the user's repository checks first and acts second, so a
refusal (dirty tree, conflict) leaves the user's tree and branch exactly as they were.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from cms.base.errors import BadInput, CmsError, EnvironmentProblem, WrongState
from cms.engine import procs

BRANCH_PREFIX = "cms/"
#: Used only when the user has no git identity, for cms's own snapshot commits.
FALLBACK_IDENTITY = ("-c", "user.name=cms", "-c", "user.email=cms@localhost")


def branch_for(name: str) -> str:
    return f"{BRANCH_PREFIX}{name}"


def worktrees_root(home: Path, key: str) -> Path:
    return home.parent / f"{home.name}-worktrees" / key


def _git(
    cwd: Path | str, *args: str, env: dict[str, str] | None = None, check: bool = True
) -> procs.Completed:
    try:
        done = procs.run(["git", *args], cwd=cwd, env=env, timeout=120)
    except FileNotFoundError as exc:
        raise EnvironmentProblem("git not found on PATH; install git to use --worktree") from exc
    except (OSError, subprocess.SubprocessError) as exc:
        raise EnvironmentProblem(f"git {args[0]} failed to run: {exc}") from exc
    if check and not done.ok:
        raise CmsError(f"git {' '.join(args[:2])} failed: {done.first_error_line()}", 1)
    return done


def is_repository(directory: Path) -> bool:
    done = _git(directory, "rev-parse", "--is-inside-work-tree", check=False)
    return done.ok and done.stdout.strip() == "true"


def head_commit(directory: Path) -> str | None:
    done = _git(directory, "rev-parse", "--verify", "-q", "HEAD^{commit}", check=False)
    return done.stdout.strip() if done.ok else None


def changes(directory: Path) -> list[str]:
    """``git status --porcelain`` lines (tracked and untracked changes)."""
    return [line for line in _git(directory, "status", "--porcelain").stdout.splitlines() if line]


def tracked_changes(directory: Path) -> list[str]:
    return [line for line in changes(directory) if not line.startswith("??")]


def branch_exists(directory: Path, branch: str) -> bool:
    return _git(directory, "rev-parse", "--verify", "-q", f"refs/heads/{branch}", check=False).ok


def create(project: Path, path: Path, branch: str, start: str, source: Path | None = None) -> None:
    """A new repository at ``path`` sharing ``project``'s objects, on a new ``branch``
    made from the commit ``start`` (found in ``source``, default the project)."""
    if branch_exists(project, branch):
        raise BadInput(
            f"branch {branch} already exists in {project}; delete it or choose another name"
        )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _git(path.parent, "clone", "-q", "--shared", "--no-checkout", str(project), str(path))
    if source is not None and source != project:
        _git(path, "fetch", "-q", str(source), start)
    _git(path, "checkout", "-q", "-b", branch, start)


def remove(project: Path, path: Path, branch: str) -> None:
    """Remove the session's tree and the branch fetched from it; whatever is already
    gone is fine."""
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
    if branch_exists(project, branch):
        _git(project, "branch", "-D", branch, check=False)


def tip(path: Path, branch: str) -> str | None:
    """The commit ``branch`` points at in the session's tree."""
    done = _git(path, "rev-parse", "--verify", "-q", f"refs/heads/{branch}^{{commit}}", check=False)
    return done.stdout.strip() if done.ok else None


def bring_home(project: Path, path: Path, branch: str) -> str:
    """Fetch the session's branch into the user's repository (as ``branch``); its tip."""
    _git(
        project, "fetch", "-q", "--no-tags", str(path), f"+refs/heads/{branch}:refs/heads/{branch}"
    )
    commit = tip(project, branch)
    if commit is None:
        raise CmsError(f"fetching {branch} from {path} brought nothing", 1)
    return commit


class MergeConflict(CmsError):
    """Merging another session's branch into a session's tree would conflict (exit 1)."""

    exit_code = 1

    def __init__(self, branch: str, files: list[str]) -> None:
        shown = ", ".join(files[:5]) or "some files"
        super().__init__(f"merging {branch} would conflict in {shown}")
        self.branch = branch
        self.files = files


def _identity(path: Path) -> tuple[str, ...]:
    """cms's fallback identity when git has none for commits in ``path``."""
    configured = _git(path, "config", "user.email", check=False)
    return () if configured.ok and configured.stdout.strip() else FALLBACK_IDENTITY


def merge_in(path: Path, sources: list[tuple[Path, str]]) -> str:
    """Merge each ``(tree, branch)`` of ``sources`` (other sessions' trees, fetched from
    there) into the session's tree at ``path``, in order; returns its new HEAD.

    All or nothing: when one would conflict (``git merge-tree`` asks first, in the
    object store), the tree is put back where it was and :class:`MergeConflict` names
    the files. Only the session's own clone is written, never the user's repository.
    """
    start = head_commit(path)
    identity = _identity(path)
    for tree, branch in sources:
        commit = tip(tree, branch)
        if commit is None:
            continue  # nothing on that branch to bring
        _git(path, "fetch", "-q", "--no-tags", str(tree), f"refs/heads/{branch}")
        probe = _git(path, "merge-tree", "--write-tree", "--name-only", "HEAD", commit, check=False)
        if probe.code == 1:
            lines = probe.stdout.splitlines()
            files = [line for line in lines[1:] if line and not line.startswith(" ")]
            if start is not None:
                _git(path, "reset", "-q", "--hard", start, check=False)
            raise MergeConflict(branch, list(dict.fromkeys(files)))
        if not probe.ok:
            raise CmsError(f"git merge-tree failed: {probe.first_error_line()}", 1)
        message = f"Merge work of cms session {branch.removeprefix(BRANCH_PREFIX)}"
        done = _git(path, *identity, "merge", "-q", "--no-edit", "-m", message, commit, check=False)
        if not done.ok:
            _git(path, "merge", "--abort", check=False)
            if start is not None:
                _git(path, "reset", "-q", "--hard", start, check=False)
            raise CmsError(f"git merge {branch} failed: {done.first_error_line()}", 1)
    head = head_commit(path)
    assert head is not None
    return head


def snapshot(path: Path, message: str) -> bool:
    """Commit everything uncommitted in the worktree; True when a commit was made."""
    if not path.exists() or not changes(path):
        return False
    _git(path, "add", "-A")
    done = _git(path, "commit", "-q", "--no-verify", "-m", message, check=False)
    if not done.ok:
        done = _git(path, *FALLBACK_IDENTITY, "commit", "-q", "--no-verify", "-m", message)
    return True


def diff(path: Path, base: str) -> str:
    """The worktree's changes against ``base``, committed or not, new files included.

    A throwaway index holds "everything in the worktree" so the diff covers untracked
    files without touching the worktree's own index.
    """
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(path, "read-tree", "HEAD", env=env)
        _git(path, "add", "-A", env=env)
        return _git(path, "diff", "--cached", "--no-color", base, env=env).stdout


def unmerged(project: Path, path: Path, branch: str) -> list[str]:
    """Why deleting would lose work: uncommitted files, or commits not in HEAD."""
    reasons: list[str] = []
    if path.exists() and changes(path):
        reasons.append("uncommitted changes in its worktree")
    head = head_commit(project)
    commit = tip(path, branch) if path.exists() else None
    if commit is not None and head is not None:
        # Asked in the session's tree, which holds its own commits; it learns the
        # project's HEAD by a fetch into its FETCH_HEAD (the user's repository is only read).
        _git(path, "fetch", "-q", "--no-tags", str(project), head, check=False)
        merged = _git(path, "merge-base", "--is-ancestor", commit, head, check=False)
        if not merged.ok:
            reasons.append(f"commits on {branch} not merged into your branch")
    return reasons


def merge(project: Path, path: Path, branch: str, message: str) -> str:
    """Merge the session's ``branch`` (fetched from its tree at ``path``) into the
    project's current branch, or refuse without changes.

    Returns the new HEAD. Refuses (nothing changed) when the user's tree has tracked
    changes, or when the merge would conflict: ``git merge-tree`` computes the result
    in the object store first, touching neither the index nor the tree.
    """
    dirty = tracked_changes(project)
    if dirty:
        files = ", ".join(line[3:] for line in dirty[:5])
        raise WrongState(
            f"your working tree has uncommitted changes ({files}); commit or stash them, "
            "then merge again"
        )
    bring_home(project, path, branch)
    probe = _git(project, "merge-tree", "--write-tree", "--name-only", "HEAD", branch, check=False)
    if probe.code == 1:
        lines = probe.stdout.splitlines()
        conflicted = [line for line in lines[1:] if line and not line.startswith(" ")]
        shown = ", ".join(dict.fromkeys(conflicted[:5])) or "some files"
        raise WrongState(
            f"merging {branch} would conflict in {shown}; nothing was changed. Resolve by "
            f"merging it yourself (git merge {branch}) or ask the session to rebase"
        )
    if not probe.ok:
        raise CmsError(f"git merge-tree failed: {probe.first_error_line()}", 1)
    done = _git(project, "merge", "--no-edit", "-m", message, branch, check=False)
    if not done.ok:
        _git(project, "merge", "--abort", check=False)
        raise WrongState(f"git merge {branch} failed: {done.first_error_line()}; nothing changed")
    head = head_commit(project)
    assert head is not None
    return head
