"""Notes for a parent: the sessions it started that ended since it was last told.

When a session started from a user's Claude Code session (its record's
``parent_session_id``; not one a cms child started) ends, the transition that ended
it (:func:`cms.engine.lifecycle.apply`) leaves one small JSON file in
``$CMS_HOME/notices/<parent-session-id>/`` (:func:`note`). At that
parent's next prompt the UserPromptSubmit hook (:mod:`cms.hooks.parent`) takes them
(:func:`take`) and tells the parent one line per session. The folder is the marker:
while it does not exist, ``scripts/cms-hook`` returns without starting Python.

Once per ending, and never lost to a race: a note is written beside the folder and
renamed into it, so a reader never sees half of one; a reader claims a note by
renaming it (of two readers only one rename succeeds) before reading it; the folder
is removed once empty (only an empty folder can be), and a writer whose rename finds
it gone makes it again. Standard library only: the hook reads these.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cms.base.files import DIR_MODE, atomic_write
from cms.base.paths import notices_dir

#: A temporary file this old is a writer's leftover (it crashed), removed by a reader.
STALE_S = 60.0


def note(home: Path, parent_session_id: str | None, data: Mapping[str, Any]) -> None:
    """Leave ``data`` (one ended session) for the parent ``parent_session_id``. Never
    raises: a note that cannot be written must not fail the record's update."""
    folder = notices_dir(home, parent_session_id)
    if folder is None:
        return
    name = f"{time.time_ns():020d}-{os.getpid()}-{data.get('name', 'session')}.json"
    # Written beside the folder, then moved in: the folder is never without a note
    # between its making and the move, so a reader removes it only while truly empty.
    staged = folder.parent / f".{folder.name}-{name}"
    try:
        folder.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        atomic_write(staged, json.dumps(dict(data), ensure_ascii=False), durable=False)
    except OSError:
        return
    for _attempt in range(100):
        try:
            with contextlib.suppress(FileExistsError):  # also when it is gone again at once
                os.mkdir(folder, DIR_MODE)
            os.rename(staged, folder / name)
            return
        except FileNotFoundError:
            continue  # a reader removed the empty folder meanwhile: make it again
        except OSError:
            break
    with contextlib.suppress(OSError):
        staged.unlink()


def take(home: Path, parent_session_id: str | None) -> list[dict[str, Any]]:
    """Every note left for ``parent_session_id``, oldest first, each removed as it is
    taken (a note is taken once, whoever else reads at the same time)."""
    folder = notices_dir(home, parent_session_id)
    if folder is None:
        return []
    try:
        entries = sorted(os.listdir(folder))
    except OSError:
        return []
    notes: list[dict[str, Any]] = []
    for entry in entries:
        path = folder / entry
        if entry.startswith("."):
            _remove_if_stale(path)
            continue
        claimed = folder / f".{entry}.taken-{os.getpid()}"
        try:
            os.rename(path, claimed)
        except OSError:
            continue  # another reader took it
        try:
            data = json.loads(claimed.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        finally:
            with contextlib.suppress(OSError):
                claimed.unlink()
        if isinstance(data, dict):
            notes.append(data)
    with contextlib.suppress(OSError):
        folder.rmdir()  # fails while a note (or a writer's temp file) is in it
    return notes


def _remove_if_stale(path: Path) -> None:
    with contextlib.suppress(OSError):
        if time.time() - path.stat().st_mtime > STALE_S:
            path.unlink()
