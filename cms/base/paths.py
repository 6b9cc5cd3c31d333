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

Standard library only: the hook entry point imports this module on every tool call,
so it imports neither :mod:`pathlib` nor :mod:`re` at import time (each costs the hook
a good part of an interpreter's start): the functions the hook calls work on strings,
and those that give a :class:`~pathlib.Path` import it when called.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    #: The cms package folder, and the folder holding it (what a child's PYTHONPATH
    #: needs); made on first use (:func:`__getattr__`).
    PACKAGE_DIR: Path
    PACKAGE_PARENT: Path


def __getattr__(name: str) -> Path:
    """``PACKAGE_DIR`` and ``PACKAGE_PARENT``, made when asked for."""
    if name == "PACKAGE_DIR":
        return _package_dir()
    if name == "PACKAGE_PARENT":
        return _package_dir().parent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _package_dir() -> Path:
    from pathlib import Path

    return Path(os.path.realpath(__file__)).parent.parent


#: A session name (the MCP tools' schema says it to the model).
NAME_PATTERN = r"[a-z0-9][a-z0-9._-]{0,62}"
_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_NAME_CHARS = _LOWER | frozenset("._-")
_ID_FIRST = _LOWER | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ID_CHARS = _ID_FIRST | frozenset("_-")


def valid_name(name: str) -> bool:
    """True when ``name`` is a legal session name (:data:`NAME_PATTERN`, and therefore
    a safe file stem)."""
    return (
        0 < len(name) <= 63
        and name[0] in _LOWER
        and _NAME_CHARS.issuperset(name)
        and name not in {".", ".."}
    )


def home_dir(env: Mapping[str, str] | None = None) -> str:
    """The state root, absolute: ``$CMS_HOME``, else ``~/.claude/cms`` (what
    :func:`cms_home` gives, as a string)."""
    env = os.environ if env is None else env
    value = env.get("CMS_HOME")
    if value:
        return _absolute(os.path.expanduser(value))
    home = env.get("HOME") or os.path.expanduser("~")
    return os.path.join(_absolute(os.path.expanduser(home)), ".claude", "cms")


def _absolute(path: str) -> str:
    """``str(Path(path).absolute())``: joined to the working folder when relative,
    repeated slashes and ``.`` parts dropped, ``..`` kept (the kernel resolves it)."""
    path = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)
    lead = "//" if path.startswith("//") and not path.startswith("///") else "/"
    return lead + "/".join(part for part in path.split("/") if part and part != ".")


def cms_home(env: Mapping[str, str] | None = None) -> Path:
    """The state root: ``$CMS_HOME``, else ``~/.claude/cms`` (absolute)."""
    from pathlib import Path

    return Path(home_dir(env))


def notices_dir(home: Path, parent_session_id: str | None) -> Path | None:
    """The folder of notes for the parent Claude Code session ``parent_session_id``
    (sessions of its that ended and it was not told of yet); None for an id that is
    not a safe folder name (``[A-Za-z0-9][A-Za-z0-9_-]{0,127}``). ``scripts/cms-hook``
    tests for it in the shell, so the path is ``$CMS_HOME/notices/<id>`` and nothing
    else."""
    if not (
        parent_session_id
        and len(parent_session_id) <= 128
        and parent_session_id[0] in _ID_FIRST
        and _ID_CHARS.issuperset(parent_session_id)
    ):
        return None
    return home / "notices" / parent_session_id


def claude_config_dir(env: Mapping[str, str] | None = None) -> Path:
    """Claude Code's own folder: ``$CLAUDE_CONFIG_DIR``, else ``~/.claude``."""
    from pathlib import Path

    env = os.environ if env is None else env
    configured = env.get("CLAUDE_CONFIG_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path(env.get("HOME") or str(Path.home())).expanduser() / ".claude"


def plugin_root() -> Path | None:
    """The folder holding the plugin (``.claude-plugin/plugin.json``) that came with this
    cms: the checkout around the package, or the copy a wheel carries inside it."""
    package = _package_dir()
    for candidate in (package.parent, package / "plugin", package):
        if (candidate / ".claude-plugin" / "plugin.json").is_file():
            return candidate
    return None


def find_project_root(start: Path) -> Path:
    """The git top-level containing ``start``, else ``start`` itself (:func:`project_root`)."""
    from pathlib import Path

    return Path(project_root(os.fspath(start)))


def project_root(start: str) -> str:
    """The git top-level containing ``start`` (made real), else ``start`` itself.

    Walks up looking for a ``.git`` entry (directory, or file in a worktree), which is
    what ``git rev-parse --show-toplevel`` answers in ordinary repositories, without
    paying for a git process on every command. A ``.git`` that cannot be looked at for
    another reason than its absence (permission denied) is an OSError, as
    :meth:`pathlib.Path.exists` says it.
    """
    start = os.path.realpath(start)
    candidate = start
    while True:
        try:
            os.stat(os.path.join(candidate, ".git"))
            return candidate
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError as exc:
            import errno

            if exc.errno not in (errno.EBADF, errno.ELOOP):  # "not there", as pathlib reads it
                raise
        parent = os.path.dirname(candidate)
        if parent == candidate:
            return start
        candidate = parent


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
    from pathlib import Path

    return Path(project_dir(explicit, env, cwd))


def project_dir(
    explicit: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> str:
    """:func:`resolve_project` as a string."""
    env = os.environ if env is None else env
    if explicit:
        start = os.path.expanduser(os.fspath(explicit))
    elif env.get("CMS_PROJECT"):
        start = os.path.expanduser(env["CMS_PROJECT"])
    else:
        start = os.fspath(cwd) if cwd is not None else os.getcwd()
    return project_root(start)


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


def project_key(root: str | os.PathLike[str]) -> str:
    """A stable folder name for a project: readable stem plus a hash of the full path
    (scripts/cms-hook computes the same in the shell)."""
    real = os.path.realpath(root)
    stem = _stem(os.path.basename(real).lower()).strip("-.") or "root"
    digest = _sha256_hex(real.encode("utf-8", "surrogateescape"))[:12]
    return f"{stem[:40]}-{digest}"


def _stem(name: str) -> str:
    """``name`` with each run of characters outside ``[a-z0-9._-]`` made one ``-``."""
    kept: list[str] = []
    in_run = False
    for char in name:
        if char in _NAME_CHARS:
            kept.append(char)
            in_run = False
        elif not in_run:
            kept.append("-")
            in_run = True
    return "".join(kept)


#: Inside ``$CMS_HOME``: the projects' folders, and in each its sessions' folder and file.
PROJECTS, SESSIONS, PROJECT_FILE = "projects", "sessions", "project.toml"


def state_dir(home: str, key: str) -> str:
    """The state folder of the project ``key`` (:attr:`ProjectPaths.root` as a string)."""
    return os.path.join(home, PROJECTS, key)


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
        return self.home / PROJECTS / self.key

    @property
    def sessions_dir(self) -> Path:
        return self.root / SESSIONS

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def project_file(self) -> Path:
        return self.root / PROJECT_FILE

    def session_file(self, name: str) -> Path:
        return self.sessions_dir / f"{name}.toml"

    def log_file(self, name: str) -> Path:
        return self.logs_dir / f"{name}.jsonl"

    def stderr_file(self, name: str) -> Path:
        return self.logs_dir / f"{name}.stderr"

    def supervisor_log(self, name: str) -> Path:
        return self.logs_dir / f"{name}.supervisor.log"
