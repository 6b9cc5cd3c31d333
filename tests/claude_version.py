"""The pinned Claude Code CLI that the tests run, and how to install it.

``CLAUDE_CODE_VERSION`` is the one place the version is pinned. The CLI is installed
with npm into ``<repo>/.cache/claude-code/<version>/`` (git-ignored), where the tests
and ``python tests/claude_version.py`` (which prints the path, installing first if
needed; handy for CI scripts) find it.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
from pathlib import Path

CLAUDE_CODE_VERSION = "2.1.332"
CLAUDE_CODE_PACKAGE = "@anthropic-ai/claude-code"

REPO_ROOT = Path(__file__).resolve().parent.parent


def claude_prefix(version: str = CLAUDE_CODE_VERSION) -> Path:
    """The npm ``--prefix`` directory of the pinned CLI."""
    return REPO_ROOT / ".cache" / "claude-code" / version


def claude_bin_path(version: str = CLAUDE_CODE_VERSION) -> Path:
    """Where the pinned CLI's ``claude`` executable is once installed."""
    return claude_prefix(version) / "node_modules" / ".bin" / "claude"


def install_claude(version: str = CLAUDE_CODE_VERSION) -> Path:
    """Install the pinned CLI unless present; return the path of its ``claude``.

    A file lock keeps parallel test workers (pytest-xdist) from installing at once.
    """
    binary = claude_bin_path(version)
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to install the Claude Code CLI for the tests")
    prefix = claude_prefix(version)
    prefix.mkdir(parents=True, exist_ok=True)
    with open(prefix.parent / f".{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            subprocess.run(
                [
                    npm,
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--prefix",
                    str(prefix),
                    f"{CLAUDE_CODE_PACKAGE}@{version}",
                ],
                check=True,
                stdout=sys.stderr,
            )
    if not binary.exists():
        raise RuntimeError(f"npm install did not produce {binary}")
    return binary


if __name__ == "__main__":
    print(install_claude())
