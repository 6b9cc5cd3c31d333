"""What a delegation costs cms itself, besides Claude Code: the sandbox probe is made
once and remembered while it still holds, the command ends as soon as its output is
out, and the process walks read the children the kernel lists instead of all of /proc.
(The figures: benchmarks/bench_delegate.py.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cms.engine import procs
from cms.engine import sandboxprobe as sandbox

BWRAP = shutil.which("bwrap")


@pytest.mark.skipif(BWRAP is None or shutil.which("socat") is None, reason="needs bwrap, socat")
def test_the_sandbox_probe_is_remembered_while_the_same_bwrap_holds(tmp_path: Path) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    log = tmp_path / "probes"
    wrapper = folder / "bwrap"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {BWRAP} "$@"\n')
    wrapper.chmod(0o755)
    os.symlink(shutil.which("socat") or "", folder / "socat")
    env = {**os.environ, "PATH": f"{folder}:{os.environ['PATH']}"}
    cache = tmp_path / "state"
    cache.mkdir()

    def probes() -> int:
        return len(log.read_text().splitlines()) if log.exists() else 0

    for _ in range(3):
        assert sandbox.check(env, cache=cache).ok
    assert probes() == 1, "bwrap was probed again with nothing changed"
    assert sandbox.check(env).ok  # no cache (cms doctor, cms sandbox): always probes
    assert probes() == 2
    # Another bwrap (here: the same one changed) is probed again, once.
    time.sleep(0.01)
    wrapper.write_text(wrapper.read_text() + "# changed\n")
    assert sandbox.check(env, cache=cache).ok and sandbox.check(env, cache=cache).ok
    assert probes() == 3
    # A bwrap that cannot make a sandbox is never remembered as working.
    wrapper.write_text(f"#!/bin/sh\necho \"$*\" >> {log}\necho 'no namespaces' >&2\nexit 1\n")
    for _ in range(2):
        found = sandbox.check(env, cache=cache)
        assert not found.ok and "no namespaces" in found.detail
    assert probes() == 5


def test_descendants_are_found_through_the_children_lists(tmp_path: Path) -> None:
    # The test worker may have children of its own from other tests (a dockerd that a
    # Docker test restarted, say): count below the shell this test starts.
    child = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"])
    try:
        deadline = time.monotonic() + 10
        while len(procs.descendants(child.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        found = procs.descendants(child.pid)
        assert len(found) == 2 and child.pid in procs.descendants(os.getpid())
        assert set(found) <= set(procs.descendants(os.getpid()))
        assert sorted(found) == sorted(procs._descendants_by_scan(child.pid))
    finally:
        procs.kill_tree(child.pid, grace_s=1.0)
        child.wait()


def test_the_command_line_ends_with_its_output_flushed_and_its_exit_status(
    tmp_path: Path,
) -> None:
    # The console script's way (cms.ui.entry), which ends the process with os._exit.
    entry = "import sys; from cms.ui.entry import main; main(sys.argv[1:])"
    env = {**os.environ, "CMS_HOME": str(tmp_path / "home")}
    listed = subprocess.run(
        [sys.executable, "-c", entry, "--json", "list"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listed.returncode == 0 and listed.stdout.strip() == "[]"
    bad = subprocess.run(
        [sys.executable, "-c", entry, "show", "no-such"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.startswith("cms: error: ")
    piped = subprocess.run(
        [sys.executable, "-c", entry + "; print('never')", "--json", "list"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert piped.stdout.strip() == "[]"  # nothing runs after the command: it has ended


def test_a_waiter_wakes_when_a_watched_process_ends_not_at_its_next_poll() -> None:
    # The foreground `cms delegate` and `cms wait` follow the supervisors' pids: the end
    # of a turn (its supervisor records the outcome, then exits) ends the sleep at once.
    short = subprocess.Popen(["sleep", "0.3"])
    watch = procs.ExitWatch()
    try:
        watch.follow([short.pid])
        assert watch.watching
        start = time.monotonic()
        watch.sleep(20.0)
        woke = time.monotonic() - start
        assert 0.2 < woke < 10.0, f"slept {woke:.2f}s for a process that ended after 0.3s"
        # An ended process wakes the waiter once: then it is let go, and sleeps sleep.
        watch.follow([short.pid])
        assert not watch.watching
        start = time.monotonic()
        watch.sleep(0.2)
        assert time.monotonic() - start >= 0.19
    finally:
        watch.close()
        short.wait()


def test_a_delegation_loads_no_module_it_does_not_use() -> None:
    # What `cms delegate` imports on this machine's path to claude (the CLI, the
    # operations it calls, the supervisor forked from it): not the Docker engine, the
    # doctor, the reports, the spending over all of Claude Code, or tomllib.
    code = (
        "import sys; from cms.ui import cli; from cms import ops; "
        "[getattr(ops, n) for n in ('open_project', 'reconcile', 'delegate', 'run_and_wait',"
        " 'make_options', 'all_successful')]; import cms.engine.supervisor; "
        "print(' '.join(sorted(sys.modules)))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout.split()
    )
    unused = {
        "cms.engine.docker", "cms.engine.bridge", "cms.ops.doctor", "cms.ops.reports",
        "cms.ops.spending", "cms.ops.hosts", "cms.hooks.caps", "cms.hooks.spend",
        "tomllib",  # the records are read by cms.base.readers: tomllib only for other TOML
    }  # fmt: skip
    assert loaded & unused == set()
    assert {"cms.ops.turns", "cms.engine.launcher", "cms.engine.supervisor"} <= loaded


def test_every_name_of_the_api_is_found_where_the_package_says() -> None:
    # cms.ops imports each operation on first use, from a table of where it lives: a
    # name listed but missing from the table (or misplaced) fails here, not in a command.
    code = (
        "from cms import ops; missing = sorted(set(ops.__all__) ^ set(ops._WHERE)); "
        "[getattr(ops, n) for n in ops.__all__]; print(missing)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
