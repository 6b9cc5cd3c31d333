"""The one owner of a session's status and of every field of its exchange: begin,
queue, claim, the live tally, end, interrupt, abort and finish.

Every transition here edits a record in place and runs through :func:`apply`, which
holds the record's lock (:meth:`cms.engine.store.Store.update`) and, when the
transition ended the session, leaves the parent that started it its notice
(:mod:`cms.engine.notices`). The transitions do no I/O of their own (what one needs
from outside, such as a transcript check or a kill, the caller does around it). So
the rules of the states sit side by side:

- ``queued`` → ``running`` (:func:`begin`) when a slot is free, else a session waits
  ``queued`` with its message (:func:`queue`);
- a session started ``--after`` others waits ``queued`` until they ended: then it is
  :func:`release` d with their results in its message (and waits for a slot like any
  other), or :func:`block` ed ``failed`` when one of them did not complete;
- the supervisor :func:`claim` s a ``running`` record with its pid, and :func:`end`
  records the outcome of the exchange (status, spend, turns, response);
- a ``running`` record whose supervisor died becomes ``interrupted``
  (:func:`interrupt`); ``abort`` makes a ``queued`` or ``running`` one ``aborted``;
  ``finish`` closes an ended one.

Whatever ends an exchange clears the same fields (:func:`_clear_exchange`): the pids,
the deadline, the temp folder, the abort request. Those are set only while the record
is ``running``: the supervisor's pid by :func:`claim`, claude's by :func:`child`, the
temp folder by :func:`temp_folder`, the live figures by :func:`tally`.

Outside this module a record is changed (``Store.update``) only for fields no
transition owns: ``max_cost_usd`` and ``max_turns`` (``cms continue`` raises them)
and ``merged_commit`` (``cms merge``); a test holds the call sites to that.

Each transition checks the state it starts from (as supervisor's ``_assertInState``
does): one that cannot apply raises :class:`cms.base.errors.WrongState`, except those
documented as returning False (a race the caller expects: the record moved on
meanwhile), which then leave the record as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cms.base.errors import WrongState
from cms.engine import notices
from cms.engine.models import SessionRecord, Status, utcnow
from cms.engine.store import LOCK_TIMEOUT_S, Store

RUNNING = frozenset({Status.RUNNING})
#: What an exchange may be started from: anything but a running one.
STARTABLE = frozenset(s for s in Status if s is not Status.RUNNING)
#: What an exchange's outcome may be recorded over: its own running record, or one a
#: reader or ``cms abort`` closed meanwhile (the spend happened all the same).
ENDABLE = frozenset({Status.RUNNING, Status.INTERRUPTED, Status.ABORTED})


def _expect(record: SessionRecord, allowed: frozenset[Status], what: str) -> None:
    """The transition ``what`` starts from one of ``allowed``, else WrongState."""
    if record.status not in allowed:
        raise WrongState(
            f"session {record.name!r} is {record.status.value}: it cannot {what} now; "
            f"see `cms show {record.name}`"
        )


def apply(
    store: Store,
    name: str,
    transition: Callable[[SessionRecord], object],
    timeout_s: float = LOCK_TIMEOUT_S,
    durable: bool = True,
) -> SessionRecord:
    """Run ``transition`` on ``name``'s record under its lock and write it (``durable``:
    as :meth:`cms.engine.store.Store.update`); when it
    ended the session (active before, not after), tell the parent that started it.
    :class:`cms.engine.store.LockTimeout` when the lock is not had within
    ``timeout_s``."""
    ended: list[bool] = []

    def change(record: SessionRecord) -> None:
        was_active = record.status.active
        transition(record)
        if was_active and not record.status.active:
            ended.append(True)

    record = store.update(name, change, timeout_s, durable=durable)
    if ended:
        _tell_parent(store, record)
    return record


def _tell_parent(store: Store, record: SessionRecord) -> None:
    """The notice of an ending for the user's session that started ``record`` (at its
    next prompt); none for a session a cms child started, or one started outside
    Claude Code."""
    if record.parent is not None or not record.parent_session_id:
        return
    data = {
        "project": str(store.paths.project),
        "name": record.name,
        "status": record.status.value,
        "cost_usd": record.cost_usd,
        "ended_at": (record.ended_at or utcnow()).isoformat(),
    }
    notices.note(store.paths.home, record.parent_session_id, data)


def _clear_exchange(record: SessionRecord) -> None:
    """What belongs to a running exchange only: gone once it ended, however."""
    record.pid = None
    record.pid_started = None
    record.child_pid = None
    record.child_started = None
    record.deadline = None
    record.temp_dir = None
    record.abort_requested = False


def _ended(record: SessionRecord, status: Status, error: str | None) -> None:
    _clear_exchange(record)
    record.status = status
    record.error = error or None
    record.ended_at = utcnow()


def begin(record: SessionRecord, message: str | None = None) -> None:
    """The next exchange starts now: ``running``, its deadline from ``timeout_s``."""
    _expect(record, STARTABLE, "start an exchange")
    _clear_exchange(record)
    record.status = Status.RUNNING
    record.turn_started_at = utcnow()
    record.deadline = time.time() + record.timeout_s if record.timeout_s else None
    record.error = None
    if message is not None:
        record.pending_message = message


def queue(record: SessionRecord, message: str) -> None:
    """The next exchange waits for a free slot (the project's parallel limit)."""
    _expect(record, STARTABLE, "queue an exchange")
    _clear_exchange(record)
    record.status = Status.QUEUED
    record.pending_message = message
    record.turn_started_at = utcnow()
    record.error = None


def waiting(record: SessionRecord) -> bool:
    """Queued until the sessions it runs after have ended (``--after``)."""
    return record.status is Status.QUEUED and bool(record.after) and not record.after_met


def release(record: SessionRecord, message: str) -> bool:
    """The sessions it runs after all completed: its first exchange may start (when a
    slot is free) with ``message``, their results then its task. False when it is not
    waiting for them any more (aborted meanwhile, or released already)."""
    if not waiting(record):
        return False
    record.after_met = True
    record.pending_message = message
    return True


def block(record: SessionRecord, error: str) -> bool:
    """A session it runs after ended otherwise: ``failed`` without an exchange, its
    message kept for ``resume``. False when it is not waiting any more."""
    if not waiting(record):
        return False
    _ended(record, Status.FAILED, error)
    record.result_read = False
    return True


def claim(record: SessionRecord, pid: int, started: int | None) -> None:
    """The supervisor that owns the exchange names itself (its exchange was begun)."""
    _expect(record, RUNNING, "be claimed by a supervisor")
    record.pid = pid
    record.pid_started = started


def temp_folder(record: SessionRecord, path: str) -> None:
    """The running exchange's private temp folder (its commands' TMPDIR)."""
    _expect(record, RUNNING, "have a temp folder")
    record.temp_dir = path


def child(record: SessionRecord, pid: int, started: int | None) -> None:
    """The running exchange's ``claude`` process, as its supervisor started it."""
    _expect(record, RUNNING, "have a claude process")
    record.child_pid, record.child_started = pid, started


def tally(
    record: SessionRecord,
    cost_usd: float,
    turns: int,
    denials: int,
    last_activity: str | None,
    saw_conversation: bool,
) -> bool:
    """The live figures of the running exchange, on top of the settled ones. False
    when it is not running any more (its outcome settles the figures)."""
    if record.status is not Status.RUNNING:
        return False
    record.cost_usd = record.settled_cost_usd + cost_usd
    record.turns = record.settled_turns + turns
    record.denials = record.settled_denials + denials
    if last_activity:
        record.last_activity = last_activity
    if saw_conversation:
        record.has_conversation = True
    return True


@dataclass
class Outcome:
    """How an exchange ended, as the supervisor saw it."""

    status: Status
    error: str
    cost_usd: float
    turns: int
    input_tokens: int
    output_tokens: int
    denials: int
    response: str | None
    #: Claude's session id as the result names it (None: keep the record's).
    session_id: str | None
    #: The result's subtype (None: the CLI gave no result).
    subtype: str | None
    saw_conversation: bool
    last_activity: str | None


def end(record: SessionRecord, outcome: Outcome) -> None:
    """Record the outcome of an exchange: its spend, turns and refusals are settled
    into the session's totals, and the result waits to be read."""
    _expect(record, ENDABLE, "record an outcome")
    record.settled_cost_usd += outcome.cost_usd
    record.settled_turns += outcome.turns
    record.settled_denials += outcome.denials
    record.cost_usd = record.settled_cost_usd
    record.turns = record.settled_turns
    record.denials = record.settled_denials
    record.input_tokens += outcome.input_tokens
    record.output_tokens += outcome.output_tokens
    if outcome.session_id:
        record.session_id = outcome.session_id
    record.response = outcome.response
    if outcome.saw_conversation:
        record.has_conversation = True
    if outcome.last_activity:
        record.last_activity = outcome.last_activity
    record.fork_from = None
    record.outcome = outcome.subtype
    record.pending_message = None
    record.result_read = False
    record.exchanges += 1
    _ended(record, outcome.status, outcome.error)


def interrupt(record: SessionRecord, conversation_saved: bool) -> bool:
    """A ``running`` record whose supervisor is gone becomes ``interrupted`` (``cms
    resume`` continues it). False when it is not running any more."""
    if record.status is not Status.RUNNING:
        return False
    _ended(record, Status.INTERRUPTED, "its supervisor died before recording an outcome")
    if conversation_saved:
        record.has_conversation = True
    return True


def abort_queued(record: SessionRecord) -> bool:
    """A ``queued`` session is aborted before it starts. False when it is not queued."""
    if record.status is not Status.QUEUED:
        return False
    record.pending_message = None
    _ended(record, Status.ABORTED, "aborted by cms abort while queued")
    return True


def request_abort(record: SessionRecord) -> bool:
    """Ask the supervisor (and the child's hook) to stop the running exchange. False
    when it is not running (any more)."""
    if record.status is not Status.RUNNING:
        return False
    record.abort_requested = True
    return True


def abort(record: SessionRecord) -> bool:
    """A running exchange whose supervisor could not record it: ``aborted``. False
    when it ended meanwhile."""
    if not record.status.active:
        return False
    _ended(record, Status.ABORTED, "aborted by cms abort")
    return True


def read_result(record: SessionRecord) -> None:
    """The user read the ended exchange's result (``cms result``, a wait's end)."""
    if not record.status.active:
        record.result_read = True


def fresh_conversation(record: SessionRecord, session_id: str) -> None:
    """The next exchange starts a new Claude conversation (``cms resume --fresh``)."""
    _expect(record, STARTABLE, "start a new conversation")
    record.session_id = session_id
    record.has_conversation = False
    record.fork_from = None


def conversation_found(record: SessionRecord) -> None:
    """An interrupted exchange's conversation was saved after all (its transcript is
    there): the next one resumes it."""
    _expect(record, STARTABLE, "resume its conversation")
    record.has_conversation = True


def finish(record: SessionRecord) -> None:
    """Close an ended session: ``finished``, its result counted as read."""
    _expect(record, STARTABLE - {Status.QUEUED}, "be finished")
    record.status = Status.FINISHED
    record.result_read = True
