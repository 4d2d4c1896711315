"""/commerce: catalogue prices, FX rates, RFQs, quotes and orders (commerce/orders.py).

Amounts travel as decimal strings in major units ("12.34") or integers in minor units
(``*_minor``); never as floats. Payments, shipments and scorecards are in the sibling
routers included at the end.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, Header, Response, status
from pydantic import AwareDatetime, BaseModel, Field

from api.auth import Principal
from api.commerce import customs, documents, logistics, payments, scores
from api.commerce.deps import own_org
from api.db import Connection
from api.policy import Access, authorize, guard
from api.routing import Router
from commerce import fx, money, orders
from commerce.errors import CommerceInvalidError, CommerceNotFoundError
from commerce.states import atransition

router = Router(prefix="/commerce", tags=["commerce"])

Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["USD"])]
Gtin = Annotated[str, Field(pattern=r"^[0-9]{14}$")]
Amount = Annotated[str, Field(pattern=r"^[0-9]{1,15}(\.[0-9]{1,3})?$", examples=["12.34"])]
OrgId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
Incoterm = Annotated[str, Field(pattern=r"^(EXW|FCA|CPT|CIP|DAP|DPU|DDP|FAS|FOB|CFR|CIF)$")]
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="A key of the client's choosing; the same key returns the same order.",
    ),
]
_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "not your organisation's"},
    404: {"description": "not found"},
    409: {"description": "invalid state transition"},
    422: {"description": "invalid request"},
}


def _acting_buyer(principal: Principal, action: str) -> str:
    """The caller's organisation as buyer; an admin without one cannot ``action``."""
    buyer = own_org(principal)
    if buyer is None:
        raise CommerceInvalidError(f"admins without an organisation cannot {action}")
    return buyer


class PriceIn(BaseModel):
    gtin: Gtin
    currency: Currency
    unit_price: Amount
    supplier_org: OrgId | None = Field(None, description="admins only; suppliers price their own")


class PriceOut(BaseModel):
    supplier_org: str
    gtin: str
    currency: str
    unit_price_minor: int
    unit_price: str


@router.put("/price-lists", response_model=PriceOut, responses=_ERRORS)
async def put_price(
    body: PriceIn,
    conn: Connection,
    access: Annotated[Access, Depends(guard("price.set"))],
) -> PriceOut:
    """Set a supplier's price of a product in one currency."""
    principal = access.principal
    supplier = own_org(principal) or body.supplier_org
    if supplier is None:
        raise CommerceInvalidError("supplier_org is required for admins")
    minor = money.to_minor(body.unit_price, body.currency)
    await conn.execute(
        "INSERT INTO price_lists (supplier_org, gtin, currency, unit_price_minor)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (supplier_org, gtin, currency)"
        " DO UPDATE SET unit_price_minor = EXCLUDED.unit_price_minor, updated_at = now()",
        (supplier, body.gtin, body.currency, minor),
    )
    await conn.commit()
    return PriceOut(
        supplier_org=supplier,
        gtin=body.gtin,
        currency=body.currency,
        unit_price_minor=minor,
        unit_price=str(money.to_major(minor, body.currency)),
    )


@router.get("/price-lists", response_model=list[PriceOut])
async def list_prices(
    conn: Connection,
    access: Annotated[Access, Depends(guard("price.list"))],
    supplier_org: OrgId | None = None,
    currency: Currency | None = None,
) -> list[PriceOut]:
    """Prices, optionally of one supplier and/or currency. Buyers see every supplier's prices
    (to order from them); a supplier sees only its own."""
    principal = access.principal
    if not principal.has("buyer", "admin"):
        if supplier_org not in (None, principal.org_id):
            return []
        supplier_org = principal.org_id
    cur = await conn.execute(
        "SELECT supplier_org, gtin, currency, unit_price_minor FROM price_lists"
        " WHERE (%(s)s::text IS NULL OR supplier_org = %(s)s)"
        " AND (%(c)s::text IS NULL OR currency = %(c)s) ORDER BY 1, 2, 3 LIMIT 1000",
        {"s": supplier_org, "c": currency},
    )
    out = []
    for s, g, c, p in await cur.fetchall():
        major = str(money.to_major(p, c)) if c in money.MINOR_UNITS else str(p)
        out.append(
            PriceOut(supplier_org=s, gtin=g, currency=c, unit_price_minor=p, unit_price=major)
        )
    return out


