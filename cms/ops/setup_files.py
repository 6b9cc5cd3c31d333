"""What ``cms setup`` puts where: the places it writes, the plugin files it copies, and
the command files it renders (with the marker that tells setup's own files from the
user's). See :mod:`cms.ops.setup` for the steps.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cms.base.errors import EnvironmentProblem
from cms.base.paths import PACKAGE_DIR, claude_config_dir

Scope = Literal["user", "project"]

MARKETPLACE = "cms-marketplace"
PLUGIN_ID = "cms@cms-marketplace"
#: Claude Code's data folder of a plugin is ``plugins/data/<id with @ made ->``.
PLUGIN_DATA_NAME = re.sub(r"[^A-Za-z0-9_-]", "-", PLUGIN_ID)
MARKER = "cms-setup: managed"
COMMANDS = ("delegate", "sessions")
MANIFEST_VERSION = 1

#: The plugin's files outside the ``cms`` package, relative to the plugin root. The
#: same list is the package data of ``cms.plugin`` in pyproject.toml (a wheel carries
#: them); tests/test_setup.py checks a built wheel against it.
PLUGIN_PATTERNS = (
    ".claude-plugin/plugin.json",
    ".claude-plugin/marketplace.json",
    "commands/*.md",
    "hooks/hooks.json",
    "skills/**/*",
    "scripts/cms-run",
    "scripts/cms-hook",
    "pyproject.toml",
    "README.md",
)
REQUIRED = (
    ".claude-plugin/plugin.json",
    ".claude-plugin/marketplace.json",
    "hooks/hooks.json",
    "commands/delegate.md",
    "commands/sessions.md",
    "scripts/cms-run",
    "scripts/cms-hook",
    "pyproject.toml",
)
PACKAGE = PACKAGE_DIR

#: Characters that must not be in a path written into a command file's shell line.
_UNSAFE_PATH = re.compile(r'["`$\\\n\r]')
_MARKER_LINE = re.compile(rf"^{re.escape(MARKER)} sha256=([0-9a-f]{{16}})$", re.MULTILINE)


# -- where things are -----------------------------------------------------------------


@dataclass(frozen=True)
class Places:
    """Every path setup reads or writes, from the environment in one place."""

    claude_dir: Path  # $CLAUDE_CONFIG_DIR, else ~/.claude
    setup_dir: Path  # ${XDG_DATA_HOME:-~/.local/share}/cms

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Places:
        home = Path(env.get("HOME") or str(Path.home())).expanduser().absolute()
        data = Path(env["XDG_DATA_HOME"]) if env.get("XDG_DATA_HOME") else home / ".local/share"
        return cls(
            claude_dir=claude_config_dir(env).absolute(),
            setup_dir=data.expanduser().absolute() / "cms",
        )

    @property
    def manifest(self) -> Path:
        return self.setup_dir / "setup.json"

    @property
    def marketplace_dir(self) -> Path:
        return self.setup_dir / "marketplace"

    @property
    def backup_dir(self) -> Path:
        return self.setup_dir / "replaced"

    @property
    def plugin_data(self) -> Path:
        return self.claude_dir / "plugins" / "data" / PLUGIN_DATA_NAME

    def commands_dir(self, scope: Scope, project: Path | None) -> Path:
        if scope == "project":
            assert project is not None
            return project / ".claude" / "commands"
        return self.claude_dir / "commands"

    def user_state_paths(self) -> list[Path]:
        """What ``claude plugin`` commands change in the user's Claude folder."""
        plugins = self.claude_dir / "plugins"
        return [
            self.claude_dir,
            self.claude_dir / "settings.json",
            self.claude_dir / "commands",
            plugins,
            plugins / "installed_plugins.json",
            plugins / "known_marketplaces.json",
            plugins / "cache",
            plugins / "cache" / MARKETPLACE,
            plugins / "marketplaces",
            plugins / "data",
        ]


def project_state_paths(project: Path) -> list[Path]:
    """What a project-scope install changes in the project."""
    claude = project / ".claude"
    return [claude, claude / "settings.json", claude / "commands"]


# -- the plugin's files ----------------------------------------------------------------


