"""RFQ -> quote -> order, and orders placed straight from a supplier's price list.

Placing an order is idempotent per (buyer organisation, Idempotency-Key): a resubmission,
even a concurrent one, finds the order the first submission created (``INSERT .. ON CONFLICT
DO NOTHING`` on the unique key; the loser waits on the winner's row lock, then reads it).
The settlement amount is the order total converted once at the latest FX rate, whose id,
value, source and time are stored on the order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from psycopg.types.json import Jsonb

from commerce import fx, money
from commerce.errors import CommerceForbiddenError, CommerceInvalidError, CommerceNotFoundError
from commerce.states import atransition

INCOTERMS = ("EXW", "FCA", "CPT", "CIP", "DAP", "DPU", "DDP", "FAS", "FOB", "CFR", "CIF")
_BIGINT_MAX = 2**63 - 1


@dataclass(frozen=True)
class Line:
    gtin: str
    quantity: int
    unit_price_minor: int = 0


@dataclass(frozen=True)
class Placed:
    """The order an (idempotent) placement refers to; ``created`` is False for a replay."""

    order_id: str
    created: bool


def _total(lines: list[Line]) -> int:
    total = sum(line.quantity * line.unit_price_minor for line in lines)
    if total > _BIGINT_MAX:
        raise CommerceInvalidError("order total is too large")
    return total


async def _settlement(
    conn: Any, currency: str, settlement_currency: str, total_minor: int
) -> tuple[int, fx.Rate | None]:
    if settlement_currency == currency:
        return total_minor, None
    money.exponent(settlement_currency)
    cur = await conn.execute(fx.LATEST_SQL, (currency, settlement_currency))
    row = await cur.fetchone()
    if row is None:
        raise CommerceInvalidError(f"no FX rate {currency}->{settlement_currency} recorded")
    rate = fx.rate_from_row(row)
    return money.convert(total_minor, currency, settlement_currency, rate.rate), rate


_PRICES_SQL = (
    "SELECT r.gtin, p.unit_price_minor"
    " FROM unnest(%s::text[]) AS r(gtin)"
    " LEFT JOIN price_lists p ON p.supplier_org = %s AND p.gtin = r.gtin AND p.currency = %s"
)

_INSERT_SQL = """
WITH ins AS (
    INSERT INTO orders (buyer_org, supplier_org, quote_id, idempotency_key, currency, incoterm,
                        named_place, total_minor, settlement_currency, settlement_minor, fx_id,
                        fx_rate, fx_source, fx_observed_at, hold_until_delivery, created_by)
    VALUES (%(buyer)s, %(supplier)s, %(quote)s, %(key)s, %(currency)s, %(incoterm)s, %(place)s,
            %(total)s, %(scur)s, %(stotal)s, %(fx_id)s, %(rate)s, %(source)s, %(observed)s,
            %(hold)s, %(actor)s)
    ON CONFLICT (buyer_org, idempotency_key) DO NOTHING
    RETURNING order_id
), lines AS (
    INSERT INTO order_lines (order_id, line_no, gtin, quantity, unit_price_minor)
    SELECT ins.order_id, l.n, l.gtin, l.q, l.p
    FROM ins, unnest(%(gtins)s::text[], %(qtys)s::int[], %(prices)s::bigint[])
         WITH ORDINALITY AS l(gtin, q, p, n)
), audit AS (
    INSERT INTO state_changes (entity, entity_id, actor, from_state, to_state)
    SELECT 'order', ins.order_id::text, %(actor)s, NULL, 'placed' FROM ins
)
SELECT order_id::text, true FROM ins
UNION ALL
SELECT order_id::text, false FROM orders
WHERE buyer_org = %(buyer)s AND idempotency_key = %(key)s AND NOT EXISTS (SELECT 1 FROM ins)
"""


async def _insert(
    conn: Any,
    *,
    buyer_org: str,
    supplier_org: str,
    quote_id: str | None,
    key: str,
    currency: str,
    incoterm: str,
    named_place: str,
    lines: list[Line],
    settlement_currency: str,
    hold: bool,
    actor: str,
) -> Placed:
    total = _total(lines)
    settled, rate = await _settlement(conn, currency, settlement_currency, total)
    cur = await conn.execute(
        _INSERT_SQL,
        {
            "buyer": buyer_org,
            "supplier": supplier_org,
            "quote": quote_id,
            "key": key,
            "currency": currency,
            "incoterm": incoterm,
            "place": named_place,
            "total": total,
            "scur": settlement_currency,
            "stotal": settled,
            "fx_id": rate.fx_id if rate else None,
            "rate": rate.rate if rate else Decimal(1),
            "source": rate.source if rate else None,
            "observed": rate.observed_at if rate else None,
            "hold": hold,
            "actor": actor,
            "gtins": [line.gtin for line in lines],
            "qtys": [line.quantity for line in lines],
            "prices": [line.unit_price_minor for line in lines],
        },
    )
    row = await cur.fetchone()
    if row is None:
        # A concurrent twin committed after this statement's snapshot was taken: the insert
        # saw its row (conflict) but the statement's SELECT could not. A new statement can.
        cur = await conn.execute(
            "SELECT order_id::text, false FROM orders WHERE buyer_org = %s"
            " AND idempotency_key = %s",
            (buyer_org, key),
        )
        row = await cur.fetchone()
        if row is None:
            raise CommerceInvalidError("order could not be placed; retry")
    return Placed(order_id=row[0], created=bool(row[1]))


def _check_common(currency: str, incoterm: str | None, lines: list[Line]) -> None:
    money.exponent(currency)
    if incoterm is not None and incoterm not in INCOTERMS:
        raise CommerceInvalidError(f"incoterm must be an Incoterms 2020 rule: {list(INCOTERMS)}")
    if not lines:
        raise CommerceInvalidError("an order needs at least one line")


async def place_order(
    conn: Any,
    *,
    buyer_org: str,
    supplier_org: str,
    key: str,
    currency: str,
    incoterm: str,
    named_place: str,
    lines: list[Line],
    settlement_currency: str | None,
    hold: bool,
    actor: str,
) -> Placed:
    """Place an order priced from the supplier's price list in ``currency``."""
    _check_common(currency, incoterm, lines)
    gtins = [line.gtin for line in lines]
    if settlement_currency in (None, currency):
        return await _place_same_currency(
            conn,
            buyer_org=buyer_org,
            supplier_org=supplier_org,
            key=key,
            currency=currency,
            incoterm=incoterm,
            named_place=named_place,
            lines=lines,
            hold=hold,
            actor=actor,
        )
    cur = await conn.execute(_PRICES_SQL, (gtins, supplier_org, currency))
    prices = {gtin: price for gtin, price in await cur.fetchall()}
    missing = sorted(g for g in gtins if prices.get(g) is None)
    if missing:
        raise CommerceInvalidError(f"supplier {supplier_org} has no {currency} price for {missing}")
    priced = [Line(line.gtin, line.quantity, int(prices[line.gtin])) for line in lines]
    return await _insert(
        conn,
        buyer_org=buyer_org,
        supplier_org=supplier_org,
        quote_id=None,
        key=key,
        currency=currency,
        incoterm=incoterm,
        named_place=named_place,
        lines=priced,
        settlement_currency=settlement_currency or currency,
        hold=hold,
        actor=actor,
    )


