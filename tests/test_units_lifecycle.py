"""The lifecycle alone (cms.engine.lifecycle): each transition, the state it starts
from, and a property over any sequence of them."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cms.base.errors import WrongState
from cms.base.paths import ProjectPaths
from cms.engine import lifecycle, notices
from cms.engine.models import SessionRecord, Status
from cms.engine.store import Store

#: The fields of a running exchange: set only while the record is ``running``.
EXCHANGE_FIELDS = ("pid", "pid_started", "child_pid", "child_started", "deadline", "temp_dir")


def outcome(
    status: Status = Status.COMPLETED, cost: float = 0.25, turns: int = 2
) -> lifecycle.Outcome:
    return lifecycle.Outcome(
        status=status, error="" if status is Status.COMPLETED else "why", cost_usd=cost,
        turns=turns, input_tokens=10, output_tokens=5, denials=1, response="done",
        session_id="claude-2", subtype="success", saw_conversation=True, last_activity="x",
    )  # fmt: skip


def running(**fields: object) -> SessionRecord:
    record = SessionRecord(name="s", timeout_s=60, **fields)  # type: ignore[arg-type]
    lifecycle.begin(record, "hello")
    lifecycle.claim(record, 4242, 77)
    return record


def test_an_exchange_from_begin_to_end() -> None:
    record = SessionRecord(name="s", timeout_s=60)
    lifecycle.begin(record, "hello")
    assert record.status is Status.RUNNING and record.pending_message == "hello"
    assert record.deadline is not None and record.turn_started_at is not None
    lifecycle.claim(record, 4242, 77)
    assert (record.pid, record.pid_started) == (4242, 77)
    lifecycle.end(record, outcome())
    assert record.status is Status.COMPLETED and record.ended_at is not None
    assert (record.cost_usd, record.settled_cost_usd, record.turns, record.exchanges) == (
        0.25, 0.25, 2, 1)  # fmt: skip
    assert record.response == "done" and record.session_id == "claude-2"
    assert not record.result_read and record.pending_message is None
    assert all(getattr(record, f) is None for f in EXCHANGE_FIELDS)
    # The next exchange adds to the totals.
    lifecycle.begin(record, "more")
    lifecycle.end(record, outcome(Status.COST_EXCEEDED, cost=0.5, turns=1))
    assert (record.cost_usd, record.turns, record.exchanges) == (0.75, 3, 2)
    assert record.status is Status.COST_EXCEEDED and record.error == "why"


def test_transitions_refuse_the_states_they_do_not_start_from() -> None:
    record = running()
    with pytest.raises(WrongState, match="'s' is running: it cannot start an exchange"):
        lifecycle.begin(record)
    with pytest.raises(WrongState):
        lifecycle.queue(record, "again")
    with pytest.raises(WrongState):
        lifecycle.finish(record)
    done = SessionRecord(name="d", status=Status.COMPLETED)
    with pytest.raises(WrongState):
        lifecycle.claim(done, 1, 1)
    with pytest.raises(WrongState):
        lifecycle.end(done, outcome())
    assert not lifecycle.request_abort(done) and not done.abort_requested
    assert not lifecycle.abort(done) and done.status is Status.COMPLETED
    assert not lifecycle.interrupt(done, True) and not lifecycle.abort_queued(done)


def test_a_dead_supervisor_leaves_an_interrupted_record_whose_outcome_still_counts() -> None:
    record = running()
    assert lifecycle.interrupt(record, conversation_saved=True)
    assert record.status is Status.INTERRUPTED and record.has_conversation
    assert record.pid is None and "supervisor died" in (record.error or "")
    # The supervisor was alive after all and records what was spent.
    lifecycle.end(record, outcome())
    assert record.status is Status.COMPLETED and record.settled_cost_usd == 0.25


def test_abort_of_a_queued_and_of_a_running_exchange() -> None:
    queued = SessionRecord(name="q")
    lifecycle.queue(queued, "later")
    assert lifecycle.abort_queued(queued)
    assert queued.status is Status.ABORTED and queued.pending_message is None
    record = running()
    assert lifecycle.request_abort(record) and record.abort_requested
    assert lifecycle.abort(record)
    assert record.status is Status.ABORTED and not record.abort_requested
    lifecycle.finish(record)
    assert record.status is Status.FINISHED and record.result_read


def test_a_session_after_others_is_released_or_blocked_once() -> None:
    record = SessionRecord(name="a", after=["b"])
    lifecycle.queue(record, "task")
    assert lifecycle.waiting(record)
    assert lifecycle.release(record, "their results, then the task")
    assert not lifecycle.waiting(record) and record.after_met
    assert not lifecycle.release(record, "again") and not lifecycle.block(record, "late")
    other = SessionRecord(name="c", after=["b"])
    lifecycle.queue(other, "task")
    assert lifecycle.block(other, "b failed")
    assert other.status is Status.FAILED and other.error == "b failed"
    assert other.pending_message == "task"  # kept for `cms resume`


# -- any sequence ------------------------------------------------------------------------

Event = Callable[[SessionRecord], object]

EVENTS: dict[str, Event] = {
    "begin": lambda r: lifecycle.begin(r, "go"),
    "queue": lambda r: lifecycle.queue(r, "wait"),
    "claim": lambda r: lifecycle.claim(r, 99, 1),
    "interrupt": lambda r: lifecycle.interrupt(r, False),
    "abort_queued": lifecycle.abort_queued,
    "request_abort": lifecycle.request_abort,
    "abort": lifecycle.abort,
    "finish": lifecycle.finish,
    "release": lambda r: lifecycle.release(r, "released"),
    "block": lambda r: lifecycle.block(r, "blocked"),
    **{
        f"end-{s.value}": (lambda r, s=s: lifecycle.end(r, outcome(s)))
        for s in (Status.COMPLETED, Status.FAILED, Status.COST_EXCEEDED, Status.TIMED_OUT)
    },
}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(sorted(EVENTS)), max_size=25),
    st.sampled_from([Status.QUEUED, Status.COMPLETED]),
    st.booleans(),
)
def test_any_sequence_of_events_leaves_a_valid_status_and_no_orphaned_exchange_field(
    events: list[str], first: Status, after: bool
) -> None:
    # A new session's record is queued (a first exchange) or completed (spawned idle).
    record = SessionRecord(name="p", status=first, timeout_s=30, after=["x"] if after else [])
    spent = 0.0
    for name in events:
        before = record.model_dump()
        try:
            EVENTS[name](record)
        except WrongState:
            assert record.model_dump() == before, f"{name} refused but changed the record"
        if name.startswith("end-") and record.model_dump() != before:
            spent += 0.25
        assert record.status in set(Status)
        if record.status is not Status.RUNNING:
            orphans = {f: getattr(record, f) for f in EXCHANGE_FIELDS if getattr(record, f)}
            assert orphans == {} and not record.abort_requested, (events, name, orphans)
        assert record.settled_cost_usd == pytest.approx(spent)
        assert record.cost_usd >= record.settled_cost_usd


# -- the one owner --------------------------------------------------------------------


def _store(tmp_path: Path) -> Store:
    store = Store(ProjectPaths.for_project(tmp_path / "project", tmp_path / "home"))
    store.ensure_dirs()
    return store


def test_the_transition_that_ends_a_session_tells_its_parent_once(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.create(SessionRecord(name="s", parent_session_id="parent-1", timeout_s=60))
    home = store.paths.home
    lifecycle.apply(store, "s", lambda r: lifecycle.begin(r, "go"))
    lifecycle.apply(store, "s", lambda r: lifecycle.claim(r, 4242, 1))
    lifecycle.apply(store, "s", lambda r: lifecycle.tally(r, 0.1, 1, 0, "reading", True))
    assert notices.take(home, "parent-1") == []  # nothing ended yet
    lifecycle.apply(store, "s", lambda r: lifecycle.end(r, outcome()))
    [told] = notices.take(home, "parent-1")
    assert (told["name"], told["status"], told["cost_usd"]) == ("s", "completed", 0.25)
    lifecycle.apply(store, "s", lifecycle.finish)  # ended already: no second notice
    assert notices.take(home, "parent-1") == []
    # The store alone tells nobody: the notice is the transition's.
    store.update("s", lambda r: setattr(r, "status", Status.RUNNING))
    store.update("s", lambda r: setattr(r, "status", Status.FAILED))
    assert notices.take(home, "parent-1") == []


def test_the_live_tally_and_the_processes_belong_to_a_running_exchange() -> None:
    record = running()
    lifecycle.temp_folder(record, "/tmp/cms-s-1")
    lifecycle.child(record, 5151, 9)
    assert lifecycle.tally(record, 0.05, 3, 1, "Bash: ls", True)
    assert (record.cost_usd, record.turns, record.denials) == (0.05, 3, 1)
    assert record.last_activity == "Bash: ls" and record.has_conversation
    lifecycle.end(record, outcome())
    assert (record.temp_dir, record.child_pid) == (None, None)
    assert not lifecycle.tally(record, 9.0, 9, 9, None, False) and record.cost_usd == 0.25
    with pytest.raises(WrongState):
        lifecycle.child(record, 1, 1)
    with pytest.raises(WrongState):
        lifecycle.temp_folder(record, "/tmp/x")


#: Where a record is changed outside the lifecycle: ``cms continue`` (its budget) and
#: ``cms merge`` (the merged commit), the fields lifecycle's docstring lists.
OUTSIDE_LIFECYCLE = {
    ("cms/ops/turns.py", "continue_task"),
    ("cms/ops/worktrees.py", "merge_session"),
}


def test_records_change_outside_the_lifecycle_only_in_fields_no_transition_owns() -> None:
    repo = Path(__file__).resolve().parent.parent
    found = set()
    for path in sorted((repo / "cms").rglob("*.py")):
        rel = str(path.relative_to(repo))
        if rel in ("cms/engine/lifecycle.py", "cms/engine/store.py"):
            continue
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef):
                continue
            for node in ast.walk(function):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in ("update", "save")
                        and ast.unparse(node.func.value).endswith("store")):  # fmt: skip
                    found.add((rel, function.name))
    assert found == OUTSIDE_LIFECYCLE
    # And lifecycle's docstring names those fields.
    doc = lifecycle.__doc__ or ""
    for owned in ("max_cost_usd", "max_turns", "merged_commit"):
        assert f"``{owned}``" in doc
