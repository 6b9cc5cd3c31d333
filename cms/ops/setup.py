"""``cms setup``: put cms into Claude Code in one step, and take it out again.

Claude Code namespaces a plugin's commands (``/cms:delegate``), so the plugin alone
cannot give users a bare ``/delegate``. Setup does, in this order:

1. copies the plugin's files (from the checkout this package lives in, or from the
   copy a wheel carries in ``cms/plugin/``, plus the ``cms`` package itself) into a
   folder of its own, ``${XDG_DATA_HOME:-~/.local/share}/cms/marketplace``: a one-plugin
   marketplace that stays put when a checkout moves or a virtualenv is rebuilt, and
   that holds the plugin's files only (a checkout also holds caches, tests and the
   pinned CLI, which Claude Code would copy along). Claude Code loads a plugin of a
   directory marketplace in place, from that folder;
2. ``claude plugin marketplace add`` that folder (unless a marketplace called
   ``cms-marketplace`` is already known: then that one is used, and left alone);
3. ``claude plugin install cms@cms-marketplace --scope user|project``;
4. records the Python that runs setup (it has cms's dependencies) in the plugin's data
   folder, so the plugin's scripts use it instead of building an environment;
5. writes ``delegate.md`` and ``sessions.md`` into ``~/.claude/commands/`` (user
   scope) or ``<project>/.claude/commands/``: copies of the plugin's own command files
   with ``${CLAUDE_PLUGIN_ROOT}``/``${CLAUDE_PLUGIN_DATA}`` made absolute and a
   ``cms-setup: managed sha256=...`` line in the frontmatter. The marker is what the
   plugin's UserPromptSubmit hook looks for before it treats a bare ``/delegate`` as
   cms's; the hash (over the file without it) tells a file setup wrote, unchanged,
   from anything else. ``delegate.md`` has no ``!`` line: the hook runs the command
   from the prompt JSON, so no shell ever sees the user's words.

What it did is recorded in ``setup.json`` beside the marketplace folder, with the
state of the Claude Code files it lets ``claude`` change (``settings.json``, the plugin
registry), so that ``--uninstall`` removes exactly that: the command files (a user's
file replaced under ``--force`` is put back), the plugin, the marketplace and its
folder. ``claude plugin uninstall``/``marketplace remove`` leave residue behind (empty
``enabledPlugins``/``extraKnownMarketplaces`` keys, empty registry files, the plugin's
cache marked orphaned); where that residue did not exist before setup and nothing
else changed, it is removed or the file's earlier text restored, so ``~/.claude`` ends
as it was. A second run changes nothing. Nothing here prints: the CLI renders the
:class:`Outcome`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cms.ops.setup_statusline as statusline  # by its module, not through cms.ops
from cms.base.errors import BadInput, CmsError, EnvironmentProblem
from cms.base.files import atomic_write
from cms.base.paths import resolve_project
from cms.engine import procs
from cms.engine.claude import find_claude
from cms.engine.store import file_lock
from cms.ops.setup_files import (  # noqa: F401 (names the tests and the CLI use)
    COMMANDS,
    MANIFEST_VERSION,
    MARKER,
    MARKETPLACE,
    PACKAGE,
    PLUGIN_DATA_NAME,
    PLUGIN_ID,
    PLUGIN_PATTERNS,
    REQUIRED,
    Places,
    PluginSource,
    Scope,
    _read,
    files_digest,
    find_source,
    folder_files,
    project_state_paths,
    render_command,
    write_plugin_folder,
    written_by_setup,
)


class ClaudePlugins:
    """The ``claude plugin`` commands setup uses; failures are exit-3 errors."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.binary = find_claude(env)
        self.env = dict(env)

    def run(self, *args: str, cwd: Path | None = None) -> str:
        argv = [self.binary, "plugin", *args]
        try:
            done = procs.run(argv, cwd=cwd, env=self.env, timeout=300)
        except (OSError, subprocess.SubprocessError) as exc:
            raise EnvironmentProblem(f"claude plugin {args[0]} did not run: {exc}") from exc
        if not done.ok:
            raise EnvironmentProblem(
                f"`claude plugin {' '.join(args)}` failed: {done.first_error_line()}"
            )
        return done.stdout

    def _json(self, *args: str, cwd: Path | None = None) -> list[dict[str, Any]]:
        out = self.run(*args, "--json", cwd=cwd)
        try:
            data = json.loads(out[out.find("[") :] if "[" in out else out)
        except ValueError as exc:
            raise EnvironmentProblem(f"`claude plugin {args[0]} --json` printed no JSON") from exc
        return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []

    def marketplace(self) -> dict[str, Any] | None:
        for item in self._json("marketplace", "list"):
            if item.get("name") == MARKETPLACE:
                return item
        return None

    def installs(self, cwd: Path) -> list[dict[str, Any]]:
        return [item for item in self._json("list", cwd=cwd) if item.get("id") == PLUGIN_ID]


