"""Git worktrees for sessions that edit in parallel: create, diff, merge, remove.

A ``--worktree`` session runs in a worktree of its own on the branch ``cms/<name>``,
made from the project's HEAD, so two sessions editing the same file never overwrite
each other and the user's tree is untouched until ``cms merge``. Worktrees live beside
the state folder (``<CMS_HOME>-worktrees/<project-key>/<name>``), outside the project
and outside ``$CMS_HOME`` (which the edit preset forbids writing to).

Every operation that changes the user's repository checks first and acts second, so a
refusal (dirty tree, conflict) leaves the user's tree and branch exactly as they were.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from cms import procs
from cms.errors import BadInput, CmsError, EnvironmentProblem, WrongState

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


def create(project: Path, path: Path, branch: str, start: str) -> None:
    """A new worktree at ``path`` on a new ``branch`` made from ``start``."""
    if branch_exists(project, branch):
        raise BadInput(
            f"branch {branch} already exists in {project}; delete it or choose another name"
        )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _git(project, "worktree", "add", "-q", "-b", branch, str(path), start)


def remove(project: Path, path: Path, branch: str) -> None:
    """Remove the worktree and its branch; whatever is already gone is fine."""
    if path.exists():
        _git(project, "worktree", "remove", "--force", str(path), check=False)
    _git(project, "worktree", "prune", check=False)
    if branch_exists(project, branch):
        _git(project, "branch", "-D", branch, check=False)


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
    if branch_exists(project, branch):
        merged = _git(project, "merge-base", "--is-ancestor", branch, "HEAD", check=False)
        if not merged.ok:
            reasons.append(f"commits on {branch} not merged into your branch")
    return reasons


def merge(project: Path, branch: str, message: str) -> str:
    """Merge ``branch`` into the project's current branch, or refuse without changes.

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


#: Entries of the main repository's git folder a worktree session's commands must not
#: write (when they exist); its objects stay writable, which a commit needs.
_PROTECTED_GIT_FILES = (
    "HEAD", "index", "packed-refs", "ORIG_HEAD", "FETCH_HEAD", "MERGE_HEAD",
    "CHERRY_PICK_HEAD", "REVERT_HEAD", "config", "config.worktree", "hooks", "info",
    "modules", "description", "shallow", "logs/HEAD",
)  # fmt: skip
#: More entries than this under one folder are protected by their folder instead.
_MAX_PROTECTED = 2000


def git_common_dir(path: Path) -> tuple[Path, Path] | None:
    """``(common git folder, this worktree's admin folder)`` of the linked worktree at
    ``path``, read from its ``.git`` file without running git; None when it is not one."""
    try:
        text = (path / ".git").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("gitdir:"):
        return None
    admin = Path(text[len("gitdir:") :].strip())
    if not admin.is_absolute():
        admin = (path / admin).resolve()
    try:
        common = (admin / (admin / "commondir").read_text(encoding="utf-8").strip()).resolve()
    except (OSError, UnicodeDecodeError):
        return None
    return common, admin


def protected_paths(path: Path, branch: str) -> list[str]:
    """What a worktree session's commands must not write in the main repository.

    Claude Code's sandbox lets a command in a linked worktree write the main
    repository's git folder (a commit needs its objects and the branch's ref), hooks
    and config excepted. That would let a child move the user's branches, rewrite the
    main index or another session's worktree. So every existing entry there is
    protected except the objects, this branch's ref and reflog, and this worktree's
    admin folder: the child commits on its branch and nothing else moves.
    """
    found = git_common_dir(path)
    if found is None:
        return []
    common, admin = found
    protected = [str(common / name) for name in _PROTECTED_GIT_FILES]
    own = branch.split("/")
    for top in ("refs", "logs/refs"):
        protected += _all_but(common / top, ["heads", *own])
    protected += _all_but(common / "worktrees", [admin.name])
    return [p for p in protected if os.path.lexists(p)]


def _all_but(folder: Path, keep: list[str]) -> list[str]:
    """The entries of ``folder`` except the path ``keep`` (one name per level), whose
    own siblings are protected level by level."""
    try:
        entries = sorted(os.listdir(folder))
    except OSError:
        return []
    if not keep:
        return [str(folder)]
    if len(entries) > _MAX_PROTECTED:
        return [str(folder / e) for e in entries if e != keep[0]][:_MAX_PROTECTED]
    out = [str(folder / e) for e in entries if e != keep[0]]
    if keep[0] in entries and len(keep) > 1:
        out += _all_but(folder / keep[0], keep[1:])
    return out
