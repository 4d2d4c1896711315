"""Who is a party to what: the organisations of a business object, by relation.

The policy (docs/authorization.md) decides from a caller's organisation and the object's
parties; this module only looks the parties up. Each lookup is one statement returning
``(relation, org_id)`` rows, to which the auditor organisations engaged by any of those parties
are added as relation ``auditor``. An object that does not exist has no parties, so a caller
who is no party cannot tell it from one that exists.

Relations, by kind of object:

- ``order``, ``rfq``, ``quote``, ``payment``: ``buyer``, ``supplier``;
- ``shipment``: ``shipper``, ``receiver``, ``carrier``, ``customs_broker`` (the broker the
  shipper or buyer assigned; it is a party of the shipment alone, not of its lots or alerts);
- ``lot`` (key ``gtin/lot``): ``brand_owner`` (the product's owner), ``supplier``, and the
  ``shipper``, ``receiver`` and ``carrier`` of every shipment carrying it, ``inspection`` (an
  inspection organisation commissioned for it);
- ``product`` (key: a GTIN): ``brand_owner``;
- ``alert``: the parties of its shipment and of its lot;
- ``subscription``: ``owner``;
- ``recall``: ``brand_owner`` (who opened it) and ``affected`` (each party of its affected set);
- ``inspection``: ``commissioner``, ``inspection`` (the inspector's organisation) and the
  parties of its lot and of its shipment;
- ``rule`` (an alert rule): the parties of what it targets.

``scope`` helpers give the organisations whose trade a caller may read: its own, and for an
auditor, the organisations that engaged its organisation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from tracehub import db
from tracehub.db import AsyncConnection

__all__ = [
    "KINDS",
    "Parties",
    "aparties",
    "ascope_orgs",
    "parties",
    "scope_orgs",
]


@dataclass(frozen=True)
class Parties:
    """An object's organisations by relation (empty: no such object, or nobody's)."""

    relations: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, rows: Iterable[tuple[str, str | None]]) -> Parties:
        found: dict[str, set[str]] = {}
        for relation, org in rows:
            if org is not None:
                found.setdefault(relation, set()).add(org)
        return cls({k: frozenset(v) for k, v in found.items()})

    def relations_of(self, org: str | None) -> frozenset[str]:
        """The relations ``org`` holds to the object."""
        if org is None:
            return frozenset()
        return frozenset(r for r, orgs in self.relations.items() if org in orgs)

    def orgs(self, *relations: str) -> frozenset[str]:
        """The organisations holding any of ``relations`` (every one when none is named)."""
        wanted = relations or tuple(self.relations)
        return frozenset(o for r in wanted for o in self.relations.get(r, ()))

    @property
    def exists(self) -> bool:
        return bool(self.relations)


# Each kind's statement takes %(key)s and yields (relation, org) rows.
_SHIPMENT = (
    "SELECT 'shipper', shipper_org FROM shipments WHERE shipment_id = {s}"
    " UNION ALL SELECT 'receiver', receiver_org FROM shipments WHERE shipment_id = {s}"
    " UNION ALL SELECT 'carrier', carrier_org FROM shipments WHERE shipment_id = {s}"
)
_LOT = (
    "SELECT 'brand_owner', p.owner_org FROM products p WHERE p.gtin = {g}"
    " AND EXISTS (SELECT 1 FROM lots x WHERE x.gtin = {g} AND x.lot = {l})"
    " UNION ALL SELECT 'supplier', supplier_org FROM lots WHERE gtin = {g} AND lot = {l}"
    " UNION ALL SELECT r.rel, r.org FROM shipment_lots sl JOIN shipments s USING (shipment_id)"
    "   CROSS JOIN LATERAL (VALUES ('shipper', s.shipper_org), ('receiver', s.receiver_org),"
    "   ('carrier', s.carrier_org)) AS r(rel, org) WHERE sl.gtin = {g} AND sl.lot = {l}"
    " UNION ALL SELECT 'inspection', inspection_org FROM inspection_commissions"
    "   WHERE gtin = {g} AND lot = {l}"
)
_ORDERISH = (
    "SELECT 'buyer', buyer_org FROM {t} WHERE {k} = %(key)s::uuid"
    " UNION ALL SELECT 'supplier', supplier_org FROM {t} WHERE {k} = %(key)s::uuid"
)
_ALERT_SHIPMENT = "(SELECT shipment_id FROM alerts WHERE alert_id = %(key)s::uuid)"
_ALERT_GTIN = "(SELECT gtin FROM alerts WHERE alert_id = %(key)s::uuid)"
_ALERT_LOT = "(SELECT lot FROM alerts WHERE alert_id = %(key)s::uuid)"
_INSPECTION = "(SELECT {c} FROM inspections WHERE inspection_id::text = %(key)s)"
_RULE = "(SELECT {c} FROM alert_rules WHERE rule_id = %(key)s)"

KINDS: dict[str, str] = {
    "order": _ORDERISH.format(t="orders", k="order_id"),
    "rfq": _ORDERISH.format(t="rfqs", k="rfq_id"),
    "quote": _ORDERISH.format(t="quotes", k="quote_id"),
    "payment": (
        "SELECT r.rel, r.org FROM payments p JOIN orders o USING (order_id)"
        " CROSS JOIN LATERAL (VALUES ('buyer', o.buyer_org), ('supplier', o.supplier_org))"
        " AS r(rel, org) WHERE p.payment_id = %(key)s::uuid"
    ),
    "shipment": _SHIPMENT.format(s="%(key)s")
    + " UNION ALL SELECT 'customs_broker', customs_broker_org FROM shipments"
    " WHERE shipment_id = %(key)s",
    "lot": _LOT.format(g="split_part(%(key)s, '/', 1)", l="substr(%(key)s, 16)"),
    "product": "SELECT 'brand_owner', owner_org FROM products WHERE gtin = %(key)s",
    "alert": _SHIPMENT.format(s=_ALERT_SHIPMENT)
    + " UNION ALL "
    + _LOT.format(g=_ALERT_GTIN, l=_ALERT_LOT),
    "organisation": "SELECT 'member', org_id FROM organisations WHERE org_id = %(key)s",
    "capture": (
        "SELECT 'owner', u.org_id FROM epcis_capture_jobs j"
        " JOIN users u ON j.source = 'api:' || u.username WHERE j.capture_id = %(key)s"
    ),
    "subscription": (
        "SELECT 'owner', owner_org FROM alert_subscriptions WHERE subscription_id = %(key)s::uuid"
    ),
    "recall": (
        "SELECT 'brand_owner', brand_org FROM recalls WHERE recall_id = %(key)s::uuid"
        " UNION ALL SELECT 'affected', org_id FROM recall_parties WHERE recall_id = %(key)s::uuid"
    ),
    "inspection": (
        f"SELECT 'commissioner', {_INSPECTION.format(c='commissioned_by')}"
        f" UNION ALL SELECT 'inspection', {_INSPECTION.format(c='inspector_org')}"
        " UNION ALL "
        + _SHIPMENT.format(s=_INSPECTION.format(c="shipment_id"))
        + " UNION ALL "
        + _LOT.format(g=_INSPECTION.format(c="gtin"), l=_INSPECTION.format(c="lot"))
    ),
    "rule": _SHIPMENT.format(s=_RULE.format(c="shipment_id"))
    + " UNION ALL "
    + _LOT.format(g=_RULE.format(c="gtin"), l=_RULE.format(c="lot"))
    + " UNION ALL SELECT 'brand_owner', owner_org FROM products"
    f" WHERE gtin = {_RULE.format(c='gtin')} AND {_RULE.format(c='lot')} IS NULL",
}
_WRAP = (
    "WITH p(rel, org) AS ({body}) SELECT rel, org FROM p WHERE org IS NOT NULL"
    " UNION ALL SELECT 'auditor', e.auditor_org FROM audit_engagements e"
    " WHERE e.client_org IN (SELECT org FROM p)"
)
_STATEMENTS = {kind: _WRAP.format(body=body) for kind, body in KINDS.items()}


def _key(kind: str, key: Any) -> str:
    return str(key)


def parties(conn: db.Connection, kind: str, key: Any) -> Parties:
    """The parties of the ``kind`` object ``key`` (a sync connection)."""
    try:
        rows = conn.execute(_STATEMENTS[kind], {"key": _key(kind, key)}).fetchall()
    except psycopg.errors.InvalidTextRepresentation:
        conn.rollback()
        return Parties()
    return Parties.of(rows)


async def aparties(conn: AsyncConnection, kind: str, key: Any) -> Parties:
    """`parties` on an async connection."""
    try:
        cur = await conn.execute(_STATEMENTS[kind], {"key": _key(kind, key)})
    except psycopg.errors.InvalidTextRepresentation:
        await conn.rollback()
        return Parties()
    return Parties.of(await cur.fetchall())


_SCOPE = (
    "SELECT %(org)s::text UNION SELECT client_org FROM audit_engagements"
    " WHERE auditor_org = %(org)s AND %(auditor)s"
)


def scope_orgs(conn: db.Connection, org: str, *, auditor: bool) -> list[str]:
    """``org`` and, for an auditor, the organisations that engaged it."""
    rows = conn.execute(_SCOPE, {"org": org, "auditor": auditor}).fetchall()
    return sorted(r[0] for r in rows)


async def ascope_orgs(conn: AsyncConnection, org: str, *, auditor: bool) -> list[str]:
    """`scope_orgs` on an async connection."""
    cur = await conn.execute(_SCOPE, {"org": org, "auditor": auditor})
    return sorted(r[0] for r in await cur.fetchall())


def visible_shipment(alias: str) -> str:
    """SQL: shipment row ``alias`` has a party among ``%(orgs)s`` (a text[] parameter)."""
    return (
        f"({alias}.shipper_org = ANY(%(orgs)s) OR {alias}.receiver_org = ANY(%(orgs)s)"
        f" OR {alias}.carrier_org = ANY(%(orgs)s))"
    )


def visible_lot(gtin: str, lot: str) -> str:
    """SQL: the lot (``gtin``, ``lot`` expressions) has a party among ``%(orgs)s``."""
    return (
        f"(EXISTS (SELECT 1 FROM products vp WHERE vp.gtin = {gtin}"
        "   AND vp.owner_org = ANY(%(orgs)s))"
        f" OR EXISTS (SELECT 1 FROM lots vl WHERE vl.gtin = {gtin} AND vl.lot = {lot}"
        "   AND vl.supplier_org = ANY(%(orgs)s))"
        " OR EXISTS (SELECT 1 FROM shipment_lots vsl JOIN shipments vs USING (shipment_id)"
        f"   WHERE vsl.gtin = {gtin} AND vsl.lot = {lot} AND {visible_shipment('vs')}))"
    )


def target(shipment_id: str | None, gtin: str | None, lot: str | None) -> tuple[str, str]:
    """The (kind, key) of what an alert rule or subscription names: a shipment, a lot or a
    product."""
    if shipment_id is not None:
        return "shipment", shipment_id
    if gtin is not None and lot is not None:
        return "lot", f"{gtin}/{lot}"
    return "product", gtin or ""


#: The buyers whose held payment an alert keeps (a hold-until-delivery order with an
#: authorized or held payment, shipping the alert's shipment or lot), and whether an inspection
#: of the alert's lot (or of a lot its shipment carries) was reported since the alert opened.
_HOLD = """
SELECT
  (SELECT array_agg(DISTINCT o.buyer_org) FROM orders o
     JOIN order_shipments os USING (order_id)
     JOIN payments p ON p.order_id = o.order_id AND p.state IN ('authorized', 'held')
    WHERE o.hold_until_delivery AND (os.shipment_id = a.shipment_id OR EXISTS (
      SELECT 1 FROM shipment_lots sl WHERE sl.shipment_id = os.shipment_id
         AND sl.gtin = a.gtin AND sl.lot = a.lot))),
  EXISTS (SELECT 1 FROM inspections i WHERE i.inspected_at >= a.opened_at
     AND ((i.gtin = a.gtin AND i.lot = a.lot) OR i.shipment_id = a.shipment_id
          OR EXISTS (SELECT 1 FROM shipment_lots sl WHERE sl.shipment_id = a.shipment_id
                     AND sl.gtin = i.gtin AND sl.lot = i.lot)))
