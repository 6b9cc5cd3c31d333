"""The places a decision of the edit preset is made against: the working tree, cms
state, the temp folders, Claude Code's settings and git's own files.

:class:`Context` resolves them once per call (``realpath`` sees through symlinks and
``..``) and tells of any path which of them it lies in.
"""

from __future__ import annotations

import os

from cms.policy.shell import PWD_MARK

TYPE_CHECKING = False  # not typing's: the hook path does without typing (and its re)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

# ------------------------------------------------------------------------ places


class Context:
    """The folders a decision in the edit preset is made against, resolved once."""

    __slots__ = (
        "home", "sandboxed", "state", "state_spellings", "temps", "variables", "worktree",
    )  # fmt: skip

    def __init__(
        self,
        worktree: str,
        state: tuple[str, ...],
        state_spellings: tuple[str, ...],
        home: str,
        temps: tuple[str, ...],
        variables: Mapping[str, str],
        sandboxed: bool = False,
    ) -> None:
        self.worktree = worktree
        #: The child's commands run in the OS sandbox: where the reader cannot tell what
        #: a command touches, the sandbox decides (no refusal for "cannot tell").
        self.sandboxed = sandboxed
        self.state = state
        #: Ways a command line may spell the state folder (for "names cms state").
        self.state_spellings = state_spellings
        self.home = home
        self.temps = temps
        self.variables = variables

    @classmethod
    def make(
        cls,
        worktree: str,
        state_dir: str,
        home: str | None,
        temp_dirs: Sequence[str] | None,
        sandboxed: bool = False,
    ) -> Context:
        home = home or os.path.expanduser("~")
        tree = os.path.realpath(worktree)
        state_abs = os.path.abspath(os.path.expanduser(state_dir))
        state = tuple(dict.fromkeys((os.path.realpath(state_abs), state_abs)))
        spellings = set(state)
        for base in {home, os.path.realpath(home)}:
            for root in state:
                rel = os.path.relpath(root, base) if inside(root, base) else None
                if rel and rel != "." and not rel.startswith(".."):
                    spellings.update({f"~/{rel}", f"$HOME/{rel}", f"${{HOME}}/{rel}"})
        temps = tuple(
            dict.fromkeys(
                os.path.realpath(t)
                for t in (temp_dirs if temp_dirs is not None else ("/tmp", "/var/tmp"))
                if t and os.path.isabs(t) and t != "/"
            )
        )
        variables = {"HOME": home, "CMS_HOME": state_abs, "PWD": PWD_MARK}
        return cls(
            tree,
            state,
            tuple(sorted(spellings, key=len, reverse=True)),
            home,
            temps,
            variables,
            sandboxed,
        )

    def kind(self, path: str) -> str:
        """Where an absolute, resolved path lies: state, tree-root, git-dir, settings,
        tree, temp-root, temp or outside (state wins even inside the tree)."""
        if any(inside(path, s) for s in self.state):
            return "state"
        if inside(path, self.worktree):
            if path == self.worktree:
                return "tree-root"
            rel = os.path.relpath(path, self.worktree)
            parts = rel.split(os.sep)
            if parts == [".git"]:
                return "git-dir"
            if parts[0] == ".git" and parts[1] in _GIT_INTERNALS:
                return "git-internal"
            if _is_claude_settings(parts):
                return "settings"
            return "tree"
        for temp in self.temps:
            if path == temp:
                return "temp-root"
            if inside(path, temp):
                return "temp"
        return "outside"


#: What in a repository's .git folder runs code or changes how git runs: a child that
#: wrote a hook or the config would run code in the user's next git command.
_GIT_INTERNALS = frozenset({"hooks", "config", "config.worktree", "info", "modules"})


def inside(path: str, root: str) -> bool:
    if root == os.sep:
        return path.startswith(os.sep)
    return path == root or path.startswith(root + os.sep)


def _is_claude_settings(parts: Sequence[str]) -> bool:
    # Claude Code reads hooks and `disableAllHooks` from .claude/settings*.json: a child
    # that rewrote them could switch this hook off for its next turn.
    return (
        len(parts) >= 2
        and parts[-2] == ".claude"
        and parts[-1].startswith("settings")
        and parts[-1].endswith(".json")
    )


#: Paths under /dev that a shell may write to without harm (checked before realpath,
#: which would follow /dev/stdout to whatever the hook's own stdout is).
HARMLESS_DEVICES = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "/dev/zero"})
