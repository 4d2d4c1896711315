"""The FX rate table: observed rates with their source and time; the latest one is used."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from commerce.errors import CommerceInvalidError
from commerce.money import MINOR_UNITS


@dataclass(frozen=True)
class Rate:
    """1 base = rate quote, observed at ``observed_at`` from ``source`` (row fx_id)."""

    fx_id: int
    base: str
    quote: str
    rate: Decimal
    source: str
    observed_at: datetime


def check_pair(base: str, quote: str) -> None:
    for code in (base, quote):
        if code not in MINOR_UNITS:
            raise CommerceInvalidError(
                f"unsupported currency {code!r}; supported: {sorted(MINOR_UNITS)}"
            )
    if base == quote:
        raise CommerceInvalidError("an FX rate needs two different currencies")


async def add_rate(
    conn: Any, base: str, quote: str, rate: Decimal, source: str, observed_at: datetime
) -> int:
    """Record an observed rate; returns its fx_id."""
    check_pair(base, quote)
    if not rate.is_finite() or rate <= 0:
        raise CommerceInvalidError("rate must be a positive decimal")
    cur = await conn.execute(
        "INSERT INTO fx_rates (base, quote, rate, source, observed_at)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING fx_id",
        (base, quote, rate, source, observed_at),
    )
    row = await cur.fetchone()
    return int(row[0])


LATEST_SQL = (
    "SELECT fx_id, base, quote, rate, source, observed_at FROM fx_rates"
    " WHERE base = %s AND quote = %s ORDER BY observed_at DESC, fx_id DESC LIMIT 1"
)


def rate_from_row(row: Any) -> Rate:
    return Rate(int(row[0]), row[1], row[2], Decimal(row[3]), row[4], row[5])
