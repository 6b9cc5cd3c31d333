"""What the project spends and allows: the cost report, the project's limits, its
network allowlist, and the overview ``cms watch`` draws."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cms.base.errors import (
    BadInput,
)
from cms.engine import sandboxprobe
from cms.engine.models import (
    Limits,
    ProjectConfig,
    SessionRecord,
    spend,
)
from cms.hooks.prices import PRICED_ON
from cms.ops.checks import check_cost
from cms.ops.nesting import refuse_in_child
from cms.ops.project import Project
from cms.ops.sessions import RECONCILE_EVERY_S, kick_queue, list_sessions, reconcile
from cms.ops.spending import (
    CAP_OPTIONS,
    CapsReport,
    apply_caps,
    caps_report,
    claude_rows,
    claude_spend,
    parse_cap,
)
from cms.policy import sandbox


@dataclass
class CostRow:
    key: str
    cost_usd: float
    sessions: int
    #: ``cms``: cms's sessions; ``claude``: the user's own Claude Code sessions and
    #: subagents, read from their transcripts.
    kind: str = "cms"


@dataclass
class CostReport:
    total_cost_usd: float
    by: str
    rows: list[CostRow]
    cap_usd: float | None
    #: Models missing from the price table, priced at its highest rate.
    unknown_models: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "total_cost_usd": round(self.total_cost_usd, 6),
            "by": self.by,
            "cap_usd": self.cap_usd,
            "rows": [
                {
                    "key": r.key,
                    "cost_usd": round(r.cost_usd, 6),
                    "sessions": r.sessions,
                    "kind": r.kind,
                }
                for r in self.rows
            ],
            "unknown_models": self.unknown_models,
            "prices_dated": PRICED_ON,
        }


def cost_report(project: Project, by: str = "session") -> CostReport:
    if by not in ("session", "model", "day", "agent"):
        raise BadInput(f"unknown --by {by!r}: choose session, model, day or agent")
    records = list_sessions(project).sessions
    groups: dict[tuple[str, str], CostRow] = {}

    def add(key: str, cost: float, kind: str = "cms", sessions: int = 1) -> None:
        row = groups.setdefault((kind, key), CostRow(key, 0.0, 0, kind))
        row.cost_usd += cost
        row.sessions += sessions

    for r in records:
        if by == "session":
            key = r.name
        elif by == "model":
            key = r.model or "default"
        elif by == "agent":
            key = "(cms sessions)"
        else:
            key = (r.ended_at or r.updated_at).astimezone().date().isoformat()
        add(key, r.cost_usd)
    found = claude_spend(project, {r.session_id for r in records if r.session_id})
    claude_rows(found, by, add)
    rows = sorted(groups.values(), key=lambda row: (-row.cost_usd, row.key))
    if by == "day":
        rows.sort(key=lambda row: row.key)
    cap = project.store.load_project().limits.max_cost_usd
    total = spend(records) + found.user_total
    return CostReport(total, by, rows, cap, found.unknown_models())


@dataclass
class BudgetReport:
    """``cms budget``: the project's limits and what it has spent."""

    limits: Limits
    spent_usd: float
    caps: CapsReport | None = None

    def as_json(self) -> dict[str, Any]:
        found = {**self.limits.model_dump(), "spent_usd": round(self.spent_usd, 6)}
        if self.caps is not None:
            found["claude_code"] = self.caps.as_json()
        return found


