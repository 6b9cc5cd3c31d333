"""The operating system's hold on a preset: Claude Code's sandbox, compiled from it.

A hook reads a command line before it runs; a program the child runs (python, node,
a script it wrote, a Makefile) does what it likes. Only the kernel can hold those, so
every preset but ``full`` runs the child's Bash commands, and whatever they start,
inside Claude Code's own sandbox (bubblewrap and socat on Linux, Seatbelt on macOS).
This module owns what the sandbox holds (whether it can run here is
:mod:`cms.engine.sandboxprobe`, which starts programs):

- :func:`settings`: the ``sandbox`` section of the child's ``--settings``, from the
  preset (README.md, "Safety presets"). ``failIfUnavailable`` is always on (without
  it Claude Code runs commands unsandboxed with a warning) and
  ``allowUnsandboxedCommands`` always off (else the model may ask to leave it).

What a command may write:

- ``read-only``, ``plan``, ``review``: nothing of the user's (the working tree is
  denied too); only the turn's private temp folder, where Claude Code itself keeps
  the shell's working-directory file;
- ``edit``: the working tree and the private temp folder (a ``--worktree`` session's
  tree is a repository of its own, so its commits land there: see
  :mod:`cms.engine.worktree`);
- never ``$CMS_HOME`` (the records hold the budgets; a command may not even read it,
  so it cannot take a record's lock either), nor Claude Code's folder
  (``~/.claude``: its settings, and the debug folder its sandbox would leave writable),
  nor npm's log folder, in any preset; git hooks and config Claude Code keeps
  read-only itself.

Network for the commands: none, unless the project allows domains (``cms sandbox
--allow-domain``), and then only for ``edit``. It covers Bash alone: Claude Code's own
file tools, hooks and MCP servers run outside it, and the cms hook judges the file
tools.

Standard library only: it is imported by the supervisor and the API, not the hook.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cms.base import paths

#: The oldest Claude Code whose sandbox holds a hostile child run as root: older ones
#: start bubblewrap as root without dropping capabilities or making a user namespace,
#: so a command can ``mount -o remount,rw`` what it was given read-only (or do so after
#: ``unshare -m``) and then rewrite its own record or the tree's ``.git``. The one place
#: this floor is pinned: below it no sandboxed preset starts, and ``cms doctor`` says so.
#: Found by replaying those attempts against older CLIs (README, "Security").
MIN_SANDBOX_VERSION = (2, 1, 216)

#: The variables that carry the child's credentials for the Messages API.
CREDENTIALS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")

#: Presets whose commands may write the working tree.
WRITES_TREE = frozenset({"edit"})
#: Presets that run without the sandbox (only budgets, timeout and abort apply).
UNSANDBOXED = frozenset({"full"})


def needed(preset: str) -> bool:
    """Whether a session of ``preset`` runs its commands in the sandbox."""
    return preset not in UNSANDBOXED


def version_problem(version: str) -> str | None:
    """Why Claude Code ``version`` cannot hold a sandboxed preset (None: it can)."""
    floor = ".".join(map(str, MIN_SANDBOX_VERSION))
    match = re.match(r"v?(\d+)\.(\d+)\.(\d+)", version.strip())
    if match and tuple(int(part) for part in match.groups()) >= MIN_SANDBOX_VERSION:
        return None
    return (
        f"Claude Code {version[:40]} is older than {floor}, the oldest whose sandbox holds "
        "a child's commands (older ones let them remount what they may not write, as "
        "root); run `claude update` (or npm install -g @anthropic-ai/claude-code@latest)"
    )


def settings(
    preset: str,
    *,
    cwd: str,
    temp_dir: str,
    state_dir: str,
    protected: Sequence[str] = (),
    allowed_domains: Sequence[str] = (),
    denied_domains: Sequence[str] = (),
) -> dict[str, Any] | None:
    """The ``sandbox`` section of the child's ``--settings`` (None: no sandbox).

    ``protected`` are further paths a command must not write (:func:`shielded`); only
    existing paths are given, because Claude Code makes a missing denied path
    unreadable as well.
    """
    if not needed(preset):
        return None
    deny = [p for p in (state_dir, *protected) if os.path.exists(p)]
    allow: list[str] = []
    if preset in WRITES_TREE:
        allow.append(temp_dir)
    else:
        deny.insert(0, cwd)
    network: dict[str, Any] = {
        "allowedDomains": list(allowed_domains) if preset in WRITES_TREE else [],
        "allowLocalBinding": False,
    }
    if denied_domains:
        network["deniedDomains"] = list(denied_domains)
    # Claude Code keeps these out of every sandboxed command's environment (claude
    # itself still has them): a command cannot print the key, nor write it into the
    # tree for a commit to carry away.
    credentials = {"envVars": [{"name": name, "mode": "deny"} for name in CREDENTIALS]}
    return {
        "enabled": True,
        "failIfUnavailable": True,
        "allowUnsandboxedCommands": False,
        "autoAllowBashIfSandboxed": False,
        "filesystem": {
            "allowWrite": allow,
            "denyWrite": list(dict.fromkeys(deny)),
            # Not even readable: a command that can open a record can lock it, and
            # the records say what budgets to go after. The hook reads them outside.
            "denyRead": [state_dir] if os.path.exists(state_dir) else [],
        },
        "network": network,
        "credentials": credentials,
    }


def widening_rules(env: Mapping[str, str], project: Path) -> list[str]:
    """The user's and the project's Claude Code settings that widen what a sandboxed
    command may write beyond the tree: Claude Code adds the paths of ``Edit(...)``
    allow rules and ``additionalDirectories`` to the sandbox's writable places (seen
    with 2.1.332), so ``Edit(//**)`` makes the whole disk writable to every child's
    programs. cms cannot take them out again; it says so."""
    home = Path(env.get("HOME") or Path.home())
    config = paths.claude_config_dir(env)
    found: list[str] = []
    for path in (
        config / "settings.json",
        project / ".claude" / "settings.json",
        project / ".claude" / "settings.local.json",
    ):
        try:
            permissions = json.loads(path.read_text(encoding="utf-8")).get("permissions") or {}
        except (OSError, ValueError, AttributeError):
            continue
        shown = str(path).replace(str(home), "~", 1)
        for rule in permissions.get("allow") or []:
            inner = rule[5:-1] if isinstance(rule, str) and rule.startswith("Edit(") else ""
            if inner.startswith(("//", "~")) or ".." in inner:
                found.append(f"{rule} in {shown}")
        for folder in permissions.get("additionalDirectories") or []:
            found.append(f"additionalDirectories {folder} in {shown}")
    return found


#: Folders Claude Code's sandbox leaves writable outside the working tree (seen with
#: 2.1.332), below the user's home; cms makes them exist so that it can deny them.
HOME_WRITABLE = (".npm/_logs", ".claude/debug")


def shielded(folder: Path, keep: Path) -> list[str]:
    """What to deny so that nothing in ``folder`` is writable but the way down to
    ``keep`` (the working tree, when it lies inside): ``folder`` itself when ``keep``
    is outside it, else every entry beside the path to ``keep``, level by level."""
    try:
        rel = keep.resolve().relative_to(folder.resolve())
    except ValueError:
        return [str(folder)]
    out: list[str] = []
    here = folder
    for part in rel.parts:
        try:
            entries = sorted(os.listdir(here))
        except OSError:
            break
        out += [str(here / e) for e in entries if e != part]
        here = here / part
    return out


#: What Claude Code's sandbox mounts over paths of the working directory that it keeps
#: unwritable even when missing (shell start-up files, editor and Claude settings):
#: inside the sandbox each shows up as a character device, which ``git add -A`` refuses
#: to add ("can only add regular files"). Seen with Claude Code 2.1.332.
PLACEHOLDERS = (
    ".bash_profile", ".bashrc", ".bash_aliases", ".bash_login", ".profile", ".zshrc",
    ".zprofile", ".zshenv", ".gitconfig", ".gitmodules", ".ripgreprc", ".mcp.json",
    ".idea", ".vscode", ".claude/settings.json", ".claude/settings.local.json",
    ".claude/agents", ".claude/commands", ".claude/skills", ".claude/hooks",
    ".claude/launch.json", ".claude/workflows", ".claude/routines", ".claude/output-styles",
    ".claude/scheduled_tasks.json", ".claude/loop.md",
)  # fmt: skip


def git_excludes(cwd: str, user_excludes: str = "") -> str:
    """A ``core.excludesFile`` for the child's git: the user's own global excludes,
    plus the sandbox's placeholders in ``cwd`` (as the repository sees them), so that
    ``git add -A`` and ``git status`` in the sandbox behave as outside it. Ignoring
    them loses nothing: the sandbox lets no command write those paths."""
    top = cwd
    probe = cwd
    while True:
        if os.path.exists(os.path.join(probe, ".git")):
            top = probe
            break
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    rel = os.path.relpath(cwd, top)
    prefix = "/" if rel == "." else f"/{rel}/"
    lines = [user_excludes.rstrip("\n")] if user_excludes.strip() else []
    lines.append("# cms: what Claude Code's sandbox mounts over paths it keeps unwritable")
    lines += [prefix + name for name in PLACEHOLDERS]
    if not os.path.exists(os.path.join(cwd, ".claude")):
        # The tree has no .claude of its own: all that shows there is the sandbox's.
        lines.append(prefix + ".claude/")
    return "\n".join(lines) + "\n"


def valid_domain(domain: str) -> bool:
    """A host name or ``*.example.com`` wildcard, as Claude Code's allowlist takes."""
    text = domain[2:] if domain.startswith("*.") else domain
    if not text or len(text) > 253 or ("." not in text and text != "localhost"):
        return False
    labels = text.split(".")
    return all(
        0 < len(label) <= 63
        and label[0] != "-"
        and label[-1] != "-"
        and all(c.isascii() and (c.isalnum() or c == "-") for c in label)
        for label in labels
    )
