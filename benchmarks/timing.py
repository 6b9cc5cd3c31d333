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
