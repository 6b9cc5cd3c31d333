"""Where things are: cms's state, Claude Code's folder, cms's own files; read from the
environment in one place.

State layout (README.md, "State lives in"; docs/DESIGN.md, "State on disk")::

    $CMS_HOME/                      default ~/.claude/cms, mode 0700
      notices/<parent-session-id>/  what ended since that parent session was last told
      capped/<project-key>          the project has caps over all of Claude Code (JSON)
      projects/<project-key>/
        project.toml                limits and defaults of the project
        sessions/<name>.toml        one session's record
        logs/<name>.jsonl           its raw stream-json events
        logs/<name>.stderr          the claude process's stderr (tail goes to `error`)
        spend/<session-id>[.<agent-id>].json  what was read of a Claude Code transcript

Standard library only: the hook entry point imports this module on every tool call.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

#: The cms package folder, and the folder holding it (what a child's PYTHONPATH needs).
PACKAGE_DIR = Path(__file__).resolve().parent.parent
PACKAGE_PARENT = PACKAGE_DIR.parent

NAME_PATTERN = r"[a-z0-9][a-z0-9._-]{0,62}"
_NAME_RE = re.compile(NAME_PATTERN)


def valid_name(name: str) -> bool:
    """True when ``name`` is a legal session name (and therefore a safe file stem)."""
    return bool(_NAME_RE.fullmatch(name)) and name not in {".", ".."}


def cms_home(env: Mapping[str, str] | None = None) -> Path:
    """The state root: ``$CMS_HOME``, else ``~/.claude/cms`` (absolute)."""
    env = os.environ if env is None else env
    value = env.get("CMS_HOME")
    if value:
        return Path(value).expanduser().absolute()
    home = env.get("HOME") or str(Path.home())
    return Path(home).expanduser().absolute() / ".claude" / "cms"


_SESSION_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def notices_dir(home: Path, parent_session_id: str | None) -> Path | None:
    """The folder of notes for the parent Claude Code session ``parent_session_id``
    (sessions of its that ended and it was not told of yet); None for an id that is
    not a safe folder name. ``scripts/cms-hook`` tests for it in the shell, so the path
    is ``$CMS_HOME/notices/<id>`` and nothing else."""
    if not parent_session_id or not _SESSION_ID_RE.fullmatch(parent_session_id):
        return None
    return home / "notices" / parent_session_id


def claude_config_dir(env: Mapping[str, str] | None = None) -> Path:
    """Claude Code's own folder: ``$CLAUDE_CONFIG_DIR``, else ``~/.claude``."""
    env = os.environ if env is None else env
    configured = env.get("CLAUDE_CONFIG_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path(env.get("HOME") or str(Path.home())).expanduser() / ".claude"


def plugin_root() -> Path | None:
    """The folder holding the plugin (``.claude-plugin/plugin.json``) that came with this
    cms: the checkout around the package, or the copy a wheel carries inside it."""
    for candidate in (PACKAGE_PARENT, PACKAGE_DIR / "plugin", PACKAGE_DIR):
        if (candidate / ".claude-plugin" / "plugin.json").is_file():
            return candidate
    return None


def find_project_root(start: Path) -> Path:
    """The git top-level containing ``start``, else ``start`` itself.

    Walks up looking for a ``.git`` entry (directory, or file in a worktree), which is
    what ``git rev-parse --show-toplevel`` answers in ordinary repositories, without
    paying for a git process on every command.
    """
    start = Path(os.path.realpath(start))
    for candidate in (start, *start.parents):
        if (candidate / ".git").exists():
            return candidate
    return start


def resolve_project(
    explicit: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Path:
    """The project: the git top-level of ``--project``, else of ``$CMS_PROJECT``, else
    of the working directory; a directory outside git is its own project.

    A subdirectory of a repository names the same project as its top-level, however
    it is given, so ``cms --project repo/src list`` shows the sessions started in repo.
    """
    env = os.environ if env is None else env
    if explicit:
        start = Path(os.path.expanduser(os.fspath(explicit)))
    elif env.get("CMS_PROJECT"):
        start = Path(os.path.expanduser(env["CMS_PROJECT"]))
    else:
        start = cwd if cwd is not None else Path.cwd()
    return find_project_root(start)


def _sha256_hex(data: bytes) -> str:
    """sha256 of ``data``, from the interpreter's builtin module where it has one:
    ``hashlib`` loads OpenSSL, a tenth of an interpreter's start on the hook path of
    every tool call (the digests are the same)."""
    try:
        from _sha256 import sha256  # type: ignore[import-not-found,unused-ignore]  # 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found,no-redef,unused-ignore]  # 3.12+
        except ImportError:
            from hashlib import sha256  # type: ignore[assignment,unused-ignore]
    digest: str = sha256(data).hexdigest()
    return digest


def project_key(root: Path) -> str:
    """A stable folder name for a project: readable stem plus a hash of the full path
    (scripts/cms-hook computes the same in the shell)."""
    real = os.path.realpath(root)
    stem = re.sub(r"[^a-z0-9._-]+", "-", os.path.basename(real).lower()).strip("-.") or "root"
    digest = _sha256_hex(real.encode("utf-8", "surrogateescape"))[:12]
    return f"{stem[:40]}-{digest}"


class ProjectPaths:
    """Every path of one project's state. Pass this around instead of globals.

    A plain class, not a dataclass: ``dataclasses`` imports ``inspect``, which costs
    the hook (on every tool call of every child) a tenth of an interpreter's start.
    """

    __slots__ = ("home", "key", "project")

    def __init__(self, home: Path, project: Path, key: str) -> None:
        self.home = home
        self.project = project
        self.key = key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProjectPaths) and (self.home, self.project, self.key) == (
            other.home,
            other.project,
            other.key,
        )

    def __hash__(self) -> int:
        return hash((self.home, self.project, self.key))

    def __repr__(self) -> str:
        return f"ProjectPaths(home={self.home!r}, project={self.project!r}, key={self.key!r})"

    @classmethod
    def for_project(cls, project: Path, home: Path | None = None) -> ProjectPaths:
        return cls(home=home or cms_home(), project=project, key=project_key(project))

    @property
    def root(self) -> Path:
        return self.home / "projects" / self.key

    @property
    def sessions_dir(self) -> Path:
        return self.root / "sessions"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def project_file(self) -> Path:
        return self.root / "project.toml"

    def session_file(self, name: str) -> Path:
        return self.sessions_dir / f"{name}.toml"

    def log_file(self, name: str) -> Path:
        return self.logs_dir / f"{name}.jsonl"

    def stderr_file(self, name: str) -> Path:
        return self.logs_dir / f"{name}.stderr"

    def supervisor_log(self, name: str) -> Path:
        return self.logs_dir / f"{name}.supervisor.log"
