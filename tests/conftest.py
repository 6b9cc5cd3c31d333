"""Shared pytest fixtures: the pinned Claude Code CLI, the Messages API stand-in, and an
isolated environment for the child processes that cms launches.

Every test runs with ``HOME`` and ``CMS_HOME`` under its ``tmp_path`` and without the
outer ``CLAUDE*``/``ANTHROPIC*``/``CMS_*`` variables (autouse), so no test reads or writes
the real home or talks to the real API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:  # `import standin` also under --import-mode=importlib
    sys.path.insert(0, str(TESTS_DIR))

from claude_version import install_claude  # noqa: E402
from cmsrun import Cms  # noqa: E402
from standin import StandIn  # noqa: E402

# Variables a child must not inherit from the outer environment.
ISOLATED_PREFIXES = ("CLAUDE", "ANTHROPIC", "CMS_")
# Variables that would point git or XDG-aware tools back at the real home or repository.
ISOLATED_NAMES = (
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
    "XDG_STATE_HOME",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
)

# `claude -p` refuses file writes and shell commands unless settings allow them (and
# --permission-mode bypassPermissions is refused as root), so the throwaway home allows
# these tools by bare name, which covers every path and every command.
CLAUDE_SETTINGS = {"permissions": {"allow": ["Write", "Edit", "Bash"]}}

GIT_USER = ("cms-test", "cms-test@example.invalid")


def _isolated(environ: dict[str, str]) -> dict[str, str]:
    return {
        k: v
        for k, v in environ.items()
        if not k.startswith(ISOLATED_PREFIXES) and k not in ISOLATED_NAMES
    }


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    """The pinned Claude Code CLI (installed with npm into .cache/ when missing)."""
    return install_claude()


@pytest.fixture
def fake_home(tmp_path: Path) -> Path:
    """A throwaway HOME with the Claude settings the tests need and a git identity."""
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / "settings.json").write_text(json.dumps(CLAUDE_SETTINGS, indent=2))
    (home / ".gitconfig").write_text(
        f"[user]\n\tname = {GIT_USER[0]}\n\temail = {GIT_USER[1]}\n[init]\n\tdefaultBranch = main\n"
    )
    return home


@pytest.fixture
def cms_home(tmp_path: Path) -> Path:
    """The CMS_HOME of this test (not created: cms creates it)."""
    return tmp_path / "cms-home"


@pytest.fixture(autouse=True)
def _isolated_environ(monkeypatch: pytest.MonkeyPatch, fake_home: Path, cms_home: Path) -> None:
    """Point HOME and CMS_HOME at tmp_path and drop the outer CLAUDE*/ANTHROPIC*/CMS_* vars."""
    for name in list(os.environ):
        if name.startswith(ISOLATED_PREFIXES) or name in ISOLATED_NAMES:
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(fake_home))
    monkeypatch.setenv("CMS_HOME", str(cms_home))


@pytest.fixture
def standin() -> Iterator[StandIn]:
    """A started Messages API stand-in, stopped after the test."""
    with StandIn() as server:
        yield server


@pytest.fixture
def claude_env(
    claude_bin: Path, standin: StandIn, fake_home: Path, cms_home: Path
) -> dict[str, str]:
    """The environment for a child `claude` (or cms) process talking to ``standin``.

    ``CLAUDE_CODE_MAX_RETRIES=0`` makes an API failure end the run at once (one request);
    the CLI's default is 10 retries with exponential backoff. Set it to "1" in a test
    that wants one retry (about 0.6 s of backoff).
    """
    env = _isolated(dict(os.environ))
    env.update(
        HOME=str(fake_home),
        CMS_HOME=str(cms_home),
        CMS_CLAUDE_BIN=str(claude_bin),
        PATH=os.pathsep.join([str(claude_bin.parent), env.get("PATH", os.defpath)]),
        ANTHROPIC_BASE_URL=standin.url,
        ANTHROPIC_API_KEY="sk-test-not-a-real-key",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        CLAUDE_CODE_MAX_RETRIES="0",
    )
    return env


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh git repository (branch main) with one commit of README.md."""
    repo = tmp_path / "project"
    repo.mkdir()
    (repo / "README.md").write_text("# Test project\n")
    git = ["git", "-c", f"user.name={GIT_USER[0]}", "-c", f"user.email={GIT_USER[1]}"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run([*git, "add", "README.md"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "Initial commit"], cwd=repo, check=True)
    return repo


@pytest.fixture
def cms(claude_env: dict[str, str], project: Path) -> Cms:
    """``cms`` as a user runs it, in ``project`` with the stand-in's environment."""
    return Cms(claude_env, project)
