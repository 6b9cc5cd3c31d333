"""``cms setup`` and the plugin on its own, against the real Claude Code CLI.

Setup runs as ``python -m cms.ui.cli setup`` in a throwaway HOME; the parents are real
``claude -p`` processes talking to the stand-in. Where a test must show that the
plugin's scripts find their Python by themselves, PATH holds the pinned CLI, a
``python3`` without cms's dependencies (a bare venv) and /usr/bin:/bin, and no
``cms`` and no ``CMS_PYTHON``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
from cmsrun import Cms, claude_p, copy_tracked_files, run_cms
from standin import StandIn, first_user_text, text, tool_use

from cms.ops import setup

REPO = Path(__file__).resolve().parent.parent

#: What every `claude -p` run rewrites under ~/.claude for its own records
#: (transcripts, per-session environment, shell snapshots, telemetry, todos, and the
#: built-in plugins' store, which holds the last session's id): not setup's doing, so
#: the tests that run sessions leave them out of the before/after comparison. The
#: comparison without sessions (test_uninstall_restores_the_claude_folder_exactly)
#: leaves out nothing.
SESSION_RECORDS = (
    "projects",
    "sessions",
    "session-env",
    "shell-snapshots",
    "telemetry",
    "todos",
    "plugins/store",
    # What Claude Code makes for a sandboxed run (a child's) and its housekeeping:
    # its own, whoever runs claude, never setup's.
    "dev-mods",
    "seed-admin",
    "ssh",
    ".last-cleanup",
    ".cc-writes",
    "cache",
    "child-logs",
    "daemon",
    "bridge-spawn",
    "file-history",
    "backups",
    "debug",
)


# -- helpers ------------------------------------------------------------------------------


def tree(root: Path, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every path under ``root`` but those under ``skip``: folders as "dir", files by
    their bytes."""
    found: dict[str, Any] = {}
    if not root.exists():
        return found
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if not any(rel == s or rel.startswith(s + "/") for s in skip):
            found[rel] = "dir" if path.is_dir() else path.read_bytes()
    return found


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def cms(env: dict[str, str], cwd: Path, *args: str, timeout: float = 300) -> Any:
    return run_cms(*args, cwd=cwd, env=env, timeout=timeout)