def _install_at(
    installs: list[dict[str, Any]], scope: Scope, project: Path | None
) -> dict[str, Any] | None:
    for item in installs:
        if item.get("scope") != scope:
            continue
        if scope == "project":
            where = item.get("projectPath")
            if not isinstance(where, str) or os.path.realpath(where) != str(project):
                continue
        return item
    return None


def _plugin_root(install: Mapping[str, Any]) -> Path | None:
    """Where Claude Code runs the plugin from (a directory marketplace: in place)."""
    for key in ("readFromFolder", "installPath"):
        value = install.get(key)
        if isinstance(value, str) and value:
            return Path(value)
    return None


# -- the record of what setup did -----------------------------------------------------


def _state_of(path: Path) -> dict[str, Any]:
    """How a path was before setup: absent, a folder, or a file (with its text)."""
    if path.is_dir():
        return {"kind": "dir"}
    if path.is_file():
        return {"kind": "file", "text": _read(path)}
    return {"kind": "absent"}


def _snapshot(paths: list[Path]) -> dict[str, Any]:
    return {str(path): _state_of(path) for path in paths}


def _load_manifest(places: Places) -> dict[str, Any]:
    text = _read(places.manifest)
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        raise CmsError(
            f"cannot read {places.manifest}: not JSON; fix or delete that file", 2
        ) from None
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
        raise CmsError(f"cannot read {places.manifest}: unknown format; delete that file", 2)
    return data


def _save_manifest(places: Places, manifest: Mapping[str, Any]) -> None:

    places.setup_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(places.manifest, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def _locked(places: Places, created: list[str]) -> Iterator[None]:
    """One setup at a time; the folders made for the lock are noted in ``created``."""
    for folder in reversed([places.setup_dir, *places.setup_dir.parents]):
        if not folder.exists():
            created.append(str(folder))
    places.setup_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(places.setup_dir / "setup", timeout_s=600):
        yield


def _key(scope: Scope, project: Path | None) -> str:
    return "user" if scope == "user" else f"project:{project}"


# -- plan -------------------------------------------------------------------------------


@dataclass
class CommandFile:
    name: str
    path: Path
    state: Literal["absent", "ours", "foreign"]


@dataclass
class Plan:
    """What a setup (or uninstall) run will do, worked out before anything changes."""

    places: Places
    env: Mapping[str, str]
    scope: Scope
    project: Path | None
    uninstall: bool
    force: bool
    claude: ClaudePlugins | None = None
    source: PluginSource | None = None
    files: dict[str, Path] = field(default_factory=dict)
    own_marketplace: bool = True  # setup's folder is (or becomes) the marketplace
    copy_plugin: bool = False
    add_marketplace: bool = False
    foreign_root: Path | None = None  # the plugin root of a marketplace setup did not add
    install_plugin: bool = False
    commands: list[CommandFile] = field(default_factory=list)
    will: list[str] = field(default_factory=list)  # what it is about to do, for a person
    notes: list[str] = field(default_factory=list)  # what it found and leaves alone

    @property
    def changes(self) -> bool:
        return bool(self.will)


@dataclass
class Outcome:
    """What a setup run did, line by line, for the CLI to print."""

    scope: Scope
    uninstall: bool
    steps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.steps)

    def as_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "uninstall": self.uninstall,
            "changed": self.changed,
            "steps": self.steps,
            "notes": self.notes,
        }


