"""``cms doctor``: the environment, each check with what to do when it fails."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from cms.base.errors import (
    CmsError,
    EnvironmentProblem,
)
from cms.base.paths import PACKAGE_DIR, plugin_root
from cms.engine import claude, procs, sandboxprobe, signin
from cms.engine.models import (
    Preset,
)
from cms.ops.project import Project
from cms.policy import sandbox


@dataclass
class Check:
    """One line of ``cms doctor``: what was checked, whether it passed, what was found,
    and (when it failed, or passed with a ``warning``) what to do about it."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None
    warning: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "ok": self.ok,
            "detail": self.detail,
            "fix": self.fix,
            "warning": self.warning,
        }


#: The oldest Claude Code that has every flag cms starts a child with, from the CLI's
#: changelog: ``--max-budget-usd`` came in 2.0.28, and ``--session-id`` together with
#: ``--resume``/``--fork-session`` (how ``cms fork`` names the new conversation) in
#: 2.0.73. The other flags cms passes (``-p``, ``--output-format stream-json``,
#: ``--verbose``, ``--resume``, ``--max-turns``, ``--model``, ``--permission-mode``,
#: ``--allowedTools``, ``--disallowedTools``, ``--settings``) are older than both.
MIN_CLAUDE_VERSION = (2, 0, 73)
#: Older than this, ``--max-budget-usd`` does not stop background subagents (fixed in
#: 2.1.217), so a child's subagents can spend past its budget: a warning, not a failure.
BUDGET_HALTS_SUBAGENTS_VERSION = (2, 1, 217)
CLAUDE_UPDATE_FIX = (
    "update Claude Code: `claude update`, or npm install -g @anthropic-ai/claude-code@latest"
)


def doctor(project: Project) -> list[Check]:
    """Check the environment, each failure with its fix: claude found and runnable,
    new enough for the flags cms uses, signed in, the plugin valid, the state folder writable, the
    root user versus the ``full`` preset, and ``cms setup`` done."""
    binary, found = _check_claude(project)
    checks = [found]
    checks.append(_check_claude_version(binary))
    checks.append(_check_signin(project, binary))
    checks.append(_check_plugin(project, binary))
    checks.append(_check_state(project))
    checks.append(_check_root(project))
    checks.append(_check_sandbox(project))
    # Imported here only: setup is on no other path of the API. By its module, not
    # through cms.ops, whose __init__ imports this module.
    from cms.ops.setup import check as check_setup

    ok, detail, fix = check_setup(project.env)
    checks.append(Check("setup", ok, detail, fix))
    return checks


def _check_sandbox(project: Project) -> Check:
    runs = sandboxprobe.check(project.env)
    if not runs.ok:
        return Check("sandbox", False, runs.detail, runs.fix)
    widening = sandbox.widening_rules(project.env, project.directory)
    if widening:
        return Check(
            "sandbox",
            True,
            f"{runs.detail}, but your settings let children's commands write beyond their "
            f"tree: {'; '.join(widening[:3])}",
            "remove those Edit(...) allow rules or additionalDirectories, or scope them to "
            "the project",
            warning=True,
        )
    return Check("sandbox", True, runs.detail)


def _version_tuple(version: str) -> tuple[int, ...] | None:
    match = re.match(r"v?(\d+)\.(\d+)\.(\d+)", version.strip())
    return tuple(int(part) for part in match.groups()) if match else None


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def _check_claude(project: Project) -> tuple[claude.ClaudeBinary | None, Check]:
    try:
        binary = claude.locate(None, project.env)
    except EnvironmentProblem as exc:
        fix = (
            "install Claude Code (npm install -g @anthropic-ai/claude-code) and sign in, "
            "or set CMS_CLAUDE_BIN to its path"
        )
        if project.env.get("CMS_CLAUDE_BIN"):
            fix = "point CMS_CLAUDE_BIN at a working claude, or unset it to use claude on PATH"
        return None, Check("claude", False, exc.message, fix)
    return binary, Check("claude", True, f"{binary.path} (version {binary.version})")


