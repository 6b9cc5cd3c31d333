"""What Claude Code's models cost, per million tokens: the price table that ships with
cms, and the price of one assistant message's ``usage``.

The table is dated (:data:`PRICED_ON`): prices change, and a cap read against an old
table is off by the change. A model the table does not know is priced at the highest
rate of each kind it does know, so a cap is never passed unseen, and ``cms cost`` names
the model. Names match exactly, or by their longest known prefix, so a dated name
(``claude-sonnet-4-5-20250929``) takes its family's price.

Standard library only: the budget hooks price every new message on the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

#: The day these prices were read (what Claude Code 2.1.332 charges in
#: ``total_cost_usd`` for the same usage).
PRICED_ON = "2026-11-26"

#: USD per million tokens: input, output, cache write (5 minutes), cache write (1 hour),
#: cache read.
PRICES: Mapping[str, tuple[float, float, float, float, float]] = {
    "claude-opus-5-5": (4.0, 20.0, 5.0, 8.0, 0.2),
    "claude-opus-4-5": (5.0, 25.0, 6.25, 10.0, 0.5),
    "claude-opus-4-1": (15.0, 75.0, 18.75, 30.0, 1.5),
    "claude-opus-4": (15.0, 75.0, 18.75, 30.0, 1.5),
    "claude-sonnet-5-5": (2.0, 10.0, 2.5, 4.0, 0.1),
    "claude-sonnet-4-6": (3.0, 15.0, 3.75, 6.0, 0.3),
    "claude-sonnet-4-5": (3.0, 15.0, 3.75, 6.0, 0.3),
    "claude-sonnet-4": (3.0, 15.0, 3.75, 6.0, 0.3),
    "claude-3-7-sonnet": (3.0, 15.0, 3.75, 6.0, 0.3),
    "claude-haiku-5-5": (0.5, 0.5, 0.625, 1.0, 0.05),
    "claude-haiku-4-5": (1.0, 5.0, 1.25, 2.0, 0.1),
    "claude-3-5-haiku": (0.8, 4.0, 1.0, 1.6, 0.08),
}

#: What a model missing from the table is charged: the highest known rate of each kind.
HIGHEST: tuple[float, float, float, float, float] = (
    max(p[0] for p in PRICES.values()),
    max(p[1] for p in PRICES.values()),
    max(p[2] for p in PRICES.values()),
    max(p[3] for p in PRICES.values()),
    max(p[4] for p in PRICES.values()),
)


def rates(model: str) -> tuple[tuple[float, float, float, float, float], bool]:
    """The model's rates and whether the table knows it (else :data:`HIGHEST`)."""
    found = PRICES.get(model)
    if found is not None:
        return found, True
    best = ""
    for name in PRICES:
        if model.startswith(name + "-") and len(name) > len(best):
            best = name
    if best:
        return PRICES[best], True
    return HIGHEST, False


def _tokens(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def usage_cost(model: str, usage: Mapping[str, Any]) -> tuple[float, bool]:
    """The price of one message's ``usage`` (input, output, both kinds of cache writes,
    cache reads) and whether its model is in the table. Cache writes are split by
    ``cache_creation`` when the usage carries it; what it does not place is priced as
    a 5-minute write, the API's default."""
    (p_in, p_out, p_5m, p_1h, p_read), known = rates(model)
    written = _tokens(usage, "cache_creation_input_tokens")
    split = usage.get("cache_creation")
    hour = five = 0
    if isinstance(split, Mapping):
        hour = _tokens(split, "ephemeral_1h_input_tokens")
        five = _tokens(split, "ephemeral_5m_input_tokens")
    five += max(written - hour - five, 0)
    total = (
        _tokens(usage, "input_tokens") * p_in
        + _tokens(usage, "output_tokens") * p_out
        + five * p_5m
        + hour * p_1h
        + _tokens(usage, "cache_read_input_tokens") * p_read
    )
    return total / 1_000_000, known