def project_budget(
    project: Project,
    max_cost_usd: float | None = None,
    max_parallel: int | None = None,
    max_depth: int | None = None,
    caps: Mapping[str, str | None] | None = None,
) -> BudgetReport:
    """Show the project's limits, or set those given; with the project's spend.
    ``caps``: the caps over all of Claude Code by limit key, each an amount or
    ``none`` as the user gave it (:func:`cms.ops.spending.parse_cap`)."""
    cost = check_cost(max_cost_usd, "--max-cost")
    if max_parallel is not None and (max_parallel < 1 or max_parallel > 1000):
        raise BadInput(f"invalid --max-parallel {max_parallel}: give 1 to 1000")
    if max_depth is not None and (max_depth < 0 or max_depth > 20):
        raise BadInput(f"invalid --max-depth {max_depth}: give 0 to 20")
    given = {k: parse_cap(v, CAP_OPTIONS[k]) for k, v in (caps or {}).items()}
    cap_changes = {k: v for k, v in given.items() if v is not None}
    if cost is None and max_parallel is None and max_depth is None and not cap_changes:
        config = project.store.load_project()
        return BudgetReport(config.limits, project.store.spend(), caps_report(project, config))
    refuse_in_child(project, "the project's limits")
    if cap_changes:
        apply_caps(project, cap_changes)

    def change(config: ProjectConfig) -> None:
        if cost is not None:
            config.limits.max_cost_usd = cost
        if max_parallel is not None:
            config.limits.max_parallel = max_parallel
        if max_depth is not None:
            config.limits.max_depth = max_depth

    config = project.store.update_project(change)
    if max_parallel is not None:
        kick_queue(project)
    return BudgetReport(config.limits, project.store.spend(), caps_report(project, config))


@dataclass
class SandboxReport:
    """``cms sandbox``: whether the sandbox runs here, and the project's network rules."""

    availability: sandboxprobe.Availability
    allowed_domains: list[str]
    denied_domains: list[str]

    def as_json(self) -> dict[str, Any]:
        return {
            "available": self.availability.ok,
            "detail": self.availability.detail,
            "fix": self.availability.fix,
            "allowed_domains": self.allowed_domains,
            "denied_domains": self.denied_domains,
        }


def sandbox_settings(
    project: Project, allow: Iterable[str] = (), deny: Iterable[str] = ()
) -> SandboxReport:
    """Show the sandbox's state here and the project's network allowlist for ``edit``
    children's commands, or change it: ``allow`` adds domains, ``deny`` takes them off
    the list and blocks them even where another setting allows them."""
    allow, deny = list(dict.fromkeys(allow)), list(dict.fromkeys(deny))
    for domain in [*allow, *deny]:
        if not sandbox.valid_domain(domain):
            raise BadInput(
                f"invalid domain {domain[:80]!r}: give a host name such as example.com "
                "or a wildcard such as *.example.com"
            )
    if set(allow) & set(deny):
        both = ", ".join(sorted(set(allow) & set(deny)))
        raise BadInput(f"{both} given to both --allow-domain and --deny-domain; choose one")
    if allow or deny:
        refuse_in_child(project, "the project's network allowlist")

        def change(config: ProjectConfig) -> None:
            rules = config.sandbox
            rules.allowed_domains = [d for d in rules.allowed_domains if d not in deny]
            rules.allowed_domains += [d for d in allow if d not in rules.allowed_domains]
            rules.denied_domains = [d for d in rules.denied_domains if d not in allow]
            rules.denied_domains += [d for d in deny if d not in rules.denied_domains]

        config = project.store.update_project(change)
    else:
        config = project.store.load_project()
    return SandboxReport(
        sandboxprobe.check(project.env),
        list(config.sandbox.allowed_domains),
        list(config.sandbox.denied_domains),
    )


@dataclass
class Overview:
    """The project at a glance (``cms watch``): its sessions and its spend."""

    project: Path
    sessions: list[SessionRecord]
    problems: list[str]
    spent_usd: float
    cap_usd: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "project": str(self.project),
            "spent_usd": round(self.spent_usd, 6),
            "cap_usd": self.cap_usd,
            "sessions": [r.public() for r in self.sessions],
            "problems": self.problems,
        }


def overview(project: Project) -> Overview:
    """Every session of the project (interrupted ones found), the spend and the cap."""
    listing = list_sessions(project)
    cap = project.store.load_project().limits.max_cost_usd
    spent = spend(listing.sessions)
    return Overview(project.directory, listing.sessions, listing.problems, spent, cap)


def overviews(project: Project, interval_s: float) -> Iterator[Overview]:
    """The overview now and then again every ``interval_s`` seconds, for as long as
    the caller reads (``cms watch --json --interval S``)."""
    last = time.monotonic()
    while True:
        yield overview(project)
        time.sleep(interval_s)
        if time.monotonic() - last >= RECONCILE_EVERY_S:  # the command's own repair
            reconcile(project)
            last = time.monotonic()
