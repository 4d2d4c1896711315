"""The affected set of a recall: everything downstream of the recalled lots or EPCs, and who
and what it touches.

Downstream is the forward trace (ingest/genealogy/trace.py): output lots and products, the
containers that held them, the places and parties they were shipped to. From those nodes:

- shipments carrying an affected lot or logistic unit (the hub's shipment tables);
- parties: each affected lot's supplier and product owner, each affected shipment's shipper,
  receiver and carrier, the owners of the locations reached (GLNs), and every organisation that
  recorded an event of the trace (it handled the goods);
- open orders: orders not completed or cancelled that ship an affected shipment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.genealogy.ids import node_kind
from ingest.genealogy.store import sync
from ingest.genealogy.trace import trace
from tracehub import db

__all__ = ["Affected", "affected_set"]


@dataclass
class Affected:
    nodes: dict[str, str] = field(default_factory=dict)  # node -> kind
    events: set[str] = field(default_factory=set)
    shipments: list[str] = field(default_factory=list)
    parties: dict[str, set[str]] = field(default_factory=dict)  # org -> relations
    orders: list[str] = field(default_factory=list)

    @property
    def lots(self) -> list[tuple[str, str]]:
        """(gtin, lot) of every affected lot."""
        out = []
        for node, kind in sorted(self.nodes.items()):
            if kind == "lot":
                gtin, lot = node[4:].split("/", 1)
                out.append((gtin, lot))
        return out


_PARTIES = """
SELECT 'supplier', supplier_org FROM lots WHERE gtin || '/' || lot = ANY(%(lots)s)
UNION SELECT 'brand_owner', owner_org FROM products
 WHERE gtin = ANY(%(gtins)s)
UNION SELECT r.rel, r.org FROM shipments s
 CROSS JOIN LATERAL (VALUES ('shipper', s.shipper_org), ('receiver', s.receiver_org),
                            ('carrier', s.carrier_org)) AS r(rel, org)
 WHERE s.shipment_id = ANY(%(shipments)s)
UNION SELECT 'location', org_id FROM organisation_identifiers
 WHERE kind = 'gln' AND value = ANY(%(glns)s)
UNION SELECT 'location', org_id FROM locations WHERE gln = ANY(%(glns)s)
UNION SELECT 'recorded', captured_by_org FROM epcis_events WHERE event_id = ANY(%(events)s)
"""
_SHIPMENTS = """
SELECT DISTINCT shipment_id FROM shipment_lots
 WHERE gtin || '/' || lot = ANY(%(lots)s) OR sscc = ANY(%(ssccs)s) ORDER BY 1
"""
_ORDERS = """
SELECT DISTINCT o.order_id::text FROM orders o JOIN order_shipments os USING (order_id)
 WHERE os.shipment_id = ANY(%(shipments)s) AND o.state NOT IN ('completed', 'cancelled')
 ORDER BY 1
"""


def affected_set(conn: db.Connection, targets: list[str]) -> Affected:
    """Everything downstream of ``targets`` (node ids) and who and what it touches."""
    sync(conn)
    found = Affected()
    for target in targets:
        walked = trace(conn, target, direction="forward")
        for node in walked.nodes:
            found.nodes[node] = node_kind(node)
        found.events |= {e.event_id for e in walked.edges.values()}
    lots = [f"{g}/{lot}" for g, lot in found.lots]
    params = {
        "lots": lots,
        "gtins": sorted({x.split("/", 1)[0] for x in lots}),
        "ssccs": [n[5:] for n, k in found.nodes.items() if k == "sscc"],
        "glns": [n[4:] for n, k in found.nodes.items() if k == "gln"],
        "events": sorted(found.events),
    }
    found.shipments = [r[0] for r in conn.execute(_SHIPMENTS, params).fetchall()]
    params["shipments"] = found.shipments
    for relation, org in conn.execute(_PARTIES, params).fetchall():
        if org is not None:
            found.parties.setdefault(org, set()).add(relation)
    found.orders = [r[0] for r in conn.execute(_ORDERS, params).fetchall()]
    return found
