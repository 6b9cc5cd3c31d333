"""Helpers for tests that drive the real ``cms`` command line as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CMS = [sys.executable, "-m", "cms.cli"]


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class Cms:
    """Run ``cms`` in a project with a prepared environment."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd

    def run(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None) -> Run:
        done = subprocess.run(
            [*CMS, *args],
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return Run(done.returncode, done.stdout, done.stderr)

    def ok(self, *args: str, timeout: float = 120) -> Any:
        """Run with --json, expect exit 0, return the parsed output."""
        result = self.run("--json", *args, timeout=timeout)
        assert result.code == 0, f"cms {' '.join(args)} -> {result.code}\n{result.stderr}"
        return result.json()

    def show(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = self.ok("show", name)
        return data

    def wait_status(self, name: str, statuses: set[str], timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            record = self.show(name)
            if record["status"] in statuses:
                return record
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} stayed {record['status']}, wanted {statuses}")
            time.sleep(0.1)

    def wait_field(self, name: str, key: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            record = self.show(name)
            if record.get(key):
                return record
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} never got {key}: {record}")
            time.sleep(0.1)


def processes_of_session(name: str) -> list[int]:
    """Pids of live processes whose environment says CMS_SESSION=<name>."""
    wanted = f"CMS_SESSION={name}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                environ = handle.read().split(b"\0")
            with open(f"/proc/{entry}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if wanted in environ and state not in (b"Z", b"X"):
            found.append(int(entry))
    return found


def wait_gone(pids_of: Any, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        left: list[int] = pids_of()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)
