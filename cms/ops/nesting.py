"""Nested delegation never widens.

A session started from inside a child (by Bash, MCP or a slash command) never gets
more than the child has: a preset no wider, a budget no larger than what is left of
the child's, and its depth from the child's record. The child is named by
``CMS_SESSION`` in the caller's environment; the MCP server a child calls runs with the
environment cms gave that child, which the child's commands cannot change. A child
may steer only the sessions it started, and changes no project setting.
"""

from __future__ import annotations

from cms.base import vocab
from cms.base.errors import (
    BadInput,
    BudgetExhausted,
    CmsError,
    WrongState,
)
from cms.base.paths import valid_name
from cms.engine.models import (
    Preset,
    ProjectConfig,
    SessionRecord,
)
from cms.ops.project import Project

#: How much a preset allows, for "no wider than": read-only and plan change nothing.
_WIDTH = {Preset.READ_ONLY: 0, Preset.PLAN: 0, Preset.REVIEW: 1, Preset.EDIT: 2, Preset.FULL: 3}


def calling_session(project: Project) -> SessionRecord | None:
    """The cms session this call comes from (a child delegating), None for the user."""
    name = project.env.get("CMS_SESSION")
    if not name:
        return None
    if not valid_name(name):
        raise BadInput(f"CMS_SESSION={name[:80]!r} is not a session name; refusing to delegate")
    try:
        return project.store.load(name)
    except CmsError as exc:
        raise BadInput(
            f"this runs inside cms session {name!r}, whose record cannot be read here "
            f"({exc.message}); a child may only delegate within its own project"
        ) from None


def owned_by(project: Project, caller: SessionRecord, record: SessionRecord) -> None:
    """A child may steer only the sessions it started (and theirs)."""
    seen: set[str] = set()
    parent = record.parent
    while parent and parent not in seen:
        if parent == caller.name:
            return
        seen.add(parent)
        try:
            parent = project.store.load(parent).parent
        except CmsError:
            break
    raise WrongState(
        f"session {record.name!r} was not started by {caller.name!r}; a child may only "
        "steer the sessions it started"
    )


def check_steer(project: Project, record: SessionRecord) -> None:
    caller = calling_session(project)
    if caller is not None:
        owned_by(project, caller, record)


def budget_left(project: Project, caller: SessionRecord, exclude: str | None) -> float | None:
    """What is left of the caller's spend cap once its own spend and what its other
    sessions may spend (their caps) are taken off; None when it has no cap."""
    if caller.max_cost_usd is None:
        return None
    held = sum(
        max(r.cost_usd, r.max_cost_usd if r.max_cost_usd is not None else r.cost_usd)
        for r in project.store.list().records
        if r.parent == caller.name and r.name != exclude
    )
    return caller.max_cost_usd - caller.cost_usd - held


def nested_limits(
    project: Project,
    caller: SessionRecord,
    preset: Preset,
    explicit: bool,
    max_cost: float | None,
    max_turns: int | None,
    exclude: str | None = None,
) -> tuple[Preset, float | None, int | None]:
    """The preset and budgets of a session the caller starts, narrowed to the caller's;
    a request for more is refused with one line."""
    who = f"session {caller.name!r}"
    if _WIDTH[preset] > _WIDTH[caller.preset]:
        if explicit:
            raise BadInput(
                f"{who} runs with preset {caller.preset.value}; a session it starts may not "
                f"have a wider preset than that (asked for {preset.value})"
            )
        preset = caller.preset
    left = budget_left(project, caller, exclude)
    if left is not None:
        if left <= 0:
            raise BudgetExhausted(
                f"{who} has no budget left to give a new session "
                f"({vocab.usd(caller.cost_usd)} spent of {vocab.usd(caller.max_cost_usd or 0)}, "
                "the rest held by the sessions it started)"
            )
        if max_cost is None:
            max_cost = round(left, 6)
        elif max_cost > left + 1e-9:
            raise BudgetExhausted(
                f"{who} has {vocab.usd(left)} of its budget left; a session it starts may "
                f"spend at most that (asked for --max-cost {vocab.usd(max_cost)})"
            )
    if caller.max_turns is not None:
        turns_left = caller.max_turns - caller.turns
        if turns_left < 1:
            raise BudgetExhausted(f"{who} has no turns left to give a new session")
        if max_turns is None:
            max_turns = turns_left
        elif max_turns > turns_left:
            raise BudgetExhausted(
                f"{who} has {turns_left} turns left; a session it starts may use at most "
                f"that (asked for --max-turns {max_turns})"
            )
    return preset, max_cost, max_turns


def new_depth(caller: SessionRecord | None) -> int:
    """A new session's nesting depth: from its starter's record, never the environment."""
    return 1 if caller is None else caller.depth + 1


def check_depth(caller: SessionRecord, config: ProjectConfig) -> None:
    """A child at the project's maximum depth may not start sessions (exit 2). The
    budgets a start needs are :func:`cms.policy.budget.judge`'s."""
    depth = new_depth(caller) - 1
    if depth >= config.limits.max_depth:
        raise BadInput(
            f"session {caller.name!r} is at nesting depth {depth}, the project's maximum "
            f"(max_depth={config.limits.max_depth}); do the work here instead of delegating"
        )


def refuse_in_child(project: Project, what: str) -> None:
    name = project.env.get("CMS_SESSION")
    if name:
        raise WrongState(f"a cms child (here {name!r}) must not change {what}; ask the user")