# Same-currency orders need no FX rounding, so pricing, totals, the order, its lines and the
# audit row are one statement (one round trip before the commit): the hot path of the API.
_PLACE_PRICED_SQL = """
WITH priced AS (
    SELECT r.n, r.gtin, r.q, p.unit_price_minor AS p
    FROM unnest(%(gtins)s::text[], %(qtys)s::int[]) WITH ORDINALITY AS r(gtin, q, n)
    LEFT JOIN price_lists p
      ON p.supplier_org = %(supplier)s AND p.gtin = r.gtin AND p.currency = %(currency)s
), summary AS (
    SELECT bool_and(p IS NOT NULL) AS complete, sum(q::numeric * p) AS total FROM priced
), ins AS (
    INSERT INTO orders (buyer_org, supplier_org, idempotency_key, currency, incoterm,
                        named_place, total_minor, settlement_currency, settlement_minor,
                        hold_until_delivery, created_by)
    SELECT %(buyer)s, %(supplier)s, %(key)s, %(currency)s, %(incoterm)s, %(place)s,
           total, %(currency)s, total, %(hold)s, %(actor)s
    FROM summary WHERE complete
    ON CONFLICT (buyer_org, idempotency_key) DO NOTHING
    RETURNING order_id
), lines AS (
    INSERT INTO order_lines (order_id, line_no, gtin, quantity, unit_price_minor)
    SELECT ins.order_id, priced.n, priced.gtin, priced.q, priced.p FROM ins, priced
), audit AS (
    INSERT INTO state_changes (entity, entity_id, actor, from_state, to_state)
    SELECT 'order', ins.order_id::text, %(actor)s, NULL, 'placed' FROM ins
)
SELECT order_id::text, true, NULL::text[] FROM ins
UNION ALL
SELECT order_id::text, false, NULL FROM orders
WHERE buyer_org = %(buyer)s AND idempotency_key = %(key)s AND NOT EXISTS (SELECT 1 FROM ins)
UNION ALL
SELECT NULL, false, array_agg(DISTINCT gtin ORDER BY gtin) FROM priced WHERE p IS NULL
HAVING count(*) > 0
"""


