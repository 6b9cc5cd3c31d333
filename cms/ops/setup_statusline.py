"""``cms setup``'s offer of Claude Code's status line: ``cms statusline`` (this session's
spend and cap, today's project spend and the daily cap) as the ``statusLine`` of the
settings of the scope setup works on, when the user has none of their own; uninstall
takes it out again when it is still the one setup wrote, and leaves any other alone.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

from cms.base.files import atomic_write


def settings_path(claude_dir: Path, scope: str, project: Path | None) -> Path:
    if scope == "project" and project is not None:
        return project / ".claude" / "settings.json"
    return claude_dir / "settings.json"


def command(plugin_root: Path) -> dict[str, Any]:
    """The ``statusLine`` setting: the plugin's own launcher, standard library only, so
    it needs no environment built and starts as fast as a hook."""
    script = shlex.quote(str(plugin_root / "scripts" / "cms-run"))
    return {"type": "command", "command": f"{script} --stdlib --module cms.hooks.caps statusline"}


def _settings(path: Path) -> dict[str, Any] | None:
    """The settings file's JSON object ({} when absent); None when it cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def offer(path: Path, plugin_root: Path) -> tuple[str | None, str | None]:
    """(what setup will do, or None; a note of what it leaves alone, or None)."""
    settings = _settings(path)
    wanted = command(plugin_root)
    if settings is None:
        return None, f"no status line: {path} cannot be read as JSON"
    current = settings.get("statusLine")
    if current == wanted:
        return None, None
    if current is not None and not _ours(current):
        return None, f"keeping your own statusLine in {path} (`cms statusline` prints cms's)"
    return f"show cms's spend in Claude Code's status line (statusLine in {path})", None


def install(path: Path, plugin_root: Path) -> bool:
    """Set the status line; True when the file changed."""
    settings = _settings(path)
    wanted = command(plugin_root)
    if settings is None or settings.get("statusLine") == wanted:
        return False
    if settings.get("statusLine") is not None and not _ours(settings["statusLine"]):
        return False
    settings["statusLine"] = wanted
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    atomic_write(path, json.dumps(settings, indent=2) + "\n")
    os.chmod(path, mode)
    return True


def remove(path: Path) -> bool:
    """Take setup's status line out of the settings; True when the file changed."""
    settings = _settings(path)
    if not settings or not _ours(settings.get("statusLine")):
        return False
    del settings["statusLine"]
    mode = path.stat().st_mode & 0o777
    atomic_write(path, json.dumps(settings, indent=2) + "\n")
    os.chmod(path, mode)
    return True


def _ours(value: Any) -> bool:
    found = value.get("command") if isinstance(value, dict) else None
    return isinstance(found, str) and found.endswith("--module cms.hooks.caps statusline")