class FxIn(BaseModel):
    base: Currency
    quote: Currency
    rate: Annotated[str, Field(pattern=r"^[0-9]{1,12}(\.[0-9]{1,12})?$", examples=["1.0842"])]
    source: Annotated[str, Field(min_length=1, max_length=200, examples=["ECB reference rate"])]
    observed_at: AwareDatetime


class FxOut(FxIn):
    fx_id: int


@router.post("/fx-rates", response_model=FxOut, status_code=201, responses=_ERRORS)
async def add_fx_rate(
    body: FxIn, conn: Connection, _: Annotated[Access, Depends(guard("fx.add"))]
) -> FxOut:
    """Record an observed FX rate (1 base = rate quote) with its source and time."""
    fx_id = await fx.add_rate(
        conn, body.base, body.quote, Decimal(body.rate), body.source, body.observed_at
    )
    await conn.commit()
    return FxOut(fx_id=fx_id, **body.model_dump())


class LineIn(BaseModel):
    gtin: Gtin
    quantity: Annotated[int, Field(gt=0, le=1_000_000_000)]


class RfqIn(BaseModel):
    supplier_org: OrgId
    currency: Currency
    incoterm: Incoterm | None = None
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=200)]
    note: Annotated[str, Field(max_length=2000)] = ""


class Created(BaseModel):
    id: str


@router.post("/rfqs", response_model=Created, status_code=201, responses=_ERRORS)
async def create_rfq(
    body: RfqIn, conn: Connection, access: Annotated[Access, Depends(guard("rfq.create"))]
) -> Created:
    """A buyer asks a supplier for a quote."""
    principal = access.principal
    buyer = _acting_buyer(principal, "request quotes")
    rfq_id = await orders.create_rfq(
        conn,
        buyer_org=buyer,
        supplier_org=body.supplier_org,
        currency=body.currency,
        incoterm=body.incoterm,
        lines=[orders.Line(x.gtin, x.quantity) for x in body.lines],
        note=body.note,
        actor=principal.username,
    )
    await conn.commit()
    return Created(id=rfq_id)


class QuoteLineIn(LineIn):
    unit_price: Amount


class QuoteIn(BaseModel):
    incoterm: Incoterm
    named_place: Annotated[str, Field(min_length=1, max_length=200, examples=["Rotterdam"])]
    valid_until: AwareDatetime
    lines: Annotated[list[QuoteLineIn], Field(min_length=1, max_length=200)]


@router.post("/rfqs/{rfq_id}/quotes", response_model=Created, status_code=201, responses=_ERRORS)
async def create_quote(
    rfq_id: uuid.UUID,
    body: QuoteIn,
    conn: Connection,
    access: Annotated[Access, Depends(guard("rfq.quote", "rfq_id"))],
) -> Created:
    """The supplier answers an RFQ with lines, Incoterms 2020 rule, place and validity."""
    principal = access.principal
    cur = await conn.execute("SELECT currency FROM rfqs WHERE rfq_id = %s", (rfq_id,))
    row = await cur.fetchone()
    if row is None:
        raise CommerceNotFoundError(f"rfq {rfq_id} not found")
    lines = [
        orders.Line(x.gtin, x.quantity, money.to_minor(x.unit_price, row[0])) for x in body.lines
    ]
    quote_id = await orders.create_quote(
        conn,
        rfq_id=str(rfq_id),
        supplier_org=own_org(principal),
        incoterm=body.incoterm,
        named_place=body.named_place,
        valid_until=body.valid_until,
        lines=lines,
        actor=principal.username,
    )
    await conn.commit()
    return Created(id=quote_id)


class AcceptIn(BaseModel):
    settlement_currency: Currency | None = None
    hold_until_delivery: bool = False


class OrderRef(BaseModel):
    order_id: str
    created: bool


@router.post("/quotes/{quote_id}/accept", response_model=OrderRef, responses=_ERRORS)
async def accept_quote(
    quote_id: uuid.UUID,
    body: AcceptIn,
    key: IdempotencyKey,
    response: Response,
    conn: Connection,
    access: Annotated[Access, Depends(guard("quote.decide", "quote_id"))],
) -> OrderRef:
    """Accept a quote: it becomes 'accepted' and an order is placed (201; 200 on replay)."""
    principal = access.principal
    placed = await orders.accept_quote(
        conn,
        quote_id=str(quote_id),
        buyer_org=own_org(principal),
        key=key,
        settlement_currency=body.settlement_currency,
        hold=body.hold_until_delivery,
        actor=principal.username,
    )
    await conn.commit()
    response.status_code = status.HTTP_201_CREATED if placed.created else status.HTTP_200_OK
    return OrderRef(order_id=placed.order_id, created=placed.created)