def claude(claude_bin: Path, env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [str(claude_bin), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def sent(standin: StandIn, marker: str) -> str:
    requests = standin.requests_for(marker)
    assert requests, f"no request matched {marker}"
    return json.dumps([r.body for r in requests])


@pytest.fixture(scope="session")
def bare_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``python3``/``python`` that have none of cms's dependencies."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return venv / "bin"


@pytest.fixture
def lean_env(claude_env: dict[str, str], bare_bin: Path, claude_bin: Path) -> dict[str, str]:
    """claude_env with a PATH that has no cms and no Python with cms's dependencies."""
    path = os.pathsep.join([str(claude_bin.parent), str(bare_bin), "/usr/bin", "/bin"])
    env = {k: v for k, v in claude_env.items() if not k.startswith(("PYTHON", "PYENV"))}
    env["PATH"] = path
    assert shutil.which("cms", path=path) is None
    check = "import click, pydantic"
    python = shutil.which("python3", path=path)
    assert python and subprocess.run([python, "-c", check], capture_output=True).returncode
    return env


@pytest.fixture
def warm_home(
    claude_bin: Path, claude_env: dict[str, str], standin: StandIn, fake_home: Path
) -> Path:
    """fake_home after one session, like a home Claude Code has been used in: the first
    run writes ~/.claude.json (and a backup under ~/.claude/backups), its session
    records, and the built-in plugins' store under ~/.claude/plugins/store."""
    standin.script("WARM-UP", [text("hello")])
    claude_p(claude_bin, "hello WARM-UP", claude_env, fake_home)
    return fake_home


# -- end to end ----------------------------------------------------------------------------


def test_setup_gives_bare_delegate_and_sessions_and_uninstall_restores_claude_folder(
    claude_bin: Path,
    standin: StandIn,
    claude_env: dict[str, str],
    lean_env: dict[str, str],
    warm_home: Path,
    project: Path,
    tmp_path: Path,
) -> None:
    before = tree(warm_home / ".claude", skip=SESSION_RECORDS)
    done = cms(claude_env, project, "setup", "--yes")
    assert done.returncode == 0, done.stderr
    said = done.stdout
    assert "added the marketplace cms-marketplace" in said
    assert "installed the plugin cms@cms-marketplace (scope user)" in said
    assert "delegate.md (/delegate)" in said and "sessions.md (/sessions)" in said
    commands = warm_home / ".claude" / "commands"
    assert setup.written_by_setup((commands / "delegate.md").read_text())
    assert "!`" not in (commands / "delegate.md").read_text()

    # A second run changes nothing.
    after_setup = tree(warm_home / ".claude")
    again = cms(claude_env, project, "setup", "--yes")
    assert again.returncode == 0, again.stderr
    assert "nothing changed" in again.stdout
    assert differences(after_setup, tree(warm_home / ".claude")) == []

    # /delegate with hostile text: the child gets it verbatim, no shell runs it.
    marker = tmp_path / "pwned"
    task = f"list the modules $(touch {marker}-1) `touch {marker}-2`; touch {marker}-3 KID-BARE"
    standin.script("KID-BARE", [text("the child found three modules")])
    # The hook starts the child; the parent (scripted) waits as the context says.
    data = warm_home / ".claude" / "plugins" / "data" / setup.PLUGIN_DATA_NAME
    wait = f"{REPO / 'scripts' / 'cms-run'} --data {data} wait kid --timeout 100"
    standin.script(
        "<command-name>/delegate</command-name>",
        [tool_use("Bash", {"command": wait}), text("Parent: relayed.")],
    )
    events = claude_p(
        claude_bin, f"/delegate --preset read-only --name kid {task}", lean_env, project
    )
    assert events[-1]["type"] == "result" and events[-1]["result"] == "Parent: relayed."
    kid = Cms(claude_env, project).show("kid")
    assert kid["status"] == "completed" and kid["preset"] == "read-only"
    assert kid["task"] == task
    assert task in first_user_text(standin.requests_for("KID-BARE")[0].body)
    assert "the child found three modules" in sent(
        standin, "<command-name>/delegate</command-name>"
    )
    assert not list(tmp_path.glob("pwned*")), "a shell ran the user's words"
    # The plugin ran on the Python setup recorded: nothing was built.
    assert (data / "cms-python").read_text().strip() == sys.executable
    assert not (data / "venv").exists()

    # /sessions puts the session in front of the model.
    standin.script("<command-name>/sessions</command-name>", [text("I see them.")])
    claude_p(claude_bin, "/sessions", lean_env, project)
    listing = sent(standin, "<command-name>/sessions</command-name>")
    assert "kid" in listing and "completed" in listing

    doctor = cms(claude_env, project, "doctor", "--json")
    found = {c["check"]: c for c in json.loads(doctor.stdout)}
    assert found["setup"]["ok"] and found["setup"]["detail"].startswith("done: user scope")

    done = cms(claude_env, project, "setup", "--uninstall", "--yes")
    assert done.returncode == 0, done.stderr
    assert "uninstalled the plugin" in done.stdout and "removed the marketplace" in done.stdout
    left = differences(before, tree(warm_home / ".claude", skip=SESSION_RECORDS))
    assert left == [], left
    assert not (warm_home / ".local").exists()
    gone = cms(claude_env, project, "doctor", "--json")
    assert {c["check"]: c for c in json.loads(gone.stdout)}["setup"]["detail"].startswith(
        "not done"
    )


def test_uninstall_restores_the_claude_folder_exactly(
    claude_env: dict[str, str], warm_home: Path, project: Path
) -> None:
    settings = warm_home / ".claude" / "settings.json"
    settings.write_text('{\n    "permissions": {"allow": ["Write", "Edit", "Bash"]}\n}\n')
    before_claude, before_home = tree(warm_home / ".claude"), tree(warm_home, skip=(".claude",))
    assert cms(claude_env, project, "setup", "--yes").returncode == 0
    assert b"extraKnownMarketplaces" in settings.read_bytes()  # claude rewrote it
    done = cms(claude_env, project, "setup", "--uninstall", "--yes")
    assert done.returncode == 0, done.stderr
    assert differences(before_claude, tree(warm_home / ".claude")) == []
    # Outside ~/.claude only Claude Code's own state file changes (any claude run does).
    assert differences(before_home, tree(warm_home, skip=(".claude",))) in ([], [".claude.json"])
    again = cms(claude_env, project, "--json", "setup", "--uninstall", "--yes")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["changed"] is False


def test_a_users_own_delegate_md_is_left_untouched_without_force(
    claude_env: dict[str, str], warm_home: Path, project: Path
) -> None:
    commands = warm_home / ".claude" / "commands"
    commands.mkdir()
    mine = "---\ndescription: my own delegate\n---\nDo it my way: $ARGUMENTS\n"
    (commands / "delegate.md").write_text(mine)
    before = tree(warm_home / ".claude")
    done = cms(claude_env, project, "setup", "--yes")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "delegate.md" in done.stderr
    assert "--force" in done.stderr
    assert differences(before, tree(warm_home / ".claude")) == []
    assert not (warm_home / ".local").exists()

    forced = cms(claude_env, project, "setup", "--yes", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "replaced" in forced.stdout
    assert setup.written_by_setup((commands / "delegate.md").read_text())
    undone = cms(claude_env, project, "setup", "--uninstall", "--yes")
    assert undone.returncode == 0, undone.stderr
    assert (commands / "delegate.md").read_text() == mine
    assert differences(before, tree(warm_home / ".claude")) == []


def test_project_scope_writes_into_the_project_and_uninstall_removes_it(
    claude_bin: Path,
    standin: StandIn,
    claude_env: dict[str, str],
    warm_home: Path,
    project: Path,
) -> None:
    before_claude = tree(warm_home / ".claude", skip=SESSION_RECORDS)
    before_project = tree(project)
    done = cms(claude_env, project, "setup", "--scope", "project", "--yes")
    assert done.returncode == 0, done.stderr
    assert "(scope project)" in done.stdout
    commands = project / ".claude" / "commands"
    assert setup.written_by_setup((commands / "sessions.md").read_text())
    assert not (warm_home / ".claude" / "commands").exists()
    listed = json.loads(claude(claude_bin, claude_env, project, "plugin", "list", "--json"))
    ours = [p for p in listed if p["id"] == setup.PLUGIN_ID]
    assert [(p["scope"], p.get("projectPath")) for p in ours] == [("project", str(project))]

    standin.script("<command-name>/sessions</command-name>", [text("none yet")])
    claude_p(claude_bin, "/sessions", {**claude_env, "CMS_PYTHON": sys.executable}, project)
    assert "no sessions in this project" in sent(standin, "<command-name>/sessions</command-name>")

    done = cms(claude_env, project, "setup", "--scope", "project", "--uninstall", "--yes")
    assert done.returncode == 0, done.stderr
    assert differences(before_project, tree(project)) == []
    assert differences(before_claude, tree(warm_home / ".claude", skip=SESSION_RECORDS)) == []


# -- refusals --------------------------------------------------------------------------------


def test_without_claude_setup_exits_3_and_changes_nothing(
    claude_env: dict[str, str], fake_home: Path, project: Path
) -> None:
    env = {k: v for k, v in claude_env.items() if k != "CMS_CLAUDE_BIN"}
    env["PATH"] = "/usr/bin:/bin"
    before = tree(fake_home)
    done = cms(env, project, "setup", "--yes")
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1 and "claude not found" in done.stderr
    assert differences(before, tree(fake_home)) == []


def test_without_a_terminal_and_without_yes_setup_refuses(
    claude_env: dict[str, str], fake_home: Path, project: Path
) -> None:
    before = tree(fake_home)
    done = cms(claude_env, project, "setup")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--yes" in done.stderr
    assert differences(before, tree(fake_home)) == []


# -- the plugin files in a wheel ----------------------------------------------------------


def test_a_wheel_carries_the_plugin_and_setup_works_from_it(
    claude_env: dict[str, str], fake_home: Path, project: Path, tmp_path: Path
) -> None:
    # Build from a clean copy of the tracked files, as from a release tarball, so the
    # in-tree build leaves nothing in the working tree.
    clone = copy_tracked_files(tmp_path / "src")
    shutil.rmtree(clone / "tests")
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "-w", str(wheels), str(clone)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    [wheel] = wheels.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    checkout = setup.PluginSource("checkout", clone, clone / "cms").files()
    for rel in checkout:
        assert (rel if rel.startswith("cms/") else "cms/plugin/" + rel) in names, rel
    for script in ("cms-run", "cms-hook"):
        info = zipfile.ZipFile(wheel).getinfo(f"cms/plugin/scripts/{script}")
        assert (info.external_attr >> 16) & 0o111, f"{script} lost its exec bit"
    assert [n for n in names if n.endswith(".data/scripts/cms")], "no cms command in the wheel"

    # Installed (deps from this interpreter), setup copies the same plugin as a checkout.
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
         str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    env = {**claude_env, "PYTHONPATH": str(site)}
    # The `cms` command (bin/cms) installed with this Python on its first line, and runs.
    command = site / "bin" / "cms"
    assert command.read_text().splitlines()[0] == f"#!{sys.executable}"
    shown = subprocess.run(
        [str(command), "--version"], env=env, capture_output=True, text=True, check=True
    ).stdout  # fmt: skip
    assert shown.startswith("cms, version ")
    where = subprocess.run(
        [sys.executable, "-c", "from cms.ops import setup; print(setup.find_source().kind)"],
        env=env, cwd=tmp_path, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert where.stdout.strip() == "wheel"
    done = cms(env, tmp_path, "setup", "--yes")
    assert done.returncode == 0, done.stderr
    marketplace = fake_home / ".local" / "share" / "cms" / "marketplace"
    copied = {rel: (marketplace / rel).read_bytes() for rel in setup.folder_files(marketplace)}
    assert copied == {rel: path.read_bytes() for rel, path in checkout.items()}
    assert cms(env, tmp_path, "setup", "--uninstall", "--yes").returncode == 0


# -- the marketplace alone ------------------------------------------------------------------


@pytest.mark.slow
def test_marketplace_alone_builds_its_environment_once_and_never_blocks_a_prompt(
    claude_bin: Path,
    standin: StandIn,
    lean_env: dict[str, str],
    warm_home: Path,
    project: Path,
    tmp_path: Path,
) -> None:
    clone = copy_tracked_files(tmp_path / "clone")
    claude(claude_bin, lean_env, project, "plugin", "marketplace", "add", str(clone))
    claude(claude_bin, lean_env, project, "plugin", "install", setup.PLUGIN_ID)
    data = warm_home / ".claude" / "plugins" / "data" / setup.PLUGIN_DATA_NAME
    venv = data / "venv"

    # A plain prompt does not wait for the environment (SessionStart only starts it).
    standin.script("PLAIN-HELLO", [text("hi")])
    started = time.monotonic()
    events = claude_p(claude_bin, "hello PLAIN-HELLO", lean_env, project)
    plain_s = time.monotonic() - started
    assert events[-1]["result"] == "hi"

    standin.script("<command-name>/cms:sessions</command-name>", [text("listed")])
    started = time.monotonic()
    claude_p(claude_bin, "/cms:sessions", lean_env, project, timeout=900)
    first_s = time.monotonic() - started
    assert "no sessions in this project" in sent(
        standin, "<command-name>/cms:sessions</command-name>"
    )
    stamp = venv / ".cms-version"
    with open(clone / "pyproject.toml", "rb") as handle:
        version = tomllib.load(handle)["project"]["version"]
    assert stamp.read_text().strip() == version
    built_at = stamp.stat().st_mtime_ns

    standin.clear()
    standin.script("<command-name>/cms:sessions</command-name>", [text("listed")])
    started = time.monotonic()
    claude_p(claude_bin, "/cms:sessions", lean_env, project)
    second_s = time.monotonic() - started
    assert "no sessions in this project" in sent(
        standin, "<command-name>/cms:sessions</command-name>"
    )
    assert stamp.stat().st_mtime_ns == built_at, "the environment was built again"
    print(f"plain prompt {plain_s:.1f}s, /cms:sessions first {first_s:.1f}s, then {second_s:.1f}s")
    assert plain_s < 30, "a plain prompt waited for the environment"
    assert second_s < 20 and second_s < first_s

    # Another plugin version: the environment is built again, once.
    stamp.write_text("0.0.0-older\n")
    standin.clear()
    standin.script("<command-name>/cms:sessions</command-name>", [text("listed")])
    claude_p(claude_bin, "/cms:sessions", lean_env, project, timeout=900)
    assert "no sessions in this project" in sent(
        standin, "<command-name>/cms:sessions</command-name>"
    )
    assert stamp.read_text().strip() == version
    log = (data / "build.log").read_text()
    assert "pip" in log and "install" in log


# -- the launcher (scripts/cms-run) ----------------------------------------------------

CMS_RUN = REPO / "scripts" / "cms-run"


def _logging_python(folder: Path, real: str) -> Path:
    """A ``python3`` on PATH that logs each start, then runs ``real``."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "starts"
    for name in ("python3", "python"):
        script = folder / name
        script.write_text(f'#!/bin/sh\necho start >> {log}\nexec {real} "$@"\n')
        script.chmod(0o755)
    return log


def _cms_run(env: dict[str, str], cwd: Path, *args: str, stdin: str = "") -> Any:
    return subprocess.run(
        [str(CMS_RUN), *args], env=env, cwd=cwd, input=stdin, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip


def test_the_launcher_probes_python_on_path_once_without_importing_its_dependencies(
    lean_env: dict[str, str], project: Path, tmp_path: Path
) -> None:
    # python3 on PATH has the dependencies (as after `pip install`), no venv, no setup.
    log = _logging_python(tmp_path / "bin", sys.executable)
    # A click that leaves a mark when imported, ahead of the real one: the probe must
    # find it without importing it.
    shadow = tmp_path / "shadow"
    (shadow / "click").mkdir(parents=True)
    imported = tmp_path / "click-imported"
    (shadow / "click" / "__init__.py").write_text(f"open({str(imported)!r}, 'w').close()\n")
    data = tmp_path / "data"
    env = {**lean_env, "PATH": f"{tmp_path / 'bin'}:{lean_env['PATH']}", "PYTHONPATH": str(shadow)}
    args = ["--data", str(data), "--no-build", "--module", "cms.hooks.parent", "stop"]
    done = _cms_run(env, project, *args, stdin="{}")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert not imported.exists(), "the probe imported a dependency"
    assert len(log.read_text().splitlines()) == 1  # one probe; the run used what it found
    cached = (data / "python.cache").read_text().splitlines()
    assert cached[:3] == [str(tmp_path / "bin" / "python3"), sys.executable, "deps"]
    # The next calls are a shell test only: no interpreter is started to find one.
    for _ in range(2):
        again = _cms_run(env, project, *args, stdin="{}")
        assert again.returncode == 0 and again.stderr == "", again.stderr
    assert len(log.read_text().splitlines()) == 1
    assert not (data / "venv").exists()
    # Another python3 on PATH is probed anew.
    other = _logging_python(tmp_path / "other", sys.executable)
    env["PATH"] = f"{tmp_path / 'other'}:{lean_env['PATH']}"
    assert _cms_run(env, project, *args, stdin="{}").returncode == 0
    assert len(other.read_text().splitlines()) == 1


def _fake_uv(folder: Path) -> Path:
    """A ``uv`` that logs its arguments and fails (the build then stops at once)."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "uv-calls"
    script = folder / "uv"
    script.write_text(f'#!/bin/sh\necho "$*" >> {log}\necho "uv: no network here" >&2\nexit 2\n')
    script.chmod(0o755)
    return log


def test_the_build_uses_uv_when_it_is_on_path_and_says_so(
    lean_env: dict[str, str], project: Path, tmp_path: Path
) -> None:
    calls = _fake_uv(tmp_path / "uvbin")
    data = tmp_path / "data"
    env = {**lean_env, "PATH": f"{tmp_path / 'uvbin'}:{lean_env['PATH']}"}
    done = _cms_run(env, project, "--data", str(data), "list")
    assert done.returncode == 3
    first, last = done.stderr.strip().splitlines()
    assert first.startswith("cms: setting up its Python environment in ") and "with uv" in first
    assert "could not build" in last and "build.log" in last
    [venv] = calls.read_text().splitlines()[:1]
    assert venv.startswith("venv ") and str(data / "venv") in venv
    assert "$ " + str(tmp_path / "uvbin" / "uv") + " venv" in (data / "build.log").read_text()
    # Without uv: pip, and the line says so (here it fails the same way: no pip in a
    # venv of the bare python3 that has none).
    (tmp_path / "uvbin" / "uv").unlink()
    done = _cms_run(lean_env, project, "--data", str(data), "list")
    assert "with pip" in done.stderr.splitlines()[0]


@pytest.fixture(scope="session")
def uv_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the real ``uv`` (its wheel from PyPI, unpacked)."""
    where = tmp_path_factory.mktemp("uv")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(where), "uv"],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    [wheel] = where.glob("uv-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        [member] = [n for n in archive.namelist() if n.endswith("/scripts/uv")]
        (where / "bin").mkdir()
        (where / "bin" / "uv").write_bytes(archive.read(member))
    (where / "bin" / "uv").chmod(0o755)
    return where / "bin"


@pytest.mark.slow
def test_first_use_builds_the_environment_with_uv(
    lean_env: dict[str, str], uv_bin: Path, project: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    env = {**lean_env, "PATH": f"{uv_bin}:{lean_env['PATH']}"}
    started = time.monotonic()
    done = _cms_run(env, project, "--data", str(data), "list")
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "no sessions in this project"
    [line] = done.stderr.strip().splitlines()
    assert "with uv" in line and str(data / "venv") in line
    log = (data / "build.log").read_text()
    assert f"$ {uv_bin / 'uv'} venv" in log and f"$ {uv_bin / 'uv'} pip install" in log
    assert "with uv" in log.splitlines()[-1]
    print(f"first use with uv: {took:.1f} s")
    again = _cms_run(env, project, "--data", str(data), "list")
    assert again.returncode == 0 and again.stderr == ""


# -- pieces ------------------------------------------------------------------------------------


def test_command_files_are_signed_and_a_changed_one_is_not_ours(tmp_path: Path) -> None:
    plugin = (REPO / "commands" / "sessions.md").read_text()
    rendered = setup.render_command(plugin, tmp_path / "root", tmp_path / "data")
    assert setup.written_by_setup(rendered)
    assert setup.MARKER in rendered
    assert "${CLAUDE_PLUGIN_ROOT}" not in rendered and str(tmp_path / "root") in rendered
    assert not setup.written_by_setup(rendered.replace("cms list", "cms  list"))
    assert not setup.written_by_setup(plugin)
    with pytest.raises(setup.CmsError):
        setup.render_command(plugin, tmp_path / 'we"ird', tmp_path / "data")
    with pytest.raises(setup.CmsError):
        setup.render_command("---\ndescription: x\n---\n!`echo $ARGUMENTS`\n", tmp_path, tmp_path)
