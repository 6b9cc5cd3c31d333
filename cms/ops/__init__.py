"""Every cms operation, as plain functions over typed records: the one API that the
CLI, the MCP server and the slash commands call, and that never prints.

Failures are :class:`cms.base.errors.CmsError` with the message and exit code of the
contract (README.md, docs/DESIGN.md), raised before anything is changed: a refused
command leaves state as it was. The modules below hold the work by job; this package
names what callers use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from cms.ops.doctor import (
        Check,
        doctor,
    )
    from cms.ops.project import (
        Project,
        open_project,
    )
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
    from cms.ops.worktrees import (
        diff_session,
        merge_session,
    )

#: Where each name of the API lives. The modules are imported when a name is first
#: used, not with the package: a command loads the operations it runs (``cms delegate``
#: does not load doctor, reports, the Docker engine), which is part of a delegation's
#: fixed cost (README, Performance).
_WHERE = {
    "BudgetReport": "cms.ops.reports",
    "Check": "cms.ops.doctor",
    "CostReport": "cms.ops.reports",
    "CostRow": "cms.ops.reports",
    "Deleted": "cms.ops.sessions",
    "Options": "cms.ops.checks",
    "Overview": "cms.ops.reports",
    "Project": "cms.ops.project",
    "SandboxReport": "cms.ops.reports",
    "SessionList": "cms.ops.sessions",
    "abort_session": "cms.ops.sessions",
    "all_successful": "cms.ops.sessions",
    "check_cost": "cms.ops.checks",
    "check_name": "cms.ops.checks",
    "check_preset": "cms.ops.checks",
    "check_timeout": "cms.ops.checks",
    "check_turns": "cms.ops.checks",
    "continue_task": "cms.ops.turns",
    "cost_report": "cms.ops.reports",
    "delegate": "cms.ops.turns",
    "delete_session": "cms.ops.sessions",
    "diff_session": "cms.ops.worktrees",
    "doctor": "cms.ops.doctor",
    "finish_session": "cms.ops.sessions",
    "fork_session": "cms.ops.turns",
    "get_session": "cms.ops.sessions",
    "list_sessions": "cms.ops.sessions",
    "make_options": "cms.ops.checks",
    "merge_session": "cms.ops.worktrees",
    "name_from_task": "cms.ops.checks",
    "open_project": "cms.ops.project",
    "overview": "cms.ops.reports",
    "overviews": "cms.ops.reports",
    "predecessors": "cms.ops.sessions",
    "project_budget": "cms.ops.reports",
    "read_log": "cms.ops.sessions",
    "reconcile": "cms.ops.sessions",
    "resume_session": "cms.ops.turns",
    "run_and_wait": "cms.ops.turns",
    "sandbox_settings": "cms.ops.reports",
    "send_message": "cms.ops.turns",
    "spawn_session": "cms.ops.turns",
    "wait_sessions": "cms.ops.sessions",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'cms.ops' has no attribute {name!r}")
    found = getattr(importlib.import_module(module), name)
    globals()[name] = found
    return found


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
