"""The Claude Code CLI: find it, check it runs, and build a child turn's argv and env.

This is the transport seam: everything cms knows about how ``claude`` is invoked lives
here, so a CLI change touches one module. The executable is ``$CMS_CLAUDE_BIN``, else
``claude`` on PATH. Its version is probed once per binary (path, size, mtime) and
cached in the state folder, because starting Node costs a few hundred milliseconds
that a delegation should not pay every time.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cms.base import paths, vocab
from cms.base.errors import EnvironmentProblem
from cms.base.files import atomic_write
from cms.engine import procs
from cms.engine.models import Preset

#: Variables Claude Code sets for its own hooks and tools. A child must not inherit
#: the parent's: they name the parent's session, sockets and plugin folders.
_PARENT_ONLY_PREFIXES = ("CLAUDE_PLUGIN_", "CLAUDE_CODE_CHILD_", "CLAUDE_CODE_MESSAGING_")
_PARENT_ONLY = frozenset(
    {
        "CLAUDECODE",
        "CLAUDE_CODE_SESSION_ID",
        "CLAUDE_CODE_ENTRYPOINT",
        "CLAUDE_CODE_SESSION_ATTENDED",
        "CLAUDE_ENV_FILE",
        "CLAUDE_PROJECT_DIR",
        "CLAUDE_PID",
        "CMS_SESSION",
        "CMS_DEPTH",
        "CMS_SETTINGS_HOOK",
        "CLAUDE_CODE_TMPDIR",
        "SANDBOX_RUNTIME",
    }
)

#: Tools that only read or search. Used for the CLI's own allow-lists; the hook has
#: the authoritative policy (cms.policy.decide).
READ_TOOLS = vocab.READ_TOOLS
WRITE_TOOLS = tuple(vocab.WRITE_TOOLS)
REVIEW_GIT = vocab.REVIEW_GIT


@dataclass(frozen=True)
class ClaudeBinary:
    path: str
    version: str


def find_claude(env: Mapping[str, str] | None = None) -> str:
    """The claude executable's path; exit-3 error when there is none."""
    env = os.environ if env is None else env
    configured = env.get("CMS_CLAUDE_BIN")
    if configured:
        path = shutil.which(configured) if os.sep not in configured else configured
        if not path or not os.path.isfile(path):
            raise EnvironmentProblem(
                f"claude not found at CMS_CLAUDE_BIN={configured}; fix the path or unset it"
            )
        if not os.access(path, os.X_OK):
            raise EnvironmentProblem(f"claude at {path} is not executable; check its mode")
        return path
    found = shutil.which("claude", path=env.get("PATH"))
    if not found:
        raise EnvironmentProblem(
            "claude not found on PATH; install Claude Code "
            "(npm install -g @anthropic-ai/claude-code) or set CMS_CLAUDE_BIN"
        )
    return found


def probe_version(path: str, env: Mapping[str, str] | None = None) -> str:
    """Run ``claude --version``; exit-3 error when it does not run."""
    try:
        done = procs.run([path, "--version"], env=os.environ if env is None else env)
    except (OSError, subprocess.SubprocessError) as exc:
        raise EnvironmentProblem(f"claude at {path} does not run: {exc}") from exc
    text = done.stdout.strip()
    if not done.ok or not text:
        raise EnvironmentProblem(
            f"claude at {path} does not run (exit {done.code}: {done.first_error_line()[:200]})"
        )
    return text.split()[0]


def locate(cache_dir: Path | None, env: Mapping[str, str] | None = None) -> ClaudeBinary:
    """Find claude and know its version, probing once per binary."""
    path = find_claude(env)
    real = os.path.realpath(path)
    try:
        info = os.stat(real)
    except OSError as exc:
        raise EnvironmentProblem(f"claude at {path} cannot be read: {exc.strerror}") from exc
    stamp = f"{real}:{info.st_size}:{info.st_mtime_ns}"
    cache = cache_dir / "claude-version.json" if cache_dir else None
    if cache is not None:
        try:
            known = json.loads(cache.read_text())
            if known.get("stamp") == stamp and known.get("version"):
                return ClaudeBinary(path, str(known["version"]))
        except (OSError, ValueError, AttributeError):
            pass
    version = probe_version(path, env)
    if cache is not None and cache.parent.is_dir():
        with contextlib.suppress(OSError):  # a cache, nothing more
            atomic_write(cache, json.dumps({"stamp": stamp, "version": version}))
    return ClaudeBinary(path, version)


