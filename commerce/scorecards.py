"""Supplier scorecards and customer RFM tiers.

Supplier score (0..100) = 30 % quality + 25 % on-time delivery + 20 % cost + 15 % innovation
+ 10 % environmental compliance, each 0..100:
- quality: inspection pass rate (0006's ``inspections`` table, rows with result pass/fail, joined
  to the supplier through the lot) if any exist, else the manual ``supplier_inputs`` value;
- on-time: share of the supplier's delivered shipments with delivered_at <= expected_delivery;
  a shipment late by no more than customs held it (first ``held_for_inspection`` to
  ``released``, 0016's clearance_steps) is a customs delay: left out of the on-time share and
  counted on its own (``customs_delayed``), since the supplier did not cause it;
- cost, innovation, environmental: manual inputs (``supplier_inputs``; 50 when none).
A criterion without data scores 50 (neutral) and is listed in ``no_data``.
Tiers by rank (score descending, org id to break ties): the first ceil(20 % of n) strategic,
up to ceil(50 % of n) preferred, the rest observed.

Customer RFM over the trailing 365 days before ``as_of``: R days since the last order, F orders,
M order value in USD (settlement amount when settled in USD, else converted at the latest
rate). High value: R <= 90, F >= 4, M >= 100,000 USD; potential: R <= 180, F >= 2,
M >= 50,000 USD; else long tail.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from commerce import money

WEIGHTS = {
    "quality": Decimal("0.30"),
    "on_time": Decimal("0.25"),
    "cost": Decimal("0.20"),
    "innovation": Decimal("0.15"),
    "environmental": Decimal("0.10"),
}
NEUTRAL = Decimal(50)
_CENT = Decimal("0.01")


def _inspection_rates(conn: Any, buyer_org: str | None) -> dict[str, Decimal]:
    cols = {
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = 'inspections'"
        ).fetchall()
    }
    if not {"gtin", "lot", "result"} <= cols:
        return {}
    rows = conn.execute(
        "SELECT l.supplier_org, count(*) FILTER (WHERE i.result = 'pass'), count(*)"
        " FROM inspections i JOIN lots l ON l.gtin = i.gtin AND l.lot = i.lot"
        " WHERE l.supplier_org IS NOT NULL AND i.result IN ('pass', 'fail')"
        " AND (%(buyer)s::text IS NULL OR EXISTS (SELECT 1 FROM shipment_lots sl"
        "   JOIN shipments s USING (shipment_id) WHERE sl.gtin = i.gtin AND sl.lot = i.lot"
        "   AND s.receiver_org = %(buyer)s))"
        " GROUP BY l.supplier_org",
        {"buyer": buyer_org},
    ).fetchall()
    return {org: Decimal(100) * passed / total for org, passed, total in rows if total}


def supplier_scorecards(conn: Any, buyer_org: str | None = None) -> list[dict[str, Any]]:
    """Every supplier's criteria, weighted score and tier, best first. For ``buyer_org``, only
    its own trade: the suppliers it ordered from, scored on the shipments and inspections of
    what it received (another buyer's trade stays private)."""
    inspected = _inspection_rates(conn, buyer_org)
    own = "(%(buyer)s::text IS NULL OR s.receiver_org = %(buyer)s)"
    rows = conn.execute(
        "SELECT o.org_id, i.cost, i.innovation, i.environmental, i.quality_pass_rate,"
        " (SELECT count(*) FROM shipments s WHERE s.shipper_org = o.org_id"
        f"   AND s.delivered_at IS NOT NULL AND s.expected_delivery IS NOT NULL AND {own}),"
        " (SELECT count(*) FROM shipments s WHERE s.shipper_org = o.org_id"
        f"   AND s.delivered_at IS NOT NULL AND s.delivered_at <= s.expected_delivery AND {own}),"
        " (SELECT count(*) FROM shipments s JOIN LATERAL (SELECT"
        "   max(c.at) FILTER (WHERE c.step = 'released')"
        "   - min(c.at) FILTER (WHERE c.step = 'held_for_inspection') AS held"
        "   FROM clearance_steps c WHERE c.shipment_id = s.shipment_id) h ON h.held IS NOT NULL"
        "   WHERE s.shipper_org = o.org_id AND s.delivered_at > s.expected_delivery"
        f"   AND s.delivered_at - h.held <= s.expected_delivery AND {own})"
        " FROM organisations o LEFT JOIN supplier_inputs i ON i.supplier_org = o.org_id"
        " WHERE o.kind = 'supplier' AND (%(buyer)s::text IS NULL OR EXISTS (SELECT 1 FROM"
        "   orders x WHERE x.supplier_org = o.org_id AND x.buyer_org = %(buyer)s))"
        " ORDER BY o.org_id",
        {"buyer": buyer_org},
    ).fetchall()
    cards = []
    for (
        org,
        cost,
        innovation,
        environmental,
        manual_quality,
        all_delivered,
        on_time,
        customs,
    ) in rows:
        no_data = []
        delivered = all_delivered - customs
        quality = inspected.get(org, manual_quality)
        criteria: dict[str, Decimal | None] = {
            "quality": quality,
            "on_time": Decimal(100) * on_time / delivered if delivered else None,
            "cost": cost,
            "innovation": innovation,
            "environmental": environmental,
        }
        values = {}
        for name, value in criteria.items():
            if value is None:
                no_data.append(name)
                value = NEUTRAL
            values[name] = Decimal(value).quantize(_CENT, ROUND_HALF_EVEN)
        score = sum(
            (WEIGHTS[n] * criteria_value for n, criteria_value in values.items()), Decimal(0)
        ).quantize(_CENT, ROUND_HALF_EVEN)
        cards.append(
            {
                "supplier_org": org,
                "criteria": values,
                "score": score,
                "no_data": no_data,
                "quality_source": "inspections" if org in inspected else "manual",
                "customs_delayed": customs,
            }
        )
    cards.sort(key=lambda c: (-c["score"], c["supplier_org"]))
    n = len(cards)
    strategic, preferred = math.ceil(0.2 * n), math.ceil(0.5 * n)
    for rank, card in enumerate(cards, start=1):
        card["rank"] = rank
        card["tier"] = (
            "strategic" if rank <= strategic else "preferred" if rank <= preferred else "observed"
        )
    return cards


def rfm_tier(recency_days: int | None, frequency: int, monetary_usd: Decimal) -> str:
    if recency_days is None:
        return "long_tail"
    if recency_days <= 90 and frequency >= 4 and monetary_usd >= 100_000:
        return "high_value"
    if recency_days <= 180 and frequency >= 2 and monetary_usd >= 50_000:
        return "potential"
    return "long_tail"


def customer_rfm(
    conn: Any, as_of: datetime, supplier_org: str | None = None
) -> list[dict[str, Any]]:
    """Every buyer organisation's R, F, M (USD) and tier as of ``as_of``; for
    ``supplier_org``, only its own customers and its own orders."""
    since = as_of - timedelta(days=365)
    rates = {
        base: Decimal(rate)
        for base, rate in conn.execute(
            "SELECT DISTINCT ON (base) base, rate FROM fx_rates WHERE quote = 'USD'"
            " AND observed_at <= %s ORDER BY base, observed_at DESC",
            (as_of,),
        ).fetchall()
    }
    buyers = [
        r[0]
        for r in conn.execute(
            "SELECT org_id FROM organisations o WHERE kind = 'buyer' AND (%(s)s::text IS NULL"
            " OR EXISTS (SELECT 1 FROM orders x WHERE x.buyer_org = o.org_id"
            " AND x.supplier_org = %(s)s)) ORDER BY org_id",
            {"s": supplier_org},
        ).fetchall()
    ]
    orders = conn.execute(
        "SELECT buyer_org, created_at, currency, total_minor, settlement_currency,"
        " settlement_minor FROM orders WHERE state <> 'cancelled'"
        " AND created_at > %s AND created_at <= %s AND (%s::text IS NULL OR supplier_org = %s)",
        (since, as_of, supplier_org, supplier_org),
    ).fetchall()
    stats: dict[str, dict[str, Any]] = {
        b: {"last": None, "f": 0, "m_minor": 0, "unconverted": 0} for b in buyers
    }
    for buyer, created, currency, total, s_currency, s_total in orders:
        entry = stats.setdefault(buyer, {"last": None, "f": 0, "m_minor": 0, "unconverted": 0})
        entry["f"] += 1
        entry["last"] = max(entry["last"] or created, created)
        if s_currency == "USD":
            entry["m_minor"] += s_total
        elif currency == "USD":
            entry["m_minor"] += total
        elif currency in rates:
            entry["m_minor"] += money.convert(total, currency, "USD", rates[currency])
        else:
            entry["unconverted"] += 1
    result = []
    for buyer, entry in sorted(stats.items()):
        recency = (as_of - entry["last"]).days if entry["last"] else None
        monetary = money.to_major(entry["m_minor"], "USD")
        result.append(
            {
                "buyer_org": buyer,
                "recency_days": recency,
                "frequency": entry["f"],
                "monetary_usd": monetary,
                "orders_without_rate": entry["unconverted"],
                "tier": rfm_tier(recency, entry["f"], monetary),
            }
        )
    return result
