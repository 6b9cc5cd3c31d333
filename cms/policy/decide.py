"""The safety presets: which tool calls a child session may make.

This module owns the one decision "may this tool call run under this preset?"
(README.md, "Safety presets"). :func:`decide` is a pure function of the preset, the
tool call and a few directories; the only system call it makes is
:func:`os.path.realpath` (to see through symlinks and ``..``). Budgets, deadlines and
aborts are not decided here but in :mod:`cms.hooks.child`, which reads the session record.

Presets:

* ``read-only`` and ``plan``: only the tools in :data:`READ_TOOLS` (plan mode also may
  call ``ExitPlanMode``). Everything else is denied, unknown and MCP tools included.
* ``review``: ``read-only`` plus Bash limited to read-only git (:data:`GIT_READ`),
  optionally piped into plain text filters (:data:`REVIEW_FILTERS`). Anything the
  checker cannot prove harmless (variables, substitutions, redirections, globs,
  subshells, config switches) is denied.
* ``edit``: file tools may write only inside the working tree (after symlinks and
  ``..``), or below a temp folder, never into cms state or Claude Code's settings;
  Bash runs unless a rule of :data:`DESTRUCTIVE` matches one of its simple commands:
  privilege escalation, git push, downloaded code run by a shell, disk and power
  tools, killing by name or process group, changing cms limits, touching cms state,
  and writes outside the tree by the common file commands (redirections, rm, cp, mv,
  tee, touch, mkdir, sed -i, chmod/chown, dd, tar -x, ...). The command is split on
  ``;``, ``&&``, ``||``, ``|``, ``&`` and newlines; ``$(...)``, backticks, ``<(...)``,
  heredoc bodies, ``sh -c``/``eval`` strings, ``find -exec`` and ``xargs`` are looked
  through, and ``cd`` is followed (:mod:`cms.policy.edit`, :mod:`cms.policy.rules`).
  Where the OS sandbox holds the child's commands, a command whose effect the reader
  cannot tell is left to it; without the sandbox (``--no-sandbox``) such a command is
  denied, with a reason that says to spell it out. Other tools are allowed.
* ``full``: everything.

Reading is allowed everywhere in every preset (a child may read outside its tree; the
parent's files and docs are often what it needs). The Bash checks are early, readable
refusals, not the boundary: a program the child runs (``python -c ...``) is held by
the OS sandbox compiled from the preset (:mod:`cms.policy.sandbox`), not by this.
"""

from __future__ import annotations

import os

from cms.base import vocab
from cms.policy.edit import bash_problem_edit
from cms.policy.places import Context
from cms.policy.review import bash_problem_review

TYPE_CHECKING = False  # not typing's: the hook path does without typing (and its re)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

#: Tools every preset may call: they only read or search (see cms.base.vocab).
READ_TOOLS = frozenset(vocab.READ_TOOLS)
#: The cms MCP tools of a child that may delegate: every preset may call them, since
#: their server holds what a child starts within its own preset and budget.
CMS_TOOLS_PREFIX = f"mcp__{vocab.CHILD_MCP_SERVER}__"
#: Plan mode ends by presenting the plan; even when the CLI then leaves plan mode,
#: this hook still enforces the plan preset (read only).
PLAN_TOOLS = READ_TOOLS | {"ExitPlanMode"}
WRITE_TOOLS = vocab.WRITE_TOOLS
PRESETS = vocab.PRESETS

# Plain classes with __slots__ rather than dataclasses: this module is imported on every
# tool call of every child, and each @dataclass costs a fraction of a millisecond there.


class Decision:
    """Allow or deny, and the one line the child model reads when denied."""

    __slots__ = ("allow", "reason")

    def __init__(self, allow: bool, reason: str = "") -> None:
        self.allow = allow
        self.reason = reason

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Decision) and (self.allow, self.reason) == (
            other.allow,
            other.reason,
        )

    def __hash__(self) -> int:
        return hash((self.allow, self.reason))

    def __repr__(self) -> str:
        return f"Decision(allow={self.allow!r}, reason={self.reason!r})"