async def _place_same_currency(
    conn: Any,
    *,
    buyer_org: str,
    supplier_org: str,
    key: str,
    currency: str,
    incoterm: str,
    named_place: str,
    lines: list[Line],
    hold: bool,
    actor: str,
) -> Placed:
    cur = await conn.execute(
        _PLACE_PRICED_SQL,
        {
            "buyer": buyer_org,
            "supplier": supplier_org,
            "key": key,
            "currency": currency,
            "incoterm": incoterm,
            "place": named_place,
            "hold": hold,
            "actor": actor,
            "gtins": [line.gtin for line in lines],
            "qtys": [line.quantity for line in lines],
        },
    )
    rows = await cur.fetchall()
    for order_id, created, missing in rows:
        if order_id is not None:
            return Placed(order_id=order_id, created=bool(created))
        if missing:
            raise CommerceInvalidError(
                f"supplier {supplier_org} has no {currency} price for {missing}"
            )
    # A concurrent twin committed after this statement's snapshot (see _insert).
    cur = await conn.execute(
        "SELECT order_id::text FROM orders WHERE buyer_org = %s AND idempotency_key = %s",
        (buyer_org, key),
    )
    row = await cur.fetchone()
    if row is None:
        raise CommerceInvalidError("order could not be placed; retry")
    return Placed(order_id=row[0], created=False)


async def create_rfq(
    conn: Any,
    *,
    buyer_org: str,
    supplier_org: str,
    currency: str,
    incoterm: str | None,
    lines: list[Line],
    note: str,
    actor: str,
) -> str:
    _check_common(currency, incoterm, lines)
    cur = await conn.execute(
        "SELECT 1 FROM organisations WHERE org_id = %s AND kind = 'supplier'", (supplier_org,)
    )
    if await cur.fetchone() is None:
        raise CommerceInvalidError(f"{supplier_org!r} is not a supplier organisation")
    cur = await conn.execute(
        "INSERT INTO rfqs (buyer_org, supplier_org, currency, incoterm, lines, note, created_by)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING rfq_id::text",
        (
            buyer_org,
            supplier_org,
            currency,
            incoterm,
            Jsonb([{"gtin": x.gtin, "quantity": x.quantity} for x in lines]),
            note,
            actor,
        ),
    )
    rfq_id = str((await cur.fetchone())[0])
    await conn.execute(
        "INSERT INTO state_changes (entity, entity_id, actor, to_state) VALUES ('rfq', %s, %s,"
        " 'open')",
        (rfq_id, actor),
    )
    return rfq_id


async def create_quote(
    conn: Any,
    *,
    rfq_id: str,
    supplier_org: str | None,
    incoterm: str,
    named_place: str,
    valid_until: datetime,
    lines: list[Line],
    actor: str,
) -> str:
    """The supplier's answer to an rfq; the rfq becomes 'quoted'."""
    cur = await conn.execute(
        "SELECT buyer_org, supplier_org, currency FROM rfqs WHERE rfq_id = %s", (rfq_id,)
    )
    row = await cur.fetchone()
    if row is None:
        raise CommerceNotFoundError(f"rfq {rfq_id} not found")
    buyer_org, rfq_supplier, currency = row
    if supplier_org is not None and supplier_org != rfq_supplier:
        raise CommerceForbiddenError(
            f"rfq {rfq_id} was sent to {rfq_supplier}, not to your organisation"
        )
    _check_common(currency, incoterm, lines)
    if valid_until <= datetime.now(UTC):
        raise CommerceInvalidError("valid_until must be in the future")
    await atransition(conn, "rfq", rfq_id, "quoted", actor)
    cur = await conn.execute(
        "INSERT INTO quotes (rfq_id, buyer_org, supplier_org, currency, incoterm, named_place,"
        " valid_until, total_minor, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " RETURNING quote_id::text",
        (
            rfq_id,
            buyer_org,
            rfq_supplier,
            currency,
            incoterm,
            named_place,
            valid_until,
            _total(lines),
            actor,
        ),
    )
    quote_id = str((await cur.fetchone())[0])
    async with conn.cursor() as c:
        await c.executemany(
            "INSERT INTO quote_lines (quote_id, line_no, gtin, quantity, unit_price_minor)"
            " VALUES (%s, %s, %s, %s, %s)",
            [(quote_id, n, x.gtin, x.quantity, x.unit_price_minor) for n, x in enumerate(lines, 1)],
        )
    await conn.execute(
        "INSERT INTO state_changes (entity, entity_id, actor, to_state) VALUES ('quote', %s, %s,"
        " 'sent')",
        (quote_id, actor),
    )
    return quote_id


