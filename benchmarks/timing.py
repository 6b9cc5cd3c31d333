"""One timed run of a command: what the start-up benchmarks (hook, notify, startup) time
side by side. A run that fails, or prints when it should not (or not when it should),
stops the benchmark: a fast wrong answer must not pass for a fast hook."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def timed(
    argv: list[str],
    env: dict[str, str],
    stdin: bytes = b"",
    cwd: Path | None = None,
    *,
    prints: bool | None = None,
) -> float:
    """Seconds ``argv`` took; with ``prints``, whether it must write to stdout."""
    start = time.perf_counter()
    done = subprocess.run(argv, input=stdin, env=env, cwd=cwd, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    if prints is not None and bool(done.stdout.strip()) != prints:
        raise SystemExit(f"unexpected output from {argv}: {done.stdout.decode()[:500]!r}")
    return elapsed


def user_install(root: Path) -> Path:
    """The ``cms`` console script of a venv where this checkout is installed as a user
    installs it (``python -m venv``, then ``pip install .``: not editable, bytecode
    compiled by pip, the dependencies from PyPI), made once and kept under
    ``.cache/bench-venv/`` by the content of what pip installs, so a second run reuses
    it. A venv's interpreter starts without this machine's site-packages and their
    ``.pth`` files, as a user's venv or pipx install does."""
    import hashlib
    import shutil
    import sys

    digest = hashlib.sha256()
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=root, check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    for name in sorted(listed):
        if name.startswith(("tests/", "benchmarks/", "docs/", ".")) or not (root / name).is_file():
            continue
        digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    venv = root / ".cache" / "bench-venv" / digest.hexdigest()[:16]
    script, done = venv / "bin" / "cms", venv / ".installed"
    if done.exists():
        return script
    if venv.parent.exists():  # another content (or a build cut short): one kept at a time
        shutil.rmtree(venv.parent)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(root)],
        check=True,
    )  # fmt: skip
    done.write_text("")
    return script