FROM alerts a WHERE a.alert_id = %s
"""


async def ahold(conn: AsyncConnection, alert_id: Any) -> tuple[frozenset[str], bool]:
    """(buyers whose held payment the alert keeps, inspected since the alert opened)."""
    cur = await conn.execute(_HOLD, (alert_id,))
    row = await cur.fetchone()
    if row is None:
        return frozenset(), False
    return frozenset(row[0] or ()), bool(row[1])


def alert_party_orgs(alert_id: str) -> str:
    """SQL: the organisations party to the alert whose id is the SQL expression ``alert_id``."""
    body = KINDS["alert"].replace("%(key)s", alert_id)
    return f"(SELECT ap.org FROM ({body}) AS ap(rel, org) WHERE ap.org IS NOT NULL)"


#: Party-model keys (ingest/epcis/subjects.py) of what %(orgs)s own or are parties to.
_KEYS = """
WITH sh AS (SELECT shipment_id, origin, destination FROM shipments s WHERE {visible}),
lt AS (
    SELECT l.gtin, l.lot FROM lots l LEFT JOIN products p USING (gtin)
     WHERE l.supplier_org = ANY(%(orgs)s) OR p.owner_org = ANY(%(orgs)s)
    UNION SELECT sl.gtin, sl.lot FROM shipment_lots sl JOIN sh USING (shipment_id)
)
SELECT 'lot:' || gtin || '/' || lot FROM lt
UNION SELECT 'gtin:' || gtin FROM lt
UNION SELECT 'gtin:' || gtin FROM products WHERE owner_org = ANY(%(orgs)s)
UNION SELECT 'sscc:' || sl.sscc FROM shipment_lots sl JOIN sh USING (shipment_id)
       WHERE sl.sscc IS NOT NULL
UNION SELECT 'loc:' || origin FROM sh
UNION SELECT 'loc:' || destination FROM sh
UNION SELECT CASE kind WHEN 'gln' THEN 'gln:' ELSE 'cp:' END || value
        FROM organisation_identifiers WHERE org_id = ANY(%(orgs)s)
""".format(visible=visible_shipment("s"))


def subject_keys_of(conn: db.Connection, orgs: list[str]) -> list[str]:
    """The keys of every lot, item, logistic unit, location and company prefix ``orgs`` own or
    are parties to (what their EPCIS events may name)."""
    return sorted(r[0] for r in conn.execute(_KEYS, {"orgs": orgs}).fetchall())


def sscc_custodians(conn: db.Connection, ssccs: list[str]) -> dict[str, frozenset[str]]:
    """For each shipment carrying one of ``ssccs``: its carrier and receiver organisations."""
    rows = conn.execute(
        "SELECT DISTINCT s.shipment_id, s.carrier_org, s.receiver_org FROM shipment_lots sl"
        " JOIN shipments s USING (shipment_id) WHERE sl.sscc = ANY(%s)",
        (ssccs,),
    ).fetchall()
    return {sid: frozenset(o for o in (c, r) if o) for sid, c, r in rows}