def plan(
    env: Mapping[str, str],
    scope: str = "user",
    project: str | None = None,
    *,
    uninstall: bool = False,
    force: bool = False,
) -> Plan:
    """Work out what to do, changing nothing; refuse (CmsError) before any change."""
    if scope not in ("user", "project"):
        raise BadInput(f"invalid --scope {scope!r}: use user or project")
    checked: Scope = "project" if scope == "project" else "user"
    places = Places.from_env(env)
    where = None
    if checked == "project":
        where = Path(os.path.realpath(resolve_project(project, env)))
    result = Plan(places, env, checked, where, uninstall, force)
    manifest = _load_manifest(places)
    if uninstall:
        return _plan_uninstall(result, manifest)
    result.claude = ClaudePlugins(env)  # claude missing: exit 3, nothing changed
    result.source = find_source()
    result.files = result.source.files()
    cwd = where or places.claude_dir.parent
    known = result.claude.marketplace()
    ours = str(places.marketplace_dir)
    if known is not None and known.get("path") != ours and known.get("installLocation") != ours:
        result.own_marketplace = False
    install = _install_at(result.claude.installs(cwd), checked, where)
    if result.own_marketplace:
        current = folder_files(places.marketplace_dir)
        if not current or files_digest(current) != files_digest(result.files):
            result.copy_plugin = True
            verb = "update" if current else "copy"
            result.will.append(f"{verb} the plugin files into {places.marketplace_dir}")
        if known is None:
            result.add_marketplace = True
            result.will.append(f"add the marketplace {MARKETPLACE} to Claude Code")
    else:
        assert known is not None
        location = known.get("installLocation") or known.get("path") or known.get("source")
        result.notes.append(f"using the marketplace {MARKETPLACE} Claude Code knows ({location})")
    if install is None:
        result.install_plugin = True
        result.will.append(f"install the plugin {PLUGIN_ID} (scope {checked})")
    elif not result.own_marketplace:
        result.foreign_root = _plugin_root(install)
    commands_dir = places.commands_dir(checked, where)
    root = places.marketplace_dir if result.own_marketplace else result.foreign_root
    for name in COMMANDS:
        path = commands_dir / f"{name}.md"
        text = _read(path) if path.exists() else None
        if text is None and path.exists():
            state: Literal["absent", "ours", "foreign"] = "foreign"
        elif text is None:
            state = "absent"
        else:
            state = "ours" if written_by_setup(text) else "foreign"
        if state == "foreign" and not force:
            raise BadInput(
                f"{path} exists and is not as cms setup wrote it; move it away, or run "
                "`cms setup --force` to replace it (--uninstall puts it back)"
            )
        result.commands.append(CommandFile(name, path, state))
        wanted = None
        if result.own_marketplace:  # the plugin's command as it will be there
            plugin_text = _read(result.files[f"commands/{name}.md"])
        else:
            plugin_text = _read(root / "commands" / f"{name}.md") if root else None
        if root is not None and plugin_text is not None:
            wanted = render_command(plugin_text, root, places.plugin_data)
        if state == "foreign":
            result.will.append(f"replace {path} (kept in {places.backup_dir})")
        elif state == "absent":
            result.will.append(f"write {path} (/{name})")
        elif wanted is None or wanted != text:
            result.will.append(f"update {path} (/{name})")
    _offer_statusline(result, root)
    return result


def _offer_statusline(result: Plan, root: Path | None) -> None:
    """cms's status line, when the settings of this scope have none of their own."""
    if root is None:
        return
    settings = statusline.settings_path(result.places.claude_dir, result.scope, result.project)
    will, note = statusline.offer(settings, root)
    result.will += [will] if will else []
    result.notes += [note] if note else []


def _plan_uninstall(result: Plan, manifest: Mapping[str, Any]) -> Plan:
    installs = manifest.get("installs") or {}
    entry = installs.get(_key(result.scope, result.project))
    if not entry:
        where = "user scope" if result.scope == "user" else f"project {result.project}"
        result.notes.append(f"cms setup has not been run for the {where}; nothing to undo")
        return result
    for record in entry.get("files", {}).values():
        result.will.append(f"remove {record['path']} (or put back the file it replaced)")
    if entry.get("statusline"):
        result.will.append(f"take cms's status line out of {entry['statusline']}")
    if entry.get("plugin_installed"):
        result.will.append(f"uninstall the plugin {PLUGIN_ID} (scope {result.scope})")
    market = manifest.get("marketplace") or {}
    last = len(installs) == 1
    if last and market.get("added"):
        result.will.append(f"remove the marketplace {MARKETPLACE} from Claude Code")
    if last and market.get("dir"):
        result.will.append(f"delete {market['dir']}")
    result.will.append(f"forget this setup ({result.places.manifest})")
    if entry.get("plugin_installed") or (last and market.get("added")):
        result.claude = ClaudePlugins(result.env)  # claude missing: exit 3, nothing changed
    return result


