"""Finding cms supervisors from outside and sampling their peak memory (benchmarks).

A supervisor is the parent of a child ``claude`` process (its command line has
``stream-json``, its environment the benchmark's ``CMS_HOME``). Whether the
supervisor was forked from ``cms`` or started as ``python -m cms.engine.supervisor``, that
is how it can be told apart from the hooks and tools claude starts.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path


def vm_hwm_kb(pid: int) -> int:
    """Peak resident memory of ``pid`` in KiB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def supervisors(home: Path) -> list[int]:
    """The parents of the running claude children of this CMS_HOME (the supervisors)."""
    wanted = f"CMS_HOME={home}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                if wanted not in handle.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if b"stream-json" not in handle.read():
                    continue  # a hook or tool process, not claude itself
            with open(f"/proc/{entry}/stat", "rb") as handle:
                parent = int(handle.read().rsplit(b")", 1)[1].split()[1])
            if parent == os.getpid():
                continue  # a claude the benchmark runs itself with a child's environment
            with open(f"/proc/{parent}/cmdline", "rb") as handle:
                if b"stream-json" in handle.read():
                    continue  # forked by claude: its parent is claude, not a supervisor
            found.append(parent)
        except (OSError, ValueError, IndexError):
            continue
    return found


class PeakSampler(threading.Thread):
    """Samples every supervisor's VmHWM (by pid) every 20 ms until ``done`` is set."""

    def __init__(self, home: Path) -> None:
        super().__init__(daemon=True)
        self.home = home
        self.peak_kb: dict[int, int] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for pid in supervisors(self.home):
                self.peak_kb[pid] = max(self.peak_kb.get(pid, 0), vm_hwm_kb(pid))
            time.sleep(0.02)

    @property
    def overall_peak_kb(self) -> int:
        return max(self.peak_kb.values(), default=0)
