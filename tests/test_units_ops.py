"""The operations alone, in this process: input checks (cms.ops.checks), nested
delegation (cms.ops.nesting), the starters (cms.ops.turns) on sessions with no
exchange yet, and the reports (cms.ops.reports). A ``claude`` that only knows its
version stands in where a start looks for one; no exchange runs here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cms import ops
from cms.base.errors import BadInput, BudgetExhausted, CmsError, NotFound, WrongState
from cms.engine.models import Limits, Preset, ProjectConfig, SessionRecord, Status
from cms.ops import checks, nesting


@pytest.fixture
def api(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ops.Project:
    claude = tmp_path / "bin" / "claude"
    claude.parent.mkdir()
    claude.write_text("#!/bin/sh\necho '2.1.332 (Claude Code)'\n")
    claude.chmod(0o755)
    monkeypatch.setenv("CMS_CLAUDE_BIN", str(claude))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-a-real-key")  # signed in
    project_ = ops.open_project(project, dict(os.environ))
    project_.store.ensure_dirs()
    return project_


def _state(home: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(home.rglob("*.toml"))}


# -- checks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: checks.check_cost(0), "greater than 0"),
        (lambda: checks.check_cost(float("nan")), "finite amount"),
        (lambda: checks.check_cost(1e6), "surely a typo"),
        (lambda: checks.check_turns(0), "whole number from 1"),
        (lambda: checks.check_turns(True), "whole number"),  # type: ignore[arg-type]
        (lambda: checks.check_timeout(8 * 86400), "at most a week"),
        (lambda: checks.check_preset("yolo"), "choose one of read-only, review"),
        (lambda: checks.check_model("a b"), "invalid --model"),
        (lambda: checks.check_name("../x"), "invalid session name '../x'"),
        (lambda: checks.make_options({"colour": "red"}), "unknown option 'colour'"),
        (lambda: checks.make_options({"max_cost_usd": "lots"}), "invalid --max-cost 'lots'"),
        (lambda: checks.split_names([3]), "give session names"),  # type: ignore[list-item]
    ],
)
def test_bad_input_is_one_line_with_exit_2(call: object, message: str) -> None:
    with pytest.raises(BadInput) as refused:
        call()  # type: ignore[operator]
    assert message in refused.value.message and refused.value.exit_code == 2
    assert "\n" not in refused.value.message


def test_good_input_comes_back_as_its_type() -> None:
    assert checks.check_cost(2) == 2.0 and checks.check_turns(5) == 5
    assert checks.check_preset("plan") is Preset.PLAN and checks.check_preset(None) is None
    options = checks.make_options({"max_cost_usd": "1.5", "max_turns": "3", "after": "a, b,a",
                                   "worktree": 1, "preset": None})  # fmt: skip
    assert (options.max_cost_usd, options.max_turns, options.worktree) == (1.5, 3, True)
    assert options.after == ["a", "b"] and options.preset is None
    assert checks.name_from_task("Fix the login bug!", ["fix-the-login-bug"]) == (
        "fix-the-login-bug-2")  # fmt: skip
    assert checks.name_from_task("¿¿??", []) == "task"


# -- nesting -------------------------------------------------------------------------


def test_a_childs_sessions_never_widen(api: ops.Project) -> None:
    caller = SessionRecord(name="boss", preset=Preset.REVIEW, max_cost_usd=1.0, cost_usd=0.2,
                           max_turns=10, turns=4, depth=1)  # fmt: skip
    api.store.create(caller)
    api.store.create(SessionRecord(name="kid", parent="boss", max_cost_usd=0.3))
    assert nesting.budget_left(api, caller, exclude=None) == pytest.approx(0.5)
    # Not asked: narrowed to the caller's; asked for more: refused.
    assert nesting.nested_limits(api, caller, Preset.EDIT, False, None, None) == (
        Preset.REVIEW, 0.5, 6)  # fmt: skip
    with pytest.raises(BadInput, match="wider preset"):
        nesting.nested_limits(api, caller, Preset.EDIT, True, None, None)
    with pytest.raises(BudgetExhausted, match=r"has \$0.5000 of its budget left"):
        nesting.nested_limits(api, caller, Preset.PLAN, True, 0.6, None)
    with pytest.raises(BudgetExhausted, match="has 6 turns left"):
        nesting.nested_limits(api, caller, Preset.PLAN, True, None, 7)
    with pytest.raises(BadInput, match="nesting depth 2, the project's maximum"):
        nesting.check_depth(caller.model_copy(update={"depth": 2}), ProjectConfig())
    assert nesting.new_depth(caller) == 2 and nesting.new_depth(None) == 1


def test_a_child_steers_only_its_own_sessions(api: ops.Project) -> None:
    api.store.create(SessionRecord(name="boss"))
    api.store.create(SessionRecord(name="kid", parent="boss"))
    api.store.create(SessionRecord(name="grandkid", parent="kid"))
    api.store.create(SessionRecord(name="stranger"))
    boss = api.store.load("boss")
    nesting.owned_by(api, boss, api.store.load("grandkid"))
    with pytest.raises(WrongState, match="was not started by 'boss'"):
        nesting.owned_by(api, boss, api.store.load("stranger"))
    inside = ops.Project(api.paths, api.store, {**api.env, "CMS_SESSION": "boss"})
    assert nesting.calling_session(inside) == boss
    with pytest.raises(BadInput, match="not a session name"):
        nesting.calling_session(ops.Project(api.paths, api.store, {"CMS_SESSION": "../x"}))
    with pytest.raises(WrongState, match="must not change the project's limits"):
        ops.project_budget(inside, max_cost_usd=5.0)


# -- the starters ---------------------------------------------------------------------


def test_spawn_takes_the_projects_defaults_and_a_child_narrows_them(api: ops.Project) -> None:
    api.store.update_project(lambda c: c.model_copy(update={"defaults": c.defaults.model_copy(
        update={"preset": Preset.PLAN, "max_turns": 7})}))  # fmt: skip
    record = ops.spawn_session(api, None, "Write the docs", ops.Options(sandbox=False))
    assert (record.name, record.status, record.preset, record.max_turns) == (
        "write-the-docs", Status.COMPLETED, Preset.PLAN, 7)  # fmt: skip
    assert record.depth == 1 and record.parent is None and record.exchanges == 0
    inside = ops.Project(api.paths, api.store, {**api.env, "CMS_SESSION": "write-the-docs"})
    kid = ops.spawn_session(inside, "kid", "help", ops.Options(sandbox=False, max_turns=3))
    assert (kid.parent, kid.depth, kid.preset, kid.max_turns) == (
        "write-the-docs", 2, Preset.PLAN, 3)  # fmt: skip


def test_a_refused_start_changes_nothing(api: ops.Project, cms_home: Path) -> None:
    ops.spawn_session(api, "a", "first", ops.Options(sandbox=False))
    api.store.update_project(lambda c: ProjectConfig(limits=Limits(max_cost_usd=0.1)))
    api.store.update("a", lambda r: setattr(r, "cost_usd", 0.2))
    before = _state(cms_home)
    refusals = {
        "spawn": lambda: ops.spawn_session(api, "b", "x", ops.Options(sandbox=False)),
        "send": lambda: ops.send_message(api, "a", "more"),
        "continue": lambda: ops.continue_task(api, "a", "more", add_cost_usd=1.0),
        "after-cycle": lambda: ops.spawn_session(api, "c", "x", ops.Options(after=["c"]), "go"),
        "after-unknown": lambda: ops.spawn_session(api, "c", "x", ops.Options(after=["z"]), "go"),
        "fork-missing": lambda: ops.fork_session(api, "nope", "d"),
        "empty": lambda: ops.delegate(api, "  ", None, ops.Options()),
    }
    for what, start in refusals.items():
        with pytest.raises(CmsError) as refused:
            start()
        assert refused.value.exit_code == 2, what
    assert _state(cms_home) == before
    with pytest.raises(BudgetExhausted, match="the project has spent"):
        ops.send_message(api, "a", "more")
    with pytest.raises(NotFound):
        ops.send_message(api, "zz", "more")


def test_send_refuses_the_states_it_does_not_start_from(api: ops.Project) -> None:
    hints = {Status.RUNNING: "cms wait", Status.QUEUED: "cms abort",
             Status.FINISHED: "cms resume", Status.INTERRUPTED: "cms resume"}  # fmt: skip
    for status, hint in hints.items():
        api.store.create(SessionRecord(name=status.value, status=status))
        with pytest.raises(WrongState, match=hint):
            ops.send_message(api, status.value, "hello")


# -- reports --------------------------------------------------------------------------


def test_cost_report_groups_and_budget_checks_its_input(api: ops.Project) -> None:
    api.store.create(SessionRecord(name="a", model="opus", cost_usd=0.5, settled_cost_usd=0.5))
    api.store.create(SessionRecord(name="b", model="opus", cost_usd=0.25, settled_cost_usd=0.25))
    api.store.create(SessionRecord(name="c", cost_usd=0.125, settled_cost_usd=0.125))
    by_model = ops.cost_report(api, "model")
    assert {r.key: (r.cost_usd, r.sessions) for r in by_model.rows} == {
        "opus": (0.75, 2), "default": (0.125, 1)}  # fmt: skip
    with pytest.raises(BadInput, match="unknown --by"):
        ops.cost_report(api, "colour")
    report = ops.project_budget(api, max_cost_usd=2.0, max_parallel=2)
    assert (report.limits.max_cost_usd, report.limits.max_parallel) == (2.0, 2)
    assert report.spent_usd == pytest.approx(0.875)
    with pytest.raises(BadInput):
        ops.project_budget(api, max_parallel=0)
    assert ops.project_budget(api).limits.max_parallel == 2
