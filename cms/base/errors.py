"""The one exception type of cms and its exit codes.

Every failure the user should see is a :class:`CmsError` carrying a one-line message
and the exit status of docs/DESIGN.md; it is raised anywhere below and rendered only at the
edge (the CLI prints it, the MCP server turns it into a tool error). Subclasses exist so
callers can branch on *why* without matching strings.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_TASK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_ENVIRONMENT = 3


class CmsError(Exception):
    """A failure with a one-line message for the user and an exit status."""

    exit_code: int = EXIT_BAD_INPUT

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message.strip().replace("\n", " ")
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class BadInput(CmsError):
    """Invalid name, budget, option or value given by the user (exit 2)."""

    exit_code = EXIT_BAD_INPUT


class NotFound(BadInput):
    """The named session does not exist in this project (exit 2)."""


class WrongState(BadInput):
    """The session exists but cannot do this now (exit 2), e.g. send while running."""


class BudgetExhausted(BadInput):
    """A session's or the project's budget forbids starting a turn (exit 2)."""


class EnvironmentProblem(CmsError):
    """claude missing or not runnable, state directory unusable (exit 3)."""

    exit_code = EXIT_ENVIRONMENT


class CorruptRecord(CmsError):
    """A state file that cannot be parsed or has an unknown schema (exit 2)."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"cannot read {path}: {why}; fix or delete that file")
        self.path = path
        self.why = why