@router.post("/quotes/{quote_id}/reject", responses=_ERRORS)
async def reject_quote(
    quote_id: uuid.UUID,
    conn: Connection,
    access: Annotated[Access, Depends(guard("quote.decide", "quote_id"))],
) -> dict[str, str]:
    """The buyer declines a quote."""
    await atransition(conn, "quote", str(quote_id), "rejected", access.principal.username)
    await conn.commit()
    return {"quote_id": str(quote_id), "state": "rejected"}


class OrderIn(BaseModel):
    supplier_org: OrgId
    currency: Currency
    incoterm: Incoterm
    named_place: Annotated[str, Field(max_length=200)] = ""
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=200)]
    settlement_currency: Currency | None = None
    hold_until_delivery: bool = False


@router.post(
    "/orders",
    response_model=OrderRef,
    status_code=201,
    responses={**_ERRORS, 200: {"description": "replay of an earlier key: the same order"}},
)
async def place_order(
    body: OrderIn,
    key: IdempotencyKey,
    response: Response,
    conn: Connection,
    access: Annotated[Access, Depends(guard("order.place"))],
) -> OrderRef:
    """Place an order priced from the supplier's price list; idempotent per Idempotency-Key."""
    principal = access.principal
    buyer = _acting_buyer(principal, "place orders")
    placed = await orders.place_order(
        conn,
        buyer_org=buyer,
        supplier_org=body.supplier_org,
        key=key,
        currency=body.currency,
        incoterm=body.incoterm,
        named_place=body.named_place,
        lines=[orders.Line(x.gtin, x.quantity) for x in body.lines],
        settlement_currency=body.settlement_currency,
        hold=body.hold_until_delivery,
        actor=principal.username,
    )
    await conn.commit()
    if not placed.created:
        response.status_code = status.HTTP_200_OK
    return OrderRef(order_id=placed.order_id, created=placed.created)


@router.get("/orders/{order_id}", responses=_ERRORS)
async def get_order(
    order_id: uuid.UUID,
    conn: Connection,
    _: Annotated[Access, Depends(guard("order.read", "order_id"))],
) -> dict[str, Any]:
    """The order with lines, shipments, alerts and its state history."""
    return await orders.order_view(conn, str(order_id))


_TRANSITIONS = {
    "confirmed": "order.confirm",
    "cancelled": "order.cancel",
    "completed": "order.complete",
}


class TransitionIn(BaseModel):
    to: Annotated[str, Field(pattern=r"^(confirmed|cancelled|completed)$")]
    note: Annotated[str, Field(max_length=500)] = ""


@router.post("/orders/{order_id}/transitions", responses=_ERRORS)
async def order_transition(
    order_id: uuid.UUID,
    body: TransitionIn,
    conn: Connection,
    access: Annotated[Access, Depends(guard("order.transition", "order_id"))],
) -> dict[str, str]:
    """Confirm (supplier), cancel (either party) or complete (buyer) an order; 409 if the
    state machine does not allow it. Shipping and delivery follow custody events."""
    principal = authorize(access.principal, _TRANSITIONS[body.to], access.parties).principal
    old = await atransition(conn, "order", str(order_id), body.to, principal.username, body.note)
    await conn.commit()
    return {"order_id": str(order_id), "from": old, "to": body.to}


@router.get("/orders/{order_id}/history", responses=_ERRORS)
async def order_history(
    order_id: uuid.UUID,
    conn: Connection,
    _: Annotated[Access, Depends(guard("order.read", "order_id"))],
) -> list[dict[str, Any]]:
    """Every state change of the order: who, when, from, to."""
    cur = await conn.execute("SELECT 1 FROM orders WHERE order_id = %s", (order_id,))
    if await cur.fetchone() is None:
        raise CommerceNotFoundError(f"order {order_id} not found")
    return await orders.history(conn, "order", str(order_id))


router.include_router(payments.router)
router.include_router(logistics.router)
router.include_router(scores.router)
router.include_router(customs.router)
router.include_router(documents.router)
