"""One judgement of "may this exchange start or go on?" (cms.policy.budget.judge): the
child's hook, the supervisor and the starters, fed the same records, give the same
answer with the same message."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from cms.base.errors import BudgetExhausted, EnvironmentProblem
from cms.engine.models import Limits, ProjectConfig, SessionRecord, Status
from cms.engine.supervisor import Supervisor
from cms.hooks import child
from cms.ops import open_project, send_message
from cms.policy import budget

NAME = "worker"

#: name -> (the worker's record fields, the other session's spend, the project's cap,
#: the message all three give; None: all three let it go on).
CASES: dict[str, tuple[dict[str, Any], float, float | None, str | None]] = {
    "within its limits": ({"cost_usd": 0.2, "max_cost_usd": 1.0, "turns": 2, "max_turns": 5},
                          0.1, 5.0, None),
    "budget spent": ({"cost_usd": 0.5, "max_cost_usd": 0.5}, 0.0, None,
                     "session 'worker' has spent $0.5000 of its $0.5000 budget"),
    "turns past": ({"turns": 6, "max_turns": 5}, 0.0, None,
                   "session 'worker' has used 6 of its 5 turns"),
    "project cap": ({"cost_usd": 0.3}, 0.3, 0.5,
                    "the project has spent $0.6000 of its $0.5000 cap over all sessions"),
}  # fmt: skip


def _setup(project: Path, fields: dict[str, Any], other: float, cap: float | None) -> Any:
    api = open_project(project, dict(os.environ))
    api.store.ensure_dirs()
    spend = {k: fields[k] for k in ("cost_usd", "turns") if k in fields}
    settled = {f"settled_{k}": v for k, v in spend.items()}
    record = SessionRecord(name=NAME, status=Status.COMPLETED, sandbox=False, cwd=str(project),
                           **fields, **settled)  # fmt: skip
    api.store.create(record)
    api.store.create(SessionRecord(name="other", status=Status.COMPLETED, cost_usd=other,
                                   settled_cost_usd=other))  # fmt: skip
    api.store.update_project(lambda c: ProjectConfig(limits=Limits(max_cost_usd=cap)))
    return api


def _hook(project: Path) -> str:
    call = {"tool_name": "Read", "tool_input": {"file_path": str(project / "README.md")},
            "cwd": str(project), "hook_event_name": "PreToolUse"}  # fmt: skip
    env = {**os.environ, "CMS_SESSION": NAME, "CMS_PROJECT": str(project)}
    out = child.pre_tool_use(json.dumps(call).encode(), env)
    return json.loads(out)["hookSpecificOutput"]["permissionDecisionReason"] if out else ""


@pytest.mark.parametrize("case", list(CASES))
def test_the_hook_the_supervisor_and_the_starters_judge_alike(
    case: str, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fields, other, cap, message = CASES[case]
    api = _setup(project, fields, other, cap)
    # Every starter: no claude here, so a start that the judgement lets through stops
    # at the next step of the pipeline (exit 3), one it refuses at the judgement.
    monkeypatch.setenv("CMS_CLAUDE_BIN", str(project / "no-claude"))
    monkeypatch.setenv("PATH", "/nonexistent")
    api = open_project(project, dict(os.environ))
    with pytest.raises((BudgetExhausted, EnvironmentProblem)) as refused:
        send_message(api, NAME, "go on")
    # The supervisor, going on with a running exchange of that record.
    supervisor = Supervisor(api.paths, NAME)
    stop = supervisor._check_limits()
    # The hook, before a tool call of that exchange.
    denied = _hook(project)
    if message is None:
        assert isinstance(refused.value, EnvironmentProblem)
        assert stop is None and denied == ""
        return
    assert isinstance(refused.value, BudgetExhausted)
    assert refused.value.message.startswith(message + "; raise ")
    assert stop is not None and stop.error == message
    assert stop.status is (Status.TURNS_EXCEEDED if "turns" in case else Status.COST_EXCEEDED)
    assert denied == f"cms: {message}; stopping"


def test_starting_and_going_on_differ_only_where_claude_code_or_a_new_deadline_decides() -> None:
    at_limit = {"turns": 5, "max_turns": 5, "deadline": 100.0, "status": "aborted"}
    going = budget.judge(NAME, at_limit, now=200.0, starting=False)
    assert going is not None and going.reason == budget.ABORTED
    assert going.for_child() == "cms: session 'worker' was aborted; stop now and end your turn"
    del at_limit["status"]
    going = budget.judge(NAME, at_limit, now=200.0, starting=False)
    assert going is not None and going.reason == budget.DEADLINE
    assert "past its deadline" in going.message and "ran out 100s ago" in going.message
    starting = budget.judge(NAME, at_limit, now=200.0, starting=True)
    assert starting is not None and starting.reason == budget.SESSION_TURNS
    assert budget.judge(NAME, {"turns": 4, "max_turns": 5, "deadline": 100.0}, now=200.0,
                        starting=True) is None  # fmt: skip


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "lots", True])
def test_a_limit_that_is_not_a_number_is_unreadable(value: object) -> None:
    with pytest.raises(budget.Unreadable, match="max_cost_usd"):
        budget.judge(NAME, {"max_cost_usd": value}, now=0.0, starting=False)
