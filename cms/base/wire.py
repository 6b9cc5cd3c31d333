"""Wire formats of Claude Code's stream-json output, as TypedDicts.

Only the fields cms reads are declared (``total=False``): the CLI adds fields between
versions and cms must read what it knows and ignore the rest.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict


class Usage(TypedDict, total=False):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int


class ContentBlock(TypedDict, total=False):
    type: str
    text: str
    name: str
    id: str
    input: dict[str, Any]
    tool_use_id: str
    content: Any
    is_error: bool


class Message(TypedDict, total=False):
    id: str
    role: str
    model: str
    content: list[ContentBlock]
    usage: Usage


class AssistantEvent(TypedDict, total=False):
    type: Literal["assistant"]
    message: Message
    session_id: str
    parent_tool_use_id: str | None


ResultSubtype = Literal[
    "success", "error_max_turns", "error_max_budget_usd", "error_during_execution"
]


class ResultEvent(TypedDict, total=False):
    type: Literal["result"]
    subtype: str
    is_error: bool
    result: str
    errors: list[str]
    session_id: str
    total_cost_usd: float
    num_turns: int
    usage: Usage
    api_error_status: int | None
    permission_denials: list[dict[str, Any]]
