"""May this exchange start, or go on? The one judgement over a session's record, the
project's spend and its limits, with one message per reason.

Three callers ask it and must agree: every starter in :mod:`cms.ops.turns` before an
exchange starts (``starting``), the supervisor before and while it runs one, and the
child's PreToolUse hook before every tool call (going on). The record is read as the
hook reads it, a mapping of the record's fields (TOML as :mod:`tomllib` gives it, or
a record's ``model_dump()``), so that all three read the same numbers.

The reasons, in the order they are judged: the session was aborted, its spend reached
its budget, its turns reached their limit (while going on: went past it, since Claude
Code enforces ``--max-turns`` itself and still runs the last turn's tool calls), its
turn ran past its deadline (going on only: a new exchange gets a new deadline), the
project's spend reached its cap. Each :class:`Verdict` says what happened
(:attr:`Verdict.message`) and, where the user can change it, how (:attr:`Verdict.fix`).

Standard library only: the hook imports it on every tool call.
"""

from __future__ import annotations

from cms.base import vocab

TYPE_CHECKING = False  # not typing's: the hook path does without typing (and its re)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

ABORTED = "aborted"
SESSION_BUDGET = "session_budget"
SESSION_TURNS = "session_turns"
DEADLINE = "deadline"
PROJECT_CAP = "project_cap"
#: Every reason, in the order they are judged.
REASONS = (ABORTED, SESSION_BUDGET, SESSION_TURNS, DEADLINE, PROJECT_CAP)


class Unreadable(ValueError):
    """A limit or spend in the record that is not a finite number: the hook denies,
    the others cannot get here (their records are validated)."""


class Verdict:
    """Why an exchange may not start or go on: ``reason`` (one of :data:`REASONS`),
    ``message``, and ``fix``, what the user can do about it (None: nothing but
    starting anew). A plain class: a NamedTuple would load :mod:`typing`."""

    __slots__ = ("fix", "message", "reason")

    def __init__(self, reason: str, message: str, fix: str | None = None) -> None:
        self.reason, self.message, self.fix = reason, message, fix

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Verdict) and (self.reason, self.message, self.fix) == (
            other.reason,
            other.message,
            other.fix,
        )

    def __hash__(self) -> int:
        return hash((self.reason, self.message, self.fix))

    def __repr__(self) -> str:
        return f"Verdict({self.reason!r}, {self.message!r}, {self.fix!r})"

    def for_child(self) -> str:
        """The denial the hook gives a child's tool call."""
        then = "stop now and end your turn" if self.reason == ABORTED else "stopping"
        return f"cms: {self.message}; {then}"

    def for_user(self) -> str:
        """The one line a refused start says: what happened, then what to do."""
        return f"{self.message}; {self.fix}" if self.fix else self.message


def number(data: Mapping[str, Any], key: str) -> float | None:
    """A finite number field, or None when absent (Unreadable otherwise: a budget that
    is not a number would switch the limit off)."""
    value = data.get(key)
    if value is None:
        return None
    # x - x is 0 for a finite number, NaN for inf and NaN (math.isfinite, without
    # loading math on every tool call)
    if isinstance(value, bool) or not isinstance(value, int | float) or value - value != 0:
        raise Unreadable(f"{key} = {value!r} in its record is not a finite number")
    return float(value)


def judge(
    name: str,
    record: Mapping[str, Any],
    *,
    project_spend: float | None = None,
    project_cap: float | None = None,
    now: float,
    starting: bool,
) -> Verdict | None:
    """Why session ``name`` may not start an exchange (``starting``) or go on with
    the running one; None when it may. ``project_spend`` is every session's spend
    together, this one's included as ``record`` has it."""
    who = f"session {name!r}"
    aborted = record.get("status") == "aborted" or record.get("abort_requested") is True
    if aborted and not starting:  # a new exchange of an aborted session may start
        return Verdict(ABORTED, f"{who} was aborted")
    cost, max_cost = number(record, "cost_usd") or 0.0, number(record, "max_cost_usd")
    if max_cost is not None and cost >= max_cost:
        return Verdict(
            SESSION_BUDGET,
            f"{who} has spent {vocab.usd(cost)} of its {vocab.usd(max_cost)} budget",
            f"raise it with `cms continue {name} MESSAGE --add-cost USD`",
        )
    turns, max_turns = number(record, "turns") or 0.0, number(record, "max_turns")
    if max_turns is not None and (turns >= max_turns if starting else turns > max_turns):
        return Verdict(
            SESSION_TURNS,
            f"{who} has used {turns:g} of its {max_turns:g} turns",
            f"raise them with `cms continue {name} MESSAGE --add-turns N`",
        )
    deadline = number(record, "deadline")
    if not starting and deadline is not None and now >= deadline:
        timeout = number(record, "timeout_s")
        limit = f"timeout of {timeout:g}s" if timeout else "timeout"
        return Verdict(
            DEADLINE,
            f"{who} is past its deadline (the turn's {limit} ran out {now - deadline:.0f}s ago)",
        )
    if project_cap is not None and (project_spend or 0.0) >= project_cap:
        return Verdict(
            PROJECT_CAP,
            f"the project has spent {vocab.usd(project_spend or 0.0)} of its "
            f"{vocab.usd(project_cap)} cap over all sessions",
            "raise it with `cms budget --max-cost USD`",
        )
    return None