async def accept_quote(
    conn: Any,
    *,
    quote_id: str,
    buyer_org: str | None,
    key: str,
    settlement_currency: str | None,
    hold: bool,
    actor: str,
) -> Placed:
    """Accept a quote (idempotently per key): the quote becomes 'accepted' and an order exists."""
    cur = await conn.execute(
        "SELECT buyer_org, supplier_org, currency, incoterm, named_place, valid_until, state"
        " FROM quotes WHERE quote_id = %s FOR UPDATE",
        (quote_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise CommerceNotFoundError(f"quote {quote_id} not found")
    q_buyer, supplier, currency, incoterm, place, valid_until, state = row
    if buyer_org is not None and buyer_org != q_buyer:
        raise CommerceForbiddenError(
            f"quote {quote_id} was made for {q_buyer}, not your organisation"
        )
    cur = await conn.execute(
        "SELECT order_id::text FROM orders WHERE buyer_org = %s AND idempotency_key = %s",
        (q_buyer, key),
    )
    existing = await cur.fetchone()
    if existing is not None:
        return Placed(existing[0], False)
    if state == "sent" and valid_until <= datetime.now(UTC):
        await atransition(conn, "quote", quote_id, "expired", "system", "validity passed")
        await conn.commit()
        raise CommerceInvalidError(f"quote {quote_id} expired at {valid_until.isoformat()}")
    await atransition(conn, "quote", quote_id, "accepted", actor)
    cur = await conn.execute(
        "SELECT gtin, quantity, unit_price_minor FROM quote_lines WHERE quote_id = %s"
        " ORDER BY line_no",
        (quote_id,),
    )
    lines = [Line(g, q, p) for g, q, p in await cur.fetchall()]
    return await _insert(
        conn,
        buyer_org=q_buyer,
        supplier_org=supplier,
        quote_id=quote_id,
        key=key,
        currency=currency,
        incoterm=incoterm,
        named_place=place,
        lines=lines,
        settlement_currency=settlement_currency or currency,
        hold=hold,
        actor=actor,
    )


async def order_view(conn: Any, order_id: str) -> dict[str, Any]:
    """The order, its lines, shipments, payments and state history."""
    cur = await conn.execute(
        "SELECT order_id::text, buyer_org, supplier_org, quote_id::text, currency, incoterm,"
        " named_place, total_minor, settlement_currency, settlement_minor, fx_rate::text,"
        " fx_source, fx_observed_at, hold_until_delivery, state, created_by, created_at"
        " FROM orders WHERE order_id = %s",
        (order_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise CommerceNotFoundError(f"order {order_id} not found")
    names = [d.name for d in cur.description]
    view: dict[str, Any] = dict(zip(names, row, strict=True))
    cur = await conn.execute(
        "SELECT line_no, gtin, quantity, unit_price_minor FROM order_lines WHERE order_id = %s"
        " ORDER BY line_no",
        (order_id,),
    )
    view["lines"] = [
        {"line_no": n, "gtin": g, "quantity": q, "unit_price_minor": p}
        for n, g, q, p in await cur.fetchall()
    ]
    cur = await conn.execute(
        "SELECT shipment_id FROM order_shipments WHERE order_id = %s ORDER BY shipment_id",
        (order_id,),
    )
    view["shipments"] = [r[0] for r in await cur.fetchall()]
    cur = await conn.execute(
        "SELECT alert_id::text FROM order_alerts WHERE order_id = %s ORDER BY attached_at",
        (order_id,),
    )
    view["alerts"] = [r[0] for r in await cur.fetchall()]
    view["history"] = await history(conn, "order", order_id)
    return view


async def history(conn: Any, entity: str, entity_id: str) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT actor, at, from_state, to_state, note FROM state_changes"
        " WHERE entity = %s AND entity_id = %s ORDER BY id",
        (entity, entity_id),
    )
    return [
        {"actor": a, "at": at, "from": f, "to": t, "note": n}
        for a, at, f, t, n in await cur.fetchall()
    ]
