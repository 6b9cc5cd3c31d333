"""The words cms and its records share, in the standard library alone.

The hook path (every tool call of every child) reads records with :mod:`tomllib` and
cannot import the pydantic models, so what both sides must agree on lives here.
"""

from __future__ import annotations


def usd(amount: float | None) -> str:
    """Money as cms shows it everywhere: four decimals below $1 (child turns are often
    cents), else two with thousands separated; "-" for none."""
    if amount is None:
        return "-"
    return f"${amount:.4f}" if amount < 1 else f"${amount:,.2f}"
