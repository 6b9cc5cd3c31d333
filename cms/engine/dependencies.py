"""Sessions that run after others (``--after``): whether a waiting session may start,
the block of its predecessors' results its first prompt begins with, its tree with
their branches merged in, and cycles.

A session started ``--after`` names its predecessors in its record (``after``) and
waits ``queued``, so the dependency is on disk and survives any crash. Whoever runs
the queue next settles it (:func:`cms.engine.launcher.start_queued`, under the
project's queue lock): a finishing supervisor, or any later cms command that lists
the sessions or reads a queued one (``show``, ``result``, ``wait``). Settling is
idempotent: a session released or blocked once is not waiting any more, and merging
a branch already merged changes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cms.base.errors import CmsError
from cms.engine import lifecycle, worktree
from cms.engine.models import SUCCESSFUL, SessionRecord, Status
from cms.engine.store import Store

#: The longest part of one predecessor's response put into the prompt (characters).
RESPONSE_CHARS = 8000
#: What a predecessor whose record is gone is called.
DELETED = "deleted"

WAIT = "wait"
READY = "ready"
BLOCKED = "blocked"


@dataclass
class Verdict:
    """Whether a waiting session may start: ``wait``, ``ready`` or ``blocked``."""

    state: str
    #: blocked: which one ended how, e.g. "login, which it runs after, ended failed".
    why: str = ""
    #: blocked: what the user can do about it.
    fix: str = ""
    #: wait: the predecessors not ended yet.
    pending: list[str] = field(default_factory=list)


def state_of(name: str, by_name: Mapping[str, SessionRecord], exists: Callable[[str], bool]) -> str:
    """A predecessor's status, or ``deleted`` when its record is gone (a record that
    exists but cannot be read counts as not ended: it may be mended)."""
    record = by_name.get(name)
    if record is not None:
        return record.status.value
    return Status.RUNNING.value if exists(name) else DELETED


def judge(
    record: SessionRecord, by_name: Mapping[str, SessionRecord], exists: Callable[[str], bool]
) -> Verdict:
    """May ``record`` start now? Blocked as soon as one predecessor ended other than
    completed or finished (or was deleted); ready when all of them completed or
    finished; else it waits (``running``, ``queued`` and ``interrupted`` ones may still
    complete: ``cms resume`` continues an interrupted one)."""
    pending = []
    for name in record.after:
        state = state_of(name, by_name, exists)
        if state == DELETED:
            why = f"{name}, which it runs after, was deleted"
            return Verdict(BLOCKED, why, "delegate the task again without it")
        status = Status(state)
        if status in SUCCESSFUL:
            continue
        if status.active or status is Status.INTERRUPTED:
            pending.append(name)
            continue
        why = f"{name}, which it runs after, ended {status.value}"
        fix = (
            f"once {name} has completed (`cms continue {name} ...`), "
            f"`cms resume {record.name}` starts it"
        )
        return Verdict(BLOCKED, why, fix)
    return Verdict(WAIT, pending=pending) if pending else Verdict(READY)


def cycle(name: str, after: Iterable[str], by_name: Mapping[str, SessionRecord]) -> list[str]:
    """The path ``name`` → ... → ``name`` that running after ``after`` would close
    (empty: none). A session that has started after its own predecessors waits for
    nothing any more: the way goes on only through those that may still wait."""
    stack = [(n, [name, n]) for n in after]
    seen: set[str] = set()
    while stack:
        current, path = stack.pop()
        if current == name:
            return path
        if current in seen:
            continue
        seen.add(current)
        record = by_name.get(current)
        if record is not None and not record.after_met:
            stack.extend((n, [*path, n]) for n in record.after)
    return []


def states(names: Iterable[str], by_name: Mapping[str, SessionRecord]) -> str:
    """For a person: each of these sessions and its status, e.g. ``login (completed),
    signup (running)`` (``deleted`` for one not in ``by_name``)."""
    return ", ".join(f"{name} ({state_of(name, by_name, lambda _n: False)})" for name in names)


def _cut(text: str | None) -> str:
    text = (text or "").strip() or "(no response)"
    if len(text) <= RESPONSE_CHARS:
        return text
    return text[:RESPONSE_CHARS] + "\n[... cut: the rest is longer than this prompt allows]"


def prompt_after(preds: Sequence[SessionRecord], message: str, merged: Iterable[str]) -> str:
    """The first prompt of a session that runs after ``preds``: a short block naming
    each with its final response (and branch), then its own task."""
    merged = set(merged)
    parts = ["This task runs after other sessions, which have ended. What each one answered:"]
    for pred in preds:
        head = f"## {pred.name} ({pred.status.value}"
        if pred.branch:
            head += f", branch {pred.branch}"
            if pred.name in merged:
                head += ", merged into your working tree"
        parts.append(f"{head})\n{_cut(pred.response)}")
    parts.append(f"## Your task\n{message}")
    return "\n\n".join(parts)


def _merge_trees(record: SessionRecord, preds: Sequence[SessionRecord]) -> list[str]:
    """Bring the predecessors' branches into ``record``'s own tree (what they left
    uncommitted is committed on their branch first, as ``cms merge`` does); the names
    of those merged."""
    if not record.worktree:
        return []
    sources, names = [], []
    for pred in preds:
        if pred.worktree and pred.branch and Path(pred.worktree).exists():
            tree = Path(pred.worktree)
            worktree.snapshot(tree, f"cms: work of session {pred.name}")
            sources.append((tree, pred.branch))
            names.append(pred.name)
    worktree.merge_in(Path(record.worktree), sources)
    return names


def _settle_one(
    store: Store, record: SessionRecord, by_name: Mapping[str, SessionRecord]
) -> SessionRecord:
    verdict = judge(record, by_name, store.exists)
    if verdict.state == WAIT:
        return record
    if verdict.state == BLOCKED:
        error = f"{verdict.why}, so it did not start; {verdict.fix}"
        return lifecycle.apply(store, record.name, lambda r: lifecycle.block(r, error))
    preds = [by_name[name] for name in record.after]
    try:
        merged = _merge_trees(record, preds)
    except CmsError as exc:
        why = (
            f"{exc.message}, so it did not start; its worktree is as it began and your own "
            "tree is untouched: merge those branches yourself, then delegate the task again"
        )
        return lifecycle.apply(store, record.name, lambda r: lifecycle.block(r, why))
    message = prompt_after(preds, record.pending_message or record.task, merged)
    return lifecycle.apply(store, record.name, lambda r: lifecycle.release(r, message))


def settle(store: Store, records: Sequence[SessionRecord]) -> list[SessionRecord]:
    """Release or block every session that waits for others and may now do one or the
    other; the records as they are after. Call it under the project's queue lock."""
    by_name = {r.name: r for r in records}
    settled = []
    for record in records:
        if lifecycle.waiting(record):
            # Deleted meanwhile, or git unusable: the next run of the queue tries again.
            with contextlib.suppress(CmsError):
                record = _settle_one(store, record, by_name)
        settled.append(record)
    return settled
