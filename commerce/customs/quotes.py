"""Landed cost of a quote: its lines, the products' HS codes, the destination's rates, FX."""

from __future__ import annotations

from typing import Any

from commerce import fx as fx_table
from commerce import money
from commerce.customs.errors import CustomsInvalidError, CustomsNotFoundError
from commerce.customs.landed_cost import Costs, Fx, Goods, LandedCost, landed_costs
from commerce.customs.tariffs import RATES_SQL, rate_of_row


async def quote_landed_cost(
    conn: Any,
    quote_id: str,
    *,
    costs: Costs,
    destination: str | None,
    currency: str | None,
) -> tuple[str, list[LandedCost]]:
    """(destination, landed cost under EXW/FOB/CIF/DAP/DDP) of the quote's goods, in
    ``currency`` (default: the quote's) into ``destination`` (default: the buyer's country)."""
    cur = await conn.execute(
        "SELECT q.currency, o.country FROM quotes q JOIN organisations o ON o.org_id = q.buyer_org"
        " WHERE q.quote_id = %s",
        (quote_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise CustomsNotFoundError(f"quote {quote_id} not found")
    quote_currency, buyer_country = row
    dest = destination or buyer_country
    if not dest:
        raise CustomsInvalidError("the buyer has no country on record; name the destination")
    target = currency or quote_currency
    money.exponent(target)
    cur = await conn.execute(
        "SELECT l.gtin, p.hs_code, l.quantity, l.unit_price_minor FROM quote_lines l"
        " JOIN products p USING (gtin) WHERE l.quote_id = %s ORDER BY l.line_no",
        (quote_id,),
    )
    rows = await cur.fetchall()
    unclassified = sorted({g for g, hs, _, _ in rows if hs is None})
    if unclassified:
        raise CustomsInvalidError(f"products {unclassified} have no HS code yet")
    goods = [Goods(g, hs, q, p) for g, hs, q, p in rows]
    cur = await conn.execute(RATES_SQL, (dest, sorted({g.hs6 for g in goods})))
    rates = {r.hs6: r for r in map(rate_of_row, await cur.fetchall())}
    fx = Fx(quote_currency, target)
    if target != quote_currency:
        cur = await conn.execute(fx_table.LATEST_SQL, (quote_currency, target))
        found = await cur.fetchone()
        if found is None:
            raise CustomsInvalidError(f"no FX rate {quote_currency}->{target} recorded")
        rate = fx_table.rate_from_row(found)
        fx = Fx(quote_currency, target, rate.rate, f"{rate.source}, {rate.observed_at.isoformat()}")
    return dest, landed_costs(goods, costs, rates, fx, dest)


async def classify(
    conn: Any, *, gtin: str, hs_code: str | None, lot: str | None, origin_country: str | None
) -> None:
    """Set a product's HS subheading and/or a lot's country of origin (the caller commits)."""
    if hs_code is not None:
        cur = await conn.execute(
            "UPDATE products SET hs_code = %s WHERE gtin = %s RETURNING gtin", (hs_code, gtin)
        )
        if await cur.fetchone() is None:
            raise CustomsNotFoundError(f"product {gtin} not found")
    if origin_country is not None:
        if lot is None:
            raise CustomsInvalidError("origin_country is a lot's: name the lot")
        cur = await conn.execute(
            "UPDATE lots SET origin_country = %s WHERE gtin = %s AND lot = %s RETURNING lot",
            (origin_country, gtin, lot),
        )
        if await cur.fetchone() is None:
            raise CustomsNotFoundError(f"lot {gtin}/{lot} not found")