@dataclass(frozen=True)
class PluginSource:
    """Where this cms's plugin files are: a checkout, or the copy a wheel carries."""

    kind: Literal["checkout", "wheel"]
    root: Path  # holds .claude-plugin/, commands/, hooks/, scripts/, ...
    package: Path  # the cms package folder

    def files(self) -> dict[str, Path]:
        """Relative path in the plugin -> the file to copy there."""
        found: dict[str, Path] = {}
        for pattern in PLUGIN_PATTERNS:
            for path in sorted(self.root.glob(pattern)):
                if path.is_file() and "__pycache__" not in path.parts:
                    found[path.relative_to(self.root).as_posix()] = path
        for path in sorted(self.package.rglob("*")):
            rel = path.relative_to(self.package)
            if rel.parts[0] == "plugin" or "__pycache__" in rel.parts or not path.is_file():
                continue
            if path.suffix == ".py" or path.name in ("py.typed", "mcp_handshake.json"):
                found["cms/" + rel.as_posix()] = path
        missing = [name for name in REQUIRED if name not in found]
        if missing:
            raise EnvironmentProblem(
                f"the cms plugin files in {self.root} are incomplete (no {missing[0]}); "
                "reinstall cms (pip install --force-reinstall cms) or use a full checkout"
            )
        return found


def find_source(package: Path = PACKAGE) -> PluginSource:
    """The plugin files of the running cms: a wheel's ``cms/plugin``, else the checkout."""
    bundled = package / "plugin"
    if (bundled / ".claude-plugin" / "marketplace.json").is_file():
        return PluginSource("wheel", bundled, package)
    if (package.parent / ".claude-plugin" / "marketplace.json").is_file():
        return PluginSource("checkout", package.parent, package)
    raise EnvironmentProblem(
        f"this cms ({package}) carries no plugin files; reinstall it from a wheel or a "
        "checkout (pip install cms), or add the marketplace inside Claude Code instead"
    )


def _is_script(rel: str) -> bool:
    return rel.startswith("scripts/")


def files_digest(files: Mapping[str, Path]) -> str:
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(rel.encode() + b"\0" + (b"x" if _is_script(rel) else b"-") + b"\0")
        digest.update(hashlib.sha256(files[rel].read_bytes()).digest())
    return digest.hexdigest()


def folder_files(folder: Path) -> dict[str, Path]:
    """The files of a plugin folder on disk, without Python's bytecode caches."""
    if not folder.is_dir():
        return {}
    return {
        path.relative_to(folder).as_posix(): path
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.relative_to(folder).parts
    }


def write_plugin_folder(files: Mapping[str, Path], dest: Path) -> None:
    """Copy ``files`` into ``dest``, replacing it whole (a new folder, then renames)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for rel, source in files.items():
            target = fresh / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            target.chmod(0o755 if _is_script(rel) else 0o644)
        fresh.chmod(0o755)
        old = dest.with_name(f".{dest.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if dest.exists():
            dest.rename(old)
        fresh.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise


# -- the command files -----------------------------------------------------------------


def _hash16(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def render_command(plugin_text: str, root: Path, data: Path) -> str:
    """The user's own copy of a plugin command: absolute paths and the managed marker."""
    for path in (root, data):
        if _UNSAFE_PATH.search(str(path)):
            raise EnvironmentProblem(
                f"cannot write a command file that runs {path}: the path has quotes, $, "
                "backslashes or newlines; set XDG_DATA_HOME to a plainer folder"
            )
    text = plugin_text.replace("${CLAUDE_PLUGIN_ROOT}", str(root))
    text = text.replace("${CLAUDE_PLUGIN_DATA}", str(data))
    for line in text.splitlines():
        if "!`" in line and "$ARGUMENTS" in line:
            raise EnvironmentProblem("a plugin command hands $ARGUMENTS to a shell; refusing")
    end = text.find("\n---\n", 3) if text.startswith("---\n") else -1
    if end < 0:
        raise EnvironmentProblem("a plugin command file has no frontmatter; reinstall cms")
    unsigned = text[:end] + "\n" + MARKER + text[end:]
    return unsigned.replace(MARKER + "\n", f"{MARKER} sha256={_hash16(unsigned)}\n", 1)


def written_by_setup(text: str) -> bool:
    """True for a command file exactly as setup wrote it (its hash still matches)."""
    match = _MARKER_LINE.search(text)
    if match is None:
        return False
    unsigned = text[: match.start()] + MARKER + text[match.end() :]
    return _hash16(unsigned) == match.group(1)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


# -- claude plugin ... -----------------------------------------------------------------
