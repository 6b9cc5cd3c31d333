"""Whether Claude Code's sandbox can run here: the programs it needs, and on Linux a
namespace bubblewrap can make, with one line naming what to install when not.

What the sandbox holds for each preset is :mod:`cms.policy.sandbox` (pure); this
module starts a program to find out, so it lives in the engine and runs it through
:func:`cms.engine.procs.run`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cms.engine import procs

#: Debian/Ubuntu package of each program the Linux sandbox needs.
LINUX_PACKAGES = {"bwrap": "bubblewrap", "socat": "socat"}


@dataclass(frozen=True)
class Availability:
    """Whether the sandbox can run here; when not, what is missing and how to fix it."""

    ok: bool
    detail: str
    fix: str | None = None


def check(
    env: Mapping[str, str] | None = None,
    platform: str | None = None,
    cache: Path | None = None,
) -> Availability:
    """Can Claude Code's sandbox run here? Probes without side effects, in a few ms.

    ``cache``: a folder where a successful probe of bwrap is remembered (and trusted
    while the same bwrap and socat, the same boot and the same user-namespace
    settings hold), so a delegation does not start a sandbox just to see that it can."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if platform == "darwin":
        if shutil.which("sandbox-exec", path=env.get("PATH")) or os.path.exists(
            "/usr/bin/sandbox-exec"
        ):
            return Availability(True, "Seatbelt (sandbox-exec) is available")
        return Availability(
            False,
            "the macOS sandbox (sandbox-exec) was not found",
            "run on a macOS that has /usr/bin/sandbox-exec, or pass --no-sandbox",
        )
    if not platform.startswith("linux"):
        return Availability(
            False,
            f"Claude Code's sandbox runs on Linux and macOS only, not on {platform}",
            "run cms on Linux or macOS, or pass --no-sandbox to rely on the hook alone",
        )
    found = {name: shutil.which(name, path=env.get("PATH")) for name in LINUX_PACKAGES}
    missing = [name for name, path in found.items() if not path]
    if missing:
        packages = " ".join(LINUX_PACKAGES[name] for name in missing)
        names = " and ".join(missing)
        return Availability(
            False,
            f"the sandbox needs {names}, not found on PATH",
            f"install {packages} (e.g. `sudo apt-get install {packages}`), "
            "or pass --no-sandbox to run one session with the hook alone",
        )
    bwrap = found["bwrap"]
    assert bwrap is not None
    key = _probe_key(found)
    known = cache / PROBE_CACHE if cache is not None else None
    if known is not None and key is not None and _read_text(known) == key:
        problem = None  # this bwrap worked on this boot with these kernel settings
    else:
        problem = _probe_bwrap(bwrap)
        if known is not None and key is not None and not problem:
            _write_text(known, key)
    if problem:
        return Availability(
            False,
            f"bubblewrap cannot make a sandbox here ({problem})",
            "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, "
            "or on Ubuntu kernel.apparmor_restrict_unprivileged_userns=0), "
            "or pass --no-sandbox",
        )
    return Availability(True, f"bubblewrap ({bwrap}) and socat ({found['socat']}) work")


#: The file in the state folder that remembers the last successful probe.
PROBE_CACHE = "sandbox-probe"
#: What decides whether bwrap may make namespaces: read into the cache's key.
_USERNS_SETTINGS = (
    "/proc/sys/kernel/random/boot_id",
    "/proc/sys/kernel/unprivileged_userns_clone",
    "/proc/sys/user/max_user_namespaces",
    "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
)


def _probe_key(found: Mapping[str, str | None]) -> str | None:
    """What a cached probe stands for: the tools (path, size, mtime), the boot and the
    kernel's user-namespace settings; None when they cannot be read."""
    parts = [os.uname().release, str(os.getuid())]
    try:
        for path in found.values():
            assert path is not None
            info = os.stat(path)
            parts.append(f"{path}:{info.st_size}:{info.st_mtime_ns}")
    except (OSError, AssertionError):
        return None
    parts += [_read_text(Path(p)) or "-" for p in _USERNS_SETTINGS]
    return "\n".join(parts) + "\n"


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _write_text(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)
    except OSError:
        with contextlib.suppress(OSError):
            temp.unlink()


def _probe_bwrap(bwrap: str) -> str | None:
    """None when bwrap can make the namespaces Claude Code asks for, else why not."""
    argv = [
        bwrap, "--new-session", "--die-with-parent", "--unshare-net", "--unshare-pid",
        "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--", "true",
    ]  # fmt: skip
    try:
        done = procs.run(argv, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    if done.ok:
        return None
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    return (lines[-1] if lines else f"exit status {done.code}")[:200]