# -- apply --------------------------------------------------------------------------------


def apply(p: Plan) -> Outcome:
    """Do what ``p`` says; record each step as it is done, so --uninstall can undo a
    run that failed half-way."""
    outcome = Outcome(p.scope, p.uninstall, notes=list(p.notes))
    if not p.changes:
        return outcome
    created: list[str] = []
    with _locked(p.places, created):
        manifest = _load_manifest(p.places)
        if p.uninstall:
            _uninstall(p, manifest, outcome)
        else:
            _install(p, manifest, created, outcome)
    return outcome


def _install(p: Plan, manifest: dict[str, Any], created: list[str], outcome: Outcome) -> None:
    """Each step of the plan, the manifest saved after each, so an interrupted setup
    still uninstalls exactly what it did."""
    assert p.claude is not None
    entry = _manifest_entry(p, manifest, created)
    _save_manifest(p.places, manifest)
    if p.own_marketplace:
        _install_marketplace(p, manifest, outcome)
    cwd = p.project or p.places.claude_dir.parent
    if p.install_plugin:
        p.claude.run("install", "--scope", p.scope, PLUGIN_ID, cwd=cwd)
        entry["plugin_installed"] = True
        _save_manifest(p.places, manifest)
        outcome.steps.append(f"installed the plugin {PLUGIN_ID} (scope {p.scope})")
    root = _installed_root(p, cwd)
    _record_python(p, manifest, outcome)
    _write_commands(p, root, manifest, entry, outcome)
    settings = statusline.settings_path(p.places.claude_dir, p.scope, p.project)
    if statusline.install(settings, root):
        entry["statusline"] = str(settings)
        _save_manifest(p.places, manifest)
        outcome.steps.append(f"set Claude Code's status line to cms statusline ({settings})")


def _manifest_entry(p: Plan, manifest: dict[str, Any], created: list[str]) -> dict[str, Any]:
    """This scope's entry of the manifest (made, with the state before, if new)."""
    places = p.places
    if not manifest:
        manifest.update(
            version=MANIFEST_VERSION,
            created_dirs=created,
            before=_snapshot(places.user_state_paths()),
            installs={},
            marketplace=None,
        )
    key = _key(p.scope, p.project)
    entry: dict[str, Any] = manifest["installs"].get(key) or {
        "scope": p.scope,
        "project": str(p.project) if p.project else None,
        "plugin_installed": False,
        "files": {},
        "before": _snapshot(
            project_state_paths(p.project) if p.project else [places.claude_dir / "commands"]
        ),
    }
    manifest["installs"][key] = entry
    return entry


def _install_marketplace(p: Plan, manifest: dict[str, Any], outcome: Outcome) -> None:
    """Copy the plugin's files into setup's own marketplace folder and add it."""
    assert p.claude is not None
    places = p.places
    market = manifest.get("marketplace") or {"dir": str(places.marketplace_dir), "added": False}
    manifest["marketplace"] = market
    if p.copy_plugin:
        existed = places.marketplace_dir.exists()
        write_plugin_folder(p.files, places.marketplace_dir)
        _save_manifest(places, manifest)
        outcome.steps.append(
            f"{'updated' if existed else 'copied'} the plugin files ({len(p.files)}) "
            f"into {places.marketplace_dir}"
        )
        if existed and not p.add_marketplace:
            p.claude.run("marketplace", "update", MARKETPLACE)
    if p.add_marketplace:
        p.claude.run("marketplace", "add", str(places.marketplace_dir))
        market["added"] = True
        _save_manifest(places, manifest)
        outcome.steps.append(
            f"added the marketplace {MARKETPLACE} ({places.marketplace_dir}) to Claude Code"
        )


def _installed_root(p: Plan, cwd: Path) -> Path:
    """Where Claude Code has the plugin: setup's folder, or the known marketplace's."""
    assert p.claude is not None
    if p.own_marketplace:
        return p.places.marketplace_dir
    install = _install_at(p.claude.installs(cwd), p.scope, p.project)
    found = _plugin_root(install) if install else None
    if found is None:
        raise EnvironmentProblem(
            f"claude does not list {PLUGIN_ID} as installed (scope {p.scope}); "
            "see `claude plugin list`"
        )
    return found


