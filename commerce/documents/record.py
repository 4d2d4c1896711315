"""What a shipment's documents say, read from the record: the order, its parties and lines,
the shipment, its lots and SSCCs, the products' HS codes, the lots' origins, and the packages'
contents from EPCIS aggregation events where present."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from commerce.errors import CommerceInvalidError, CommerceNotFoundError


@dataclass(frozen=True)
class Party:
    org_id: str
    name: str
    country: str | None


@dataclass(frozen=True)
class Record:
    """Everything the three documents draw on (one shipment of one order)."""

    shipment_id: str
    order_id: str
    seller: Party
    buyer: Party
    carrier: Party | None
    currency: str
    incoterm: str
    named_place: str
    origin: str
    destination: str
    #: order lines: line_no, gtin, name, hs_code, quantity, unit_price_minor, origin
    lines: list[dict[str, Any]]
    #: shipment lots: gtin, lot, sscc, quantity, origin
    lots: list[dict[str, Any]]
    #: SSCC -> contents from aggregation events (child EPCs / quantities) and the event hash
    packages: dict[str, dict[str, Any]] = field(default_factory=dict)


def _party(conn: Any, org_id: str | None) -> Party | None:
    if org_id is None:
        return None
    row = conn.execute(
        "SELECT org_id, name, country FROM organisations WHERE org_id = %s", (org_id,)
    ).fetchone()
    return Party(*row) if row else None


def load_record(conn: Any, shipment_id: str) -> Record:
    """The record of the shipment and the order it ships (sync connection, read only)."""
    row = conn.execute(
        "SELECT s.shipment_id, os.order_id::text, o.supplier_org, o.buyer_org, s.carrier_org,"
        " o.currency, o.incoterm, o.named_place, s.origin, s.destination"
        " FROM shipments s JOIN order_shipments os USING (shipment_id)"
        " JOIN orders o USING (order_id) WHERE s.shipment_id = %s",
        (shipment_id,),
    ).fetchone()
    if row is None:
        raise CommerceNotFoundError(f"shipment {shipment_id} of an order not found")
    sid, order_id, seller, buyer, carrier, currency, incoterm, place, origin, dest = row
    lots = [
        {"gtin": g, "lot": lot, "sscc": s, "quantity": q, "origin": c}
        for g, lot, s, q, c in conn.execute(
            "SELECT sl.gtin, sl.lot, sl.sscc, sl.quantity, l.origin_country FROM shipment_lots sl"
            " JOIN lots l USING (gtin, lot) WHERE sl.shipment_id = %s ORDER BY sl.sscc, sl.gtin,"
            " sl.lot",
            (shipment_id,),
        ).fetchall()
    ]
    origins: dict[str, set[str]] = {}
    for lot in lots:
        if lot["origin"]:
            origins.setdefault(lot["gtin"], set()).add(lot["origin"])
    lines = []
    for n, gtin, name, hs, qty, price in conn.execute(
        "SELECT l.line_no, l.gtin, p.name, p.hs_code, l.quantity, l.unit_price_minor"
        " FROM order_lines l JOIN products p USING (gtin) WHERE l.order_id = %s ORDER BY 1",
        (order_id,),
    ).fetchall():
        if hs is None:
            raise CommerceInvalidError(f"product {gtin} has no HS code; classify it first")
        lines.append(
            {
                "line_no": n,
                "gtin": gtin,
                "name": name,
                "hs_code": hs,
                "quantity": qty,
                "unit_price_minor": price,
                "origin": ",".join(sorted(origins.get(gtin, ()))) or None,
            }
        )
    seller_party, buyer_party = _party(conn, seller), _party(conn, buyer)
    assert seller_party is not None and buyer_party is not None
    return Record(
        shipment_id=sid,
        order_id=order_id,
        seller=seller_party,
        buyer=buyer_party,
        carrier=_party(conn, carrier),
        currency=currency,
        incoterm=incoterm,
        named_place=place,
        origin=origin,
        destination=dest,
        lines=lines,
        lots=lots,
        packages=_packages(conn, [lot["sscc"] for lot in lots if lot["sscc"]]),
    )


def sscc_uri(sscc: str, prefix_digits: int = 7) -> str:
    """The SSCC EPC URI (GS1 TDS): extension digit + company prefix . serial reference.

    The company prefix length is not in the SSCC itself; 7 digits (GS1's example prefix
    9506000) is assumed, as the demo's SSCCs use it."""
    ext, rest = sscc[0], sscc[1:17]
    return f"urn:epc:id:sscc:{rest[:prefix_digits]}.{ext}{rest[prefix_digits:]}"


def _packages(conn: Any, ssccs: list[str]) -> dict[str, dict[str, Any]]:
    """Contents of each SSCC from the latest ADD AggregationEvent whose parent it is."""
    found: dict[str, dict[str, Any]] = {}
    for sscc in ssccs:
        row = conn.execute(
            "SELECT event_json, event_hash FROM epcis_events WHERE event_type ="
            " 'AggregationEvent' AND epcs @> ARRAY[%s] ORDER BY event_time DESC, seq DESC"
            " LIMIT 1",
            (sscc_uri(sscc),),
        ).fetchone()
        if row is None:
            continue
        event = json.loads(bytes(row[0]))
        if event.get("parentID") != sscc_uri(sscc) or event.get("action") != "ADD":
            continue
        found[sscc] = {
            "child_epcs": list(event.get("childEPCs", [])),
            "child_quantities": list(event.get("childQuantityList", [])),
            "event_hash": row[1],
        }
    return found