def _check_claude_version(binary: claude.ClaudeBinary | None) -> Check:
    if binary is None:
        return Check("version", False, "not checked: claude was not found", "see the claude check")
    have = _version_tuple(binary.version)
    if have is None:
        return Check(
            "version",
            False,
            f"cannot read a version from `claude --version` ({binary.version!r})",
            f"check that {binary.path} is Claude Code; {CLAUDE_UPDATE_FIX}",
        )
    if have < MIN_CLAUDE_VERSION:
        return Check(
            "version",
            False,
            f"Claude Code {binary.version} is too old: cms needs {_dotted(MIN_CLAUDE_VERSION)} "
            "or later for --max-budget-usd and --session-id with --fork-session",
            CLAUDE_UPDATE_FIX,
        )
    too_old = sandbox.version_problem(binary.version)
    if too_old:
        return Check(
            "version",
            False,
            too_old.split("; run")[0] + ": no preset that needs the sandbox starts "
            "(every one but full, unless --no-sandbox)",
            CLAUDE_UPDATE_FIX,
        )
    if have < BUDGET_HALTS_SUBAGENTS_VERSION:
        return Check(
            "version",
            True,
            f"Claude Code {binary.version} works, but before "
            f"{_dotted(BUDGET_HALTS_SUBAGENTS_VERSION)} --max-budget-usd does not stop "
            "background subagents, so a session may spend past its budget",
            CLAUDE_UPDATE_FIX,
            warning=True,
        )
    return Check(
        "version",
        True,
        f"{binary.version} has every flag cms uses (needs {_dotted(MIN_CLAUDE_VERSION)}+)",
    )


def _check_signin(project: Project, binary: claude.ClaudeBinary | None) -> Check:
    if binary is None:
        return Check("sign-in", False, "not checked: claude was not found", "see the claude check")
    found = signin.status(binary.path, project.env, project.directory)
    fix = "run `claude` and sign in with /login, or set ANTHROPIC_API_KEY"
    if found.signed_in is None:
        return Check(
            "sign-in", True, f"cannot tell whether Claude Code is signed in: {found.how}", fix,
            warning=True,
        )  # fmt: skip
    if not found.signed_in:
        return Check("sign-in", False, f"Claude Code is not signed in ({found.how})", fix)
    return Check("sign-in", True, f"Claude Code is signed in: {found.how}")


def _check_plugin(project: Project, binary: claude.ClaudeBinary | None) -> Check:
    root = plugin_root()
    if root is None:
        return Check(
            "plugin",
            False,
            f"no .claude-plugin/plugin.json next to the cms package in {PACKAGE_DIR}",
            "reinstall cms (pip install --force-reinstall cms) or install the plugin from "
            "its marketplace inside Claude Code",
        )
    if binary is None:
        return Check("plugin", False, f"{root}: not checked, claude was not found", "see above")
    import subprocess

    try:
        done = procs.run([binary.path, "plugin", "validate", str(root)], env=project.env)
    except (OSError, subprocess.SubprocessError) as exc:
        return Check(
            "plugin", False, f"`claude plugin validate {root}` did not run: {exc}", "see above"
        )
    if done.ok:
        return Check("plugin", True, f"{root} passes `claude plugin validate`")
    bullet = "\u276f"  # the validator lists each problem after a heavy right angle quote
    problems = [
        line.strip().lstrip(bullet).strip()
        for line in (done.stdout + "\n" + done.stderr).splitlines()
        if line.strip().startswith(bullet)
    ]
    found = "; ".join(problems[:3]) or done.first_error_line()
    return Check(
        "plugin",
        False,
        f"{root} fails `claude plugin validate`: {found}"[:500],
        f"run `claude plugin validate {root}` for the full report, then fix the files it "
        "names (or reinstall cms)",
    )


def _check_state(project: Project) -> Check:
    home = project.paths.home
    try:
        project.store.ensure_dirs()
        probe = project.paths.root / f".doctor-{os.getpid()}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        probe.unlink()
    except (CmsError, OSError) as exc:
        detail = exc.message if isinstance(exc, CmsError) else f"{home}: {exc.strerror or exc}"
        return Check(
            "state",
            False,
            detail,
            f"make {home} a writable folder of yours, or set CMS_HOME to one",
        )
    return Check("state", True, f"{home} is writable")


def _check_root(project: Project) -> Check:
    if not (hasattr(os, "geteuid") and os.geteuid() == 0):
        return Check("root", True, "not running as root: every preset can be used")
    try:
        config = project.store.load_project()
        default = config.defaults.preset
    except (CmsError, OSError):
        default = None  # the state check reports an unreadable project
    if default is Preset.FULL:
        return Check(
            "root",
            False,
            "running as root, and this project's default preset is 'full', which Claude "
            "Code refuses as root (--permission-mode bypassPermissions)",
            'run cms as a normal user, or set preset = "edit" under [defaults] in '
            f"{project.paths.project_file}",
        )
    return Check(
        "root",
        True,
        "running as root: preset 'full' cannot be used (Claude Code refuses "
        "bypassPermissions as root); the other presets work",
        "run cms as a normal user to use preset 'full'",
        warning=True,
    )