def transcript_exists(session_id: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether Claude Code saved a conversation with this id (so --resume can load it)."""
    if not session_id:
        return False
    projects = paths.claude_config_dir(env) / "projects"
    pattern = os.path.join(glob.escape(str(projects)), "*", f"{session_id}.jsonl")
    return bool(glob.glob(pattern))


#: What a child's hook runs: :func:`cms.hooks.child.main`, through ``-c`` rather than
#: ``-m`` (:mod:`runpy` and the importlib machinery it loads are a third of an
#: interpreter's start).
HOOK_CODE = "import sys; from cms.hooks.child import main; sys.exit(main())"


def hook_command() -> str:
    """The shell command a child's PreToolUse hook runs: this interpreter, this cms.

    ``-S`` skips site-packages: the hook is standard library only, and site's
    ``.pth`` processing is a third of an interpreter's start. ``-P`` keeps the working
    folder (the child's tree, which it may write) off ``sys.path``: a ``cms`` package
    the child wrote there would otherwise be the hook that judges it."""
    package_parent = str(paths.PACKAGE_PARENT)
    return (
        f"PYTHONPATH={_sh_quote(package_parent)}${{PYTHONPATH:+:$PYTHONPATH}} "
        f"exec {_sh_quote(sys.executable)} -S -P -c {_sh_quote(HOOK_CODE)} pre-tool-use"
    )


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def child_settings(sandbox: Mapping[str, Any] | None) -> str:
    """The ``--settings`` JSON of a child: the cms PreToolUse hook, and the sandbox
    compiled from its preset (:mod:`cms.policy.sandbox`), or none."""
    settings: dict[str, Any] = {
        "hooks": {
            "PreToolUse": [
                {"matcher": "*", "hooks": [{"type": "command", "command": hook_command()}]}
            ]
        }
    }
    if sandbox is not None:
        settings["sandbox"] = dict(sandbox)
    return json.dumps(settings)


#: The name of the MCP server cms gives a child that may delegate further; its tools
#: are ``mcp__cms__delegate_task`` and so on.
CHILD_MCP_SERVER = vocab.CHILD_MCP_SERVER


def child_mcp_config() -> str:
    """``--mcp-config`` of a child that may delegate: the cms MCP server, run with
    this interpreter outside the child's sandbox (its commands cannot write cms state,
    the server can). It gets the child's environment, so it knows which session
    calls it, and the API holds every session it starts within that one's preset and
    budget. It starts as the light stand-in of cms.ui.mcp_lazy: most children never
    delegate, and the real server costs seconds of CPU."""
    package_parent = str(paths.PACKAGE_PARENT)
    server = {
        "type": "stdio",
        "command": sys.executable,
        "args": ["-m", "cms.ui.mcp_lazy"],
        "env": {"PYTHONPATH": package_parent},
    }
    return json.dumps({"mcpServers": {CHILD_MCP_SERVER: server}})


def preset_flags(preset: Preset, delegates: bool = False) -> list[str]:
    """The CLI's own permission flags for a preset (the hook enforces it again).
    ``delegates``: the child has the cms MCP server, whose tools it may call."""
    mcp = [f"mcp__{CHILD_MCP_SERVER}"] if delegates else []
    if preset is Preset.READ_ONLY:
        return [
            "--permission-mode", "default",
            "--allowedTools", *READ_TOOLS, *mcp,
            "--disallowedTools", *WRITE_TOOLS, "Bash",
        ]  # fmt: skip
    if preset is Preset.REVIEW:
        git = [f"Bash({cmd}:*)" for cmd in REVIEW_GIT]
        return [
            "--permission-mode", "default",
            "--allowedTools", *READ_TOOLS, *git, *mcp,
            "--disallowedTools", *WRITE_TOOLS,
        ]  # fmt: skip
    if preset is Preset.PLAN:
        allowed = ["--allowedTools", *mcp] if mcp else []
        return ["--permission-mode", "plan", *allowed, "--disallowedTools", *WRITE_TOOLS]
    if preset is Preset.EDIT:
        return [
            "--permission-mode", "acceptEdits",
            "--allowedTools", *READ_TOOLS, *WRITE_TOOLS, "Bash", *mcp,
        ]  # fmt: skip
    return ["--permission-mode", "bypassPermissions"]


def check_preset_runnable(preset: Preset) -> None:
    """Claude Code refuses bypassPermissions as root: say so before starting."""
    if preset is Preset.FULL and hasattr(os, "geteuid") and os.geteuid() == 0:
        raise EnvironmentProblem(
            "preset 'full' needs --permission-mode bypassPermissions, which Claude Code "
            "refuses when running as root; run cms as a normal user or pick preset 'edit'"
        )


@dataclass(frozen=True)
class TurnSpec:
    """Everything that decides one child turn's command line."""

    claude: str
    session_id: str
    resume: bool
    fork_from: str | None
    preset: Preset
    model: str | None
    max_budget_usd: float | None
    max_turns: int | None
    #: The ``sandbox`` settings compiled from the preset (None: no sandbox).
    sandbox: Mapping[str, Any] | None = None
    #: Give the child the cms MCP server, so it may delegate further.
    delegates: bool = False


def build_argv(spec: TurnSpec) -> list[str]:
    """argv of one turn. The prompt goes on stdin, never on the command line, so a
    task that starts with ``-`` cannot be read as an option."""
    argv = [spec.claude, "-p", "--output-format", "stream-json", "--verbose"]
    if spec.fork_from:
        argv += ["--resume", spec.fork_from, "--fork-session", "--session-id", spec.session_id]
    elif spec.resume:
        argv += ["--resume", spec.session_id]
    else:
        argv += ["--session-id", spec.session_id]
    if spec.model:
        argv += ["--model", spec.model]
    if spec.max_budget_usd is not None:
        argv += ["--max-budget-usd", f"{max(spec.max_budget_usd, 0.0):.6f}"]
    if spec.max_turns is not None:
        argv += ["--max-turns", str(max(spec.max_turns, 1))]
    argv += preset_flags(spec.preset, spec.delegates)
    argv += ["--settings", child_settings(spec.sandbox)]
    if spec.delegates:
        argv += ["--mcp-config", child_mcp_config()]
    return argv


def child_env(
    base: Mapping[str, str],
    *,
    session: str,
    depth: int,
    project: Path,
    home: Path,
    temp_dir: str | None = None,
) -> dict[str, str]:
    """The child's environment: the caller's, less the parent session's Claude Code
    variables, plus what the hook and nested cms need to find this session."""
    env = {
        key: value
        for key, value in base.items()
        if key not in _PARENT_ONLY and not key.startswith(_PARENT_ONLY_PREFIXES)
    }
    env["CMS_SESSION"] = session
    env["CMS_SETTINGS_HOOK"] = "1"  # the plugin's own PreToolUse hook then stands aside
    env["CMS_DEPTH"] = str(depth)
    env["CMS_PROJECT"] = str(project)
    env["CMS_HOME"] = str(home)
    if temp_dir:
        # Claude Code keeps its per-session files (and the sandboxed shell's TMPDIR)
        # below this folder instead of the shared /tmp/claude-<uid>.
        env["CLAUDE_CODE_TMPDIR"] = temp_dir
    return env


@dataclass(frozen=True)
class Launch:
    """How to start a turn: the command (its stdin takes the prompt, its stdout gives
    stream-json), its environment and its working folder on the user's machine."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    #: Written to the command's stdin before the prompt (the Docker engine's
    #: credentials: on no command line, in no container's configuration).
    stdin_prefix: bytes = b""