def _write_commands(
    p: Plan, root: Path, manifest: dict[str, Any], entry: dict[str, Any], outcome: Outcome
) -> None:
    """The bare /delegate and /sessions: the plugin's command files made absolute."""
    places = p.places
    for command in p.commands:
        plugin_text = _read(root / "commands" / f"{command.name}.md")
        if plugin_text is None:
            raise EnvironmentProblem(f"the plugin at {root} has no commands/{command.name}.md")
        text = render_command(plugin_text, root, places.plugin_data)
        if command.state == "ours" and _read(command.path) == text:
            continue
        record = entry["files"].get(command.name) or {"path": str(command.path), "replaced": None}
        if command.state == "foreign":
            backup = _backup_folder(places, p.scope, p.project) / f"{command.name}.md"
            backup.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(command.path, backup)
            record["replaced"] = str(backup)
        command.path.parent.mkdir(parents=True, exist_ok=True)
        _write_text(command.path, text)
        record["sha256"] = hashlib.sha256(text.encode()).hexdigest()
        entry["files"][command.name] = record
        _save_manifest(places, manifest)
        verb = "replaced" if command.state == "foreign" else "wrote"
        outcome.steps.append(f"{verb} {command.path} (/{command.name})")


def _record_python(p: Plan, manifest: dict[str, Any], outcome: Outcome) -> None:
    """Tell the plugin's scripts which Python has cms's dependencies: this one."""
    data = p.places.plugin_data
    pointer = data / "cms-python"
    if _read(pointer) is not None:
        return  # recorded already (by an earlier setup, or by hand)
    # Claude Code makes the data folder when a session first loads the plugin, and
    # `claude plugin uninstall` deletes it whoever made it.
    manifest["python_pointer"] = {"path": str(pointer), "made_dir": not data.exists()}
    _save_manifest(p.places, manifest)
    data.mkdir(parents=True, exist_ok=True)
    _write_text(pointer, sys.executable + "\n")
    outcome.steps.append(f"recorded {sys.executable} as the plugin's Python ({pointer})")


def _backup_folder(places: Places, scope: Scope, project: Path | None) -> Path:
    return places.backup_dir / re.sub(r"[^A-Za-z0-9._-]", "_", _key(scope, project))


def _write_text(path: Path, text: str, mode: int = 0o644) -> None:

    atomic_write(path, text)
    path.chmod(mode)


def _uninstall(p: Plan, manifest: dict[str, Any], outcome: Outcome) -> None:
    places = p.places
    key = _key(p.scope, p.project)
    entry = manifest.get("installs", {}).get(key)
    if not entry:
        return
    for name, record in sorted(entry.get("files", {}).items()):
        path = Path(record["path"])
        text = _read(path)
        if text is None:
            continue
        if hashlib.sha256(text.encode()).hexdigest() != record.get("sha256"):
            outcome.steps.append(f"kept {path}: it changed since setup wrote it")
            continue
        replaced = record.get("replaced")
        if replaced and Path(replaced).is_file():
            shutil.copy2(replaced, path)
            Path(replaced).unlink()
            outcome.steps.append(f"put back your own {path}")
        else:
            path.unlink()
            outcome.steps.append(f"removed {path} (/{name})")
    cwd = p.project or places.claude_dir.parent
    if entry.get("plugin_installed"):
        assert p.claude is not None
        if _install_at(p.claude.installs(cwd), p.scope, p.project) is not None:
            p.claude.run("uninstall", "--scope", p.scope, PLUGIN_ID, cwd=cwd)
            outcome.steps.append(f"uninstalled the plugin {PLUGIN_ID} (scope {p.scope})")
    if entry.get("statusline") and statusline.remove(Path(entry["statusline"])):
        outcome.steps.append(f"took cms statusline out of {entry['statusline']}")
    _restore(entry.get("before", {}))
    with contextlib.suppress(OSError):
        _backup_folder(places, p.scope, p.project).rmdir()
    del manifest["installs"][key]
    if manifest["installs"]:
        _save_manifest(places, manifest)
        return

    pointer = manifest.get("python_pointer") or {}
    if pointer.get("path"):  # gone already if `claude plugin uninstall` ran
        with contextlib.suppress(OSError):
            Path(pointer["path"]).unlink()
        if pointer.get("made_dir"):
            with contextlib.suppress(OSError):
                Path(pointer["path"]).parent.rmdir()
    market = manifest.get("marketplace") or {}
    if market.get("added"):
        assert p.claude is not None
        if p.claude.marketplace() is not None:
            p.claude.run("marketplace", "remove", MARKETPLACE)
            outcome.steps.append(f"removed the marketplace {MARKETPLACE} from Claude Code")
    if market.get("dir") and Path(market["dir"]).exists():
        shutil.rmtree(market["dir"])
        outcome.steps.append(f"deleted {market['dir']}")
    plugin_gone = p.claude is not None and not p.claude.installs(cwd)
    _restore(manifest.get("before", {}), drop_cache=plugin_gone)
    for path in (places.manifest, places.setup_dir / "setup.lock"):
        with contextlib.suppress(OSError):
            path.unlink()
    created = [Path(name) for name in reversed(manifest.get("created_dirs", []))]
    for folder in (places.backup_dir, places.setup_dir, *created):
        with contextlib.suppress(OSError):
            folder.rmdir()