ALLOW = Decision(True)


def decide(
    preset: str,
    tool_name: str,
    tool_input: Mapping[str, Any],
    worktree: str,
    state_dir: str,
    *,
    cwd: str | None = None,
    home: str | None = None,
    temp_dirs: Sequence[str] | None = None,
    sandboxed: bool = False,
) -> Decision:
    """May ``tool_name`` run with ``tool_input`` under ``preset``?

    ``worktree`` is the session's working tree, ``state_dir`` the cms state root
    (``$CMS_HOME``), never writable by a child. ``cwd`` is the shell's current folder
    for Bash (default: the tree); ``home`` the user's home (``~``, ``$HOME``);
    ``temp_dirs`` the folders below which edit may also write (default ``/tmp``,
    ``/var/tmp``). ``sandboxed``: the child's commands run in the OS sandbox, so a
    command whose effect the reader cannot tell is left to it rather than refused.
    An unknown preset is treated as read-only.
    """
    if preset == "full":
        return ALLOW
    if tool_name in READ_TOOLS or tool_name.startswith(CMS_TOOLS_PREFIX):
        return ALLOW
    if preset == "plan" and tool_name == "ExitPlanMode":
        return ALLOW
    if preset == "edit":
        if tool_name in WRITE_TOOLS:
            ctx = Context.make(worktree, state_dir, home, temp_dirs, sandboxed)
            return _decide_file_write(tool_name, tool_input, ctx)
        if tool_name == "Bash":
            command = tool_input.get("command")
            if not isinstance(command, str):
                return Decision(False, "cms: preset edit denies Bash without a command string")
            ctx = Context.make(worktree, state_dir, home, temp_dirs, sandboxed)
            why = bash_problem_edit(command, ctx, cwd or ctx.worktree)
            if why:
                return Decision(False, f"cms: preset edit denies `{snippet(command)}` ({why})")
        return ALLOW
    if preset == "review" and tool_name == "Bash":
        command = tool_input.get("command")
        if not isinstance(command, str):
            return Decision(False, "cms: preset review denies Bash without a command string")
        why = bash_problem_review(command)
        if why:
            return Decision(False, f"cms: preset review denies `{snippet(command)}` ({why})")
        return ALLOW
    if preset == "review":
        what = "read and search, and read-only git in Bash"
    elif preset in PRESETS:
        what = "read and search only"
    else:
        return Decision(
            False,
            f"cms: unknown preset {preset!r} is treated as read-only; {tool_name} denied",
        )
    return Decision(False, f"cms: preset {preset} denies {tool_name} ({what})")


def snippet(command: str, limit: int = 80) -> str:
    return vocab.one_line(command, limit, "...")


def _decide_file_write(tool_name: str, tool_input: Mapping[str, Any], ctx: Context) -> Decision:
    key = WRITE_TOOLS[tool_name]
    path = tool_input.get(key)
    if not isinstance(path, str) or not path:
        return Decision(False, f"cms: preset edit denies {tool_name} without a {key}")
    if path == "~" or path.startswith("~/"):
        path = ctx.home + path[1:]
    full = os.path.join(ctx.worktree, path)
    kind = ctx.kind(os.path.realpath(full))
    if kind in ("tree", "temp"):
        return ALLOW
    why = {
        "state": f"it is inside cms state {ctx.state[-1]}; a child must not edit its own record",
        "settings": "Claude Code settings could switch the cms hook off",
        "tree-root": "it is the working tree itself",
        "git-dir": "it is the .git folder itself",
        "git-internal": "git hooks and config run code in the user's next git command",
    }.get(kind, f"outside the working tree {ctx.worktree}")
    return Decision(False, f"cms: preset edit denies {tool_name} to {path} ({why})")
