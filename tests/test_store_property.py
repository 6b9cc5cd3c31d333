"""A property of the store: concurrent updates from several processes serialize.

Hypothesis generates a few processes, each with its own list of operations and pauses,
and runs them against one record at once through :meth:`cms.store.Store.update`. Each
operation appends its id to the record's ``task`` (the order it was applied in) and
then changes the record in a way that depends on the order: a power of two added to
``input_tokens`` (which ops ran, each once), ``turns = 3 * turns + k`` and a float
recurrence on ``cost_usd`` (in which order), ``model`` set to its id (the last one
wins), ``has_conversation`` flipped. The final record must be exactly the record that
replaying those operations in the order ``task`` lists gives, every operation must
appear once, and each process's operations in its own order. While the processes run,
the test keeps reading the record: every state it sees must be such a replay of a
prefix, never a torn or half-applied one.
"""

from __future__ import annotations

import multiprocessing
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cms.base.paths import ProjectPaths
from cms.engine.models import SessionRecord, Status
from cms.engine.store import Store

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event

KINDS = ("add", "scale", "cost", "set", "flip")
NAME = "shared"


@dataclass(frozen=True)
class Op:
    id: int
    kind: str
    pause: float  # seconds the process waits before it applies this op


def apply(record: SessionRecord, op: Op) -> None:
    """Apply one operation to ``record`` in place (the same code in workers and replay)."""
    record.task += f"{op.id};"
    if op.kind == "add":
        record.input_tokens += 2**op.id
    elif op.kind == "scale":
        record.turns = 3 * record.turns + op.id % 3
    elif op.kind == "cost":
        record.cost_usd = record.cost_usd * 1.5 + op.id / 7
    elif op.kind == "set":
        record.model = f"m{op.id}"
    elif op.kind == "flip":
        record.has_conversation = not record.has_conversation


def initial() -> SessionRecord:
    return SessionRecord(name=NAME, task="", status=Status.RUNNING, turns=1, cost_usd=0.5)


def order_of(record: SessionRecord) -> list[int]:
    return [int(part) for part in record.task.split(";") if part]


def replay(order: list[int], ops: dict[int, Op], start: SessionRecord) -> SessionRecord:
    record = start.model_copy(deep=True)
    for op_id in order:
        apply(record, ops[op_id])
    return record


def comparable(record: SessionRecord) -> dict[str, object]:
    data = record.model_dump()
    data.pop("updated_at")
    return data


def worker(home: str, project: str, ops: list[Op], go: Event) -> None:
    store = Store(ProjectPaths.for_project(Path(project), Path(home)))
    go.wait(30)
    for op in ops:
        if op.pause:
            time.sleep(op.pause)
        store.update(NAME, lambda r, op=op: apply(r, op))


op_lists = st.lists(
    st.lists(
        st.tuples(st.sampled_from(KINDS), st.sampled_from([0.0, 0.0, 0.0005, 0.002])),
        min_size=1,
        max_size=8,
    ),
    min_size=2,
    max_size=4,
)


@pytest.mark.skipif(sys.platform != "linux", reason="uses the fork start method")
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=op_lists)
def test_concurrent_updates_equal_some_serial_order(plan: list[list[tuple[str, float]]]) -> None:
    next_id = iter(range(1000))
    per_worker = [[Op(next(next_id), kind, pause) for kind, pause in ops] for ops in plan]
    ops = {op.id: op for ops_ in per_worker for op in ops_}
    start = initial()
    ctx = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory() as tmp:
        home, project = Path(tmp) / "home", Path(tmp) / "project"
        project.mkdir()
        store = Store(ProjectPaths.for_project(project, home))
        store.create(start)
        go = ctx.Event()
        procs = [
            ctx.Process(target=worker, args=(str(home), str(project), w, go)) for w in per_worker
        ]
        for p in procs:
            p.start()
        go.set()
        # Every state a reader sees is a whole record: the replay of some prefix.
        seen = 0
        while any(p.is_alive() for p in procs) or seen == 0:
            snapshot = store.load(NAME)
            assert comparable(snapshot) == comparable(replay(order_of(snapshot), ops, start))
            seen += 1
        for p in procs:
            p.join(30)
            assert p.exitcode == 0
        final = store.load(NAME)
        assert store.list().records[0].model_dump() == final.model_dump()

    order = order_of(final)
    assert sorted(order) == sorted(ops), "an update was lost or applied twice"
    for ops_ in per_worker:  # each process's updates in the order it made them
        mine = [op.id for op in ops_]
        assert [i for i in order if i in mine] == mine
    assert final.input_tokens == sum(2**i for i, op in ops.items() if op.kind == "add")
    assert comparable(final) == comparable(replay(order, ops, start))