# -- restoring what claude's own commands left behind ---------------------------------


def _empty_like(value: Any) -> bool:
    return isinstance(value, dict | list) and not value


def _without_new_empties(now: Any, before: Any) -> Any:
    """``now`` without the empty containers under keys that ``before`` did not have."""
    if not isinstance(now, dict) or not isinstance(before, dict):
        return now
    return {
        key: _without_new_empties(value, before.get(key))
        for key, value in now.items()
        if key in before or not _empty_like(value)
    }


def _json_or_none(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _restore(before: Mapping[str, Any], drop_cache: bool = False) -> None:
    """Put back files and folders that were absent (or had other text) before setup,
    where what is there now says nothing more than that: JSON with only empty
    entries, the same JSON, an empty folder. Anything else is left alone."""
    items = sorted(before.items(), key=lambda item: len(Path(item[0]).parts), reverse=True)
    for name, state in items:
        path = Path(name)
        if state.get("kind") == "file" or (state.get("kind") == "absent" and path.is_file()):
            _restore_file(path, state)
    for name, state in items:
        path = Path(name)
        if state.get("kind") != "absent" or not path.is_dir():
            continue
        if drop_cache and path.name == MARKETPLACE and path.parent.name == "cache":
            shutil.rmtree(path, ignore_errors=True)  # the orphaned copy of our plugin
            continue
        with contextlib.suppress(OSError):
            path.rmdir()


def _restore_file(path: Path, state: Mapping[str, Any]) -> None:
    now_text = _read(path)
    now = _json_or_none(now_text)
    if now_text is None or now is None:
        return
    if state.get("kind") == "absent":
        rest = _without_new_empties(now, {})
        if isinstance(rest, dict) and set(rest) <= {"version"}:
            path.unlink()
        return
    old_text = state.get("text")
    old = _json_or_none(old_text)
    if old is not None and old_text != now_text and _without_new_empties(now, old) == old:
        _write_text(path, str(old_text), mode=path.stat().st_mode & 0o777)


# -- doctor -------------------------------------------------------------------------------


def check(env: Mapping[str, str]) -> tuple[bool, str, str | None]:
    """For ``cms doctor``: (ok, what was found, how to fix it). Never runs claude."""
    places = Places.from_env(env)
    try:
        manifest = _load_manifest(places)
    except CmsError as exc:
        return False, exc.message, f"delete {places.manifest} and run `cms setup` again"
    installs = manifest.get("installs") or {}
    if not installs:
        return (
            True,
            "not done (optional): `cms setup` adds the plugin and the bare /delegate and "
            "/sessions commands to Claude Code",
            None,
        )
    problems: list[str] = []
    done: list[str] = []
    market = manifest.get("marketplace") or {}
    if market.get("dir") and not (Path(market["dir"]) / ".claude-plugin").is_dir():
        problems.append(f"the plugin folder {market['dir']} is missing")
    for entry in installs.values():
        where = "user scope" if entry.get("scope") == "user" else f"project {entry.get('project')}"
        for name, record in sorted(entry.get("files", {}).items()):
            text = _read(Path(record["path"]))
            if text is None:
                problems.append(f"{where}: {record['path']} is missing")
            elif MARKER not in text:
                problems.append(f"{where}: {record['path']} is no longer cms's /{name}")
        done.append(where)
    if problems:
        fix = "run `cms setup` again (--scope project for a project)"
        return False, "; ".join(problems), fix
    return True, "done: " + ", ".join(done) + f" (plugin {PLUGIN_ID}, /delegate, /sessions)", None
