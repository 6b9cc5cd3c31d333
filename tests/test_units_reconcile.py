"""Reads that only read: with an interrupted session (its supervisor gone) and a queued
one present, reading and rendering them changes nothing on disk and starts no
process; :func:`cms.ops.reconcile`, the one code path that repairs, moves both."""

from __future__ import annotations

import os
import subprocess
import time
from datetime import timedelta
from pathlib import Path

from cmsrun import processes_with_home

from cms import ops
from cms.engine.models import SessionRecord, Status, utcnow
from cms.ui import watch


def _disk(home: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of the state folder, its bytes and modification time; but caches of
    derived data that any reader may rebuild: the listing's parsed records
    (``sessions/.index.json``, cms.engine.store) and what was read of Claude Code's
    transcripts (``spend/``, cms.hooks.spend)."""
    return {
        str(p.relative_to(home)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(home.rglob("*"))
        if p.is_file() and p.name != ".index.json" and "spend" not in p.parent.parts
    }


def test_reading_and_rendering_repair_nothing_reconcile_moves_both(
    project: Path, cms_home: Path, tmp_path: Path
) -> None:
    api = ops.open_project(project, {**os.environ, "CMS_CLAUDE_BIN": str(tmp_path / "none"),
                                     "PATH": "/usr/bin:/bin"})  # fmt: skip
    api.store.ensure_dirs()
    dead = subprocess.Popen(["true"])  # a pid that no longer runs
    dead.wait()
    long_ago = utcnow() - timedelta(hours=1)
    api.store.create(SessionRecord(
        name="orphan", status=Status.RUNNING, pid=dead.pid, pid_started=1,
        turn_started_at=long_ago, cwd=str(project), sandbox=False,
    ))  # fmt: skip
    api.store.create(SessionRecord(
        name="waiting", status=Status.QUEUED, pending_message="go", turn_started_at=long_ago,
        cwd=str(project), sandbox=False,
    ))  # fmt: skip
    before, processes = _disk(cms_home), processes_with_home(cms_home)

    listing = ops.list_sessions(api)
    records = {r.name: r for r in listing.sessions}
    shown = [ops.get_session(api, name) for name in records]
    view = ops.overview(api)
    text = watch.watch_text(view, watch.now_utc(), 120)
    rows = [watch.detail_rows(r, watch.now_utc(), ops.predecessors(api, r)) for r in shown]
    ops.cost_report(api)
    assert [r.public() for r in shown] and rows and "orphan" in text and "waiting" in text
    assert {n: r.status for n, r in records.items()} == {
        "orphan": Status.RUNNING, "waiting": Status.QUEUED}  # fmt: skip
    assert _disk(cms_home) == before
    assert processes_with_home(cms_home) == processes

    done = ops.reconcile(api)
    assert (done.interrupted, done.started) == (["orphan"], ["waiting"])
    orphan = api.store.load("orphan")
    assert orphan.status is Status.INTERRUPTED and orphan.pid is None
    # The queued one started: its supervisor ran, found no claude, recorded that.
    deadline = time.monotonic() + 30
    while api.store.load("waiting").status.active and time.monotonic() < deadline:
        time.sleep(0.05)
    waiting = api.store.load("waiting")
    assert waiting.status is Status.FAILED and waiting.exchanges == 1, waiting
    # Nothing left to do.
    assert ops.reconcile(api) == ops.sessions.Reconciled([], [])
