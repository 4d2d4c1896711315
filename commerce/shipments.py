"""An order's shipments, and shipment state driven by custody events.

EPCIS custody events move a shipment: bizStep ``shipping`` planned -> in_transit, ``receiving``
in_transit -> delivered. `apply_custody_event` is what the EPCIS capture side calls for an
event about a shipment; the order follows its shipments (first shipped -> order shipped, all
delivered -> order delivered).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from commerce.errors import CommerceConflictError, CommerceInvalidError, CommerceNotFoundError
from commerce.states import transition

_BIZ_STEPS = {
    "shipping": "in_transit",
    "receiving": "delivered",
    # CBV 2.0 URIs, as EPCIS documents write them.
    "urn:epcglobal:cbv:bizstep:shipping": "in_transit",
    "urn:epcglobal:cbv:bizstep:receiving": "delivered",
}


def add_shipment(
    conn: Any,
    *,
    order_id: str,
    shipment_id: str,
    origin: str,
    destination: str,
    expected_delivery: datetime | None,
    lots: list[dict[str, Any]],
    actor: str,
    carrier_org: str | None = None,
) -> None:
    """Create a shipment of the order, carrying lots (gtin, lot, optional sscc/quantity). The
    order's supplier is the shipper, its buyer the receiver; ``carrier_org`` the carrier the
    shipper assigns (or later, `assign_carrier`)."""
    row = conn.execute(
        "SELECT supplier_org, buyer_org, state FROM orders WHERE order_id = %s", (order_id,)
    ).fetchone()
    if row is None:
        raise CommerceNotFoundError(f"order {order_id} not found")
    supplier, buyer, state = row
    if state not in ("confirmed", "shipped"):
        raise CommerceConflictError(f"order {order_id} is {state!r}; only confirmed orders ship")
    if not lots:
        raise CommerceInvalidError("a shipment carries at least one lot")
    exists = conn.execute(
        "SELECT 1 FROM shipments WHERE shipment_id = %s", (shipment_id,)
    ).fetchone()
    if exists:
        raise CommerceConflictError(f"shipment {shipment_id} already exists")
    if carrier_org is not None:
        _check_org(conn, carrier_org)
    conn.execute(
        "INSERT INTO shipments (shipment_id, origin, destination, shipper_org, receiver_org,"
        " carrier_org, expected_delivery) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (shipment_id, origin, destination, supplier, buyer, carrier_org, expected_delivery),
    )
    with conn.cursor() as cur:
        for lot in lots:
            known = cur.execute(
                "SELECT 1 FROM lots WHERE gtin = %s AND lot = %s", (lot["gtin"], lot["lot"])
            ).fetchone()
            if not known:
                raise CommerceInvalidError(f"lot {lot['gtin']}/{lot['lot']} is not registered")
            cur.execute(
                "INSERT INTO shipment_lots (shipment_id, gtin, lot, sscc, quantity)"
                " VALUES (%s, %s, %s, %s, %s)",
                (shipment_id, lot["gtin"], lot["lot"], lot.get("sscc"), lot.get("quantity")),
            )
    conn.execute(
        "INSERT INTO order_shipments (order_id, shipment_id) VALUES (%s, %s)",
        (order_id, shipment_id),
    )
    conn.execute(
        "INSERT INTO state_changes (entity, entity_id, actor, to_state)"
        " VALUES ('shipment', %s, %s, 'planned')",
        (shipment_id, actor),
    )


def _check_org(conn: Any, org_id: str) -> None:
    if conn.execute("SELECT 1 FROM organisations WHERE org_id = %s", (org_id,)).fetchone() is None:
        raise CommerceInvalidError(f"organisation {org_id!r} does not exist")


def assign_carrier(conn: Any, shipment_id: str, carrier_org: str, actor: str) -> None:
    """The shipper names the shipment's carrier (or another one) while it is still planned;
    recorded in state_changes. The caller commits."""
    _check_org(conn, carrier_org)
    row = conn.execute(
        "UPDATE shipments SET carrier_org = %s WHERE shipment_id = %s AND state = 'planned'"
        " RETURNING state",
        (carrier_org, shipment_id),
    ).fetchone()
    if row is None:
        state = conn.execute(
            "SELECT state FROM shipments WHERE shipment_id = %s", (shipment_id,)
        ).fetchone()
        if state is None:
            raise CommerceNotFoundError(f"shipment {shipment_id} not found")
        raise CommerceConflictError(
            f"shipment {shipment_id} is {state[0]!r}; the carrier is assigned while planned"
        )
    conn.execute(
        "INSERT INTO state_changes (entity, entity_id, actor, from_state, to_state, note)"
        " VALUES ('shipment', %s, %s, 'planned', 'planned', %s)",
        (shipment_id, actor, f"carrier {carrier_org}"),
    )


def apply_custody_event(
    conn: Any,
    shipment_id: str,
    biz_step: str,
    at: datetime,
    *,
    event_hash: str | None = None,
    actor: str = "epcis",
) -> str:
    """Move the shipment (and its order) on a custody event; returns the new shipment state.

    The caller commits. Refused (InvalidTransitionError, 409) if the step does not fit the state.
    """
    target = _BIZ_STEPS.get(biz_step)
    if target is None:
        raise CommerceInvalidError(
            f"bizStep {biz_step!r} is not a custody step (shipping, receiving)"
        )
    stamp = {"shipped_at": at} if target == "in_transit" else {"delivered_at": at}
    transition(conn, "shipment", shipment_id, target, actor, event_hash or "", **stamp)
    step = "shipping" if target == "in_transit" else "receiving"
    conn.execute(
        "INSERT INTO custody_events (shipment_id, biz_step, at, event_hash) VALUES (%s, %s, %s,"
        " %s)",
        (shipment_id, step, at, event_hash),
    )
    row = conn.execute(
        "SELECT o.order_id::text, o.state,"
        " bool_and(s.state = 'delivered') AS all_delivered"
        " FROM order_shipments os JOIN orders o USING (order_id)"
        " JOIN order_shipments os2 ON os2.order_id = o.order_id"
        " JOIN shipments s ON s.shipment_id = os2.shipment_id"
        " WHERE os.shipment_id = %s GROUP BY o.order_id, o.state",
        (shipment_id,),
    ).fetchone()
    if row:
        order_id, order_state, all_delivered = row
        if order_state == "confirmed":
            transition(conn, "order", order_id, "shipped", actor, f"shipment {shipment_id}")
            order_state = "shipped"
        if order_state == "shipped" and all_delivered:
            transition(conn, "order", order_id, "delivered", actor, f"shipment {shipment_id}")
    return target
