"""Every cms operation, as plain functions over typed records: the one API that the
CLI, the MCP server and the slash commands call, and that never prints.

Failures are :class:`cms.base.errors.CmsError` with the message and exit code of the
contract (README.md, docs/DESIGN.md), raised before anything is changed: a refused
command leaves state as it was. The modules below hold the work by job; this package
names what callers use.
"""

from __future__ import annotations

from cms.ops.checks import (
    Options,
    check_cost,
    check_name,
    check_preset,
    check_timeout,
    check_turns,
    make_options,
    name_from_task,
)
from cms.ops.doctor import Check, doctor
from cms.ops.project import Project, open_project
from cms.ops.reports import (
    BudgetReport,
    CostReport,
    CostRow,
    Overview,
    SandboxReport,
    cost_report,
    overview,
    overviews,
    project_budget,
    sandbox_settings,
)
from cms.ops.sessions import (
    Deleted,
    SessionList,
    abort_session,
    all_successful,
    delete_session,
    finish_session,
    get_session,
    list_sessions,
    predecessors,
    read_log,
    reconcile,
    wait_sessions,
)
from cms.ops.turns import (
    continue_task,
    delegate,
    fork_session,
    resume_session,
    run_and_wait,
    send_message,
    spawn_session,
)
from cms.ops.worktrees import diff_session, merge_session

__all__ = [
    "BudgetReport", "Check", "CostReport", "CostRow", "Deleted", "Options", "Overview",
    "Project", "SandboxReport", "SessionList", "abort_session", "all_successful",
    "check_cost", "check_name", "check_preset", "check_timeout", "check_turns",
    "continue_task", "cost_report", "delegate", "delete_session", "diff_session", "doctor",
    "finish_session", "fork_session", "get_session", "list_sessions", "make_options",
    "merge_session", "name_from_task", "open_project", "overview", "overviews", "predecessors",
    "project_budget", "read_log", "reconcile", "resume_session", "run_and_wait", "sandbox_settings",
    "send_message", "spawn_session", "wait_sessions",
]  # fmt: skip
