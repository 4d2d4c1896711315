"""Supplier scorecards and customer RFM tiers against hand-computed values (real PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from commerce.scorecards import customer_rfm
from tests.support.api import ApiHarness
from tests.support.commerce import GTIN_A, party_headers

pytestmark = pytest.mark.integration
AS_OF = datetime(2026, 6, 30, tzinfo=UTC)


@pytest.fixture()
def h(h: ApiHarness) -> ApiHarness:
    """The area's harness (tests/commerce/conftest.py) with three more suppliers, two more
    buyers."""
    with h.connect() as conn:
        conn.execute(
            "INSERT INTO organisations (org_id, name, kind) VALUES"
            " ('sup-c', 'C', 'supplier'), ('sup-d', 'D', 'supplier'),"
            " ('sup-e', 'E', 'supplier'), ('buy-c', 'C', 'buyer'), ('buy-d', 'D', 'buyer')"
        )
        conn.commit()
    return h


def _shipments(conn: Any, org: str, on_time: int, late: int) -> None:
    expected = datetime(2026, 5, 1, tzinfo=UTC)
    for i in range(on_time + late):
        delivered = expected + (timedelta(hours=-2) if i < on_time else timedelta(hours=5))
        conn.execute(
            "INSERT INTO shipments (shipment_id, origin, destination, state, shipper_org,"
            " expected_delivery, delivered_at) VALUES (%s, 'a', 'b', 'delivered', %s, %s, %s)",
            (f"{org}-{i}", org, expected, delivered),
        )
    conn.commit()


def test_supplier_scores_and_tiers(h: ApiHarness) -> None:
    admin = party_headers(h, "admin", None)
    inputs = {
        "sup-a": {
            "cost": "80",
            "innovation": "70",
            "environmental": "90",
            "quality_pass_rate": "95",
        },
        "sup-b": {
            "cost": "60",
            "innovation": "40",
            "environmental": "50",
            "quality_pass_rate": "88",
        },
        "sup-d": {
            "cost": "100",
            "innovation": "100",
            "environmental": "100",
            "quality_pass_rate": "100",
        },
        "sup-e": {"cost": "10", "innovation": "0", "environmental": "0", "quality_pass_rate": "20"},
    }
    for org, body in inputs.items():
        reply = h.client.put(
            f"/commerce/scorecards/suppliers/{org}/inputs", headers=admin, json=body
        )
        assert reply.status_code == 200, reply.text
    assert (
        h.client.put(
            "/commerce/scorecards/suppliers/sup-a/inputs", headers=admin, json={"cost": "101"}
        ).status_code
        == 422
    )
    with h.connect() as conn:
        _shipments(conn, "sup-a", on_time=3, late=1)  # 75 %
        _shipments(conn, "sup-b", on_time=2, late=0)  # 100 %
        _shipments(conn, "sup-d", on_time=0, late=1)  # 0 %
    cards = h.client.get("/commerce/scorecards/suppliers", headers=admin).json()
    got = [(c["supplier_org"], c["score"], c["tier"]) for c in cards]
    # sup-a: .30*95 + .25*75 + .20*80 + .15*70 + .10*90 = 28.5+18.75+16+10.5+9 = 82.75
    # sup-d: 30 + 0 + 20 + 15 + 10 = 75.00
    # sup-b: 26.4 + 25 + 12 + 6 + 5 = 74.40
    # sup-c: no inputs, no shipments: every criterion neutral 50 -> 50.00
    # sup-e: 6 + .25*50 (no shipments) + 2 + 0 + 0 = 20.50
    # 5 suppliers: strategic ceil(1) = 1, preferred up to rank ceil(2.5) = 3
    assert got == [
        ("sup-a", "82.75", "strategic"),
        ("sup-d", "75.00", "preferred"),
        ("sup-b", "74.40", "preferred"),
        ("sup-c", "50.00", "observed"),
        ("sup-e", "20.50", "observed"),
    ]
    by_org = {c["supplier_org"]: c for c in cards}
    assert by_org["sup-c"]["no_data"] == [
        "quality",
        "on_time",
        "cost",
        "innovation",
        "environmental",
    ]
    assert by_org["sup-e"]["no_data"] == ["on_time"]
    assert by_org["sup-a"]["criteria"]["on_time"] == "75.00"


def _order(
    conn: Any,
    buyer: str,
    days_ago: int,
    currency: str,
    total: int,
    settlement: tuple[str, int] | None = None,
    state: str = "placed",
) -> None:
    s_cur, s_total = settlement or (currency, total)
    conn.execute(
        "INSERT INTO orders (buyer_org, supplier_org, idempotency_key, currency, incoterm,"
        " total_minor, settlement_currency, settlement_minor, created_by, created_at, state)"
        " VALUES (%s, 'sup-a', gen_random_uuid()::text, %s, 'EXW', %s, %s, %s, 't', %s, %s)",
        (buyer, currency, total, s_cur, s_total, AS_OF - timedelta(days=days_ago), state),
    )


def test_customer_rfm_tiers(h: ApiHarness) -> None:
    with h.connect() as conn:
        conn.execute(
            "INSERT INTO fx_rates (base, quote, rate, source, observed_at) VALUES"
            " ('EUR', 'USD', 1.0850, 'test', %s), ('EUR', 'USD', 1.5, 'future', %s),"
            " ('JPY', 'USD', 0.0066, 'test', %s)",
            (AS_OF - timedelta(days=1), AS_OF + timedelta(days=1), AS_OF - timedelta(days=1)),
        )
        # buy-a: 5 orders, last 10 days ago, 130,000.00 USD -> high value
        for days, cents in [
            (10, 3_000_000),
            (40, 3_000_000),
            (80, 3_000_000),
            (200, 2_000_000),
            (300, 2_000_000),
        ]:
            _order(conn, "buy-a", days, "USD", cents)
        # buy-b: 2 EUR orders, 30,000 + 20,000 EUR at 1.0850 = 54,250.00 USD, last 100 days
        _order(conn, "buy-b", 100, "EUR", 3_000_000)
        _order(conn, "buy-b", 150, "EUR", 2_000_000)
        # buy-c: 4 orders (one settled in USD from CNY), 99,999.99 USD: one cent short of
        # high value -> potential; a cancelled order does not count
        _order(conn, "buy-c", 20, "USD", 2_500_000)
        _order(conn, "buy-c", 50, "USD", 2_500_000)
        _order(conn, "buy-c", 60, "USD", 2_500_000)
        _order(conn, "buy-c", 70, "CNY", 17_000_000, ("USD", 2_499_999))
        _order(conn, "buy-c", 5, "USD", 90_000_000, state="cancelled")
        # buy-d: 9,000,000 JPY (0 decimals) at 0.0066 = 59,400.00 USD but one order -> long
        # tail; an order 400 days ago is outside the year
        _order(conn, "buy-d", 30, "JPY", 9_000_000)
        _order(conn, "buy-d", 400, "USD", 50_000_000)
        conn.commit()
        rfm = {r["buyer_org"]: r for r in customer_rfm(conn, AS_OF)}
    got = {
        b: (r["recency_days"], r["frequency"], r["monetary_usd"], r["tier"]) for b, r in rfm.items()
    }
    assert got == {
        "buy-a": (10, 5, Decimal("130000.00"), "high_value"),
        "buy-b": (100, 2, Decimal("54250.00"), "potential"),
        "buy-c": (20, 4, Decimal("99999.99"), "potential"),
        "buy-d": (30, 1, Decimal("59400.00"), "long_tail"),
    }
    supplier = party_headers(h, "supplier", "sup-a")
    api = h.client.get(
        "/commerce/scorecards/customers", headers=supplier, params={"as_of": AS_OF.isoformat()}
    )
    assert api.status_code == 200
    assert {r["buyer_org"]: r["tier"] for r in api.json()}["buy-a"] == "high_value"


def test_quality_comes_from_inspections_when_there_are_any(h: ApiHarness) -> None:
    admin = party_headers(h, "admin", None)
    inputs = h.client.put(
        "/commerce/scorecards/suppliers/sup-a/inputs",
        headers=admin,
        json={"cost": "80", "innovation": "70", "environmental": "90", "quality_pass_rate": "95"},
    )
    assert inputs.status_code == 200, inputs.text
    with h.connect() as conn:
        _shipments(conn, "sup-a", on_time=3, late=1)
        # 0006's inspections of sup-a's lots: 3 pass, 1 fail -> 75 % (the manual 95 is ignored)
        for i, (lot, result) in enumerate(
            [("L1", "pass"), ("L1", "pass"), ("L2", "fail"), ("L2", "pass")]
        ):
            digest = f"{i:064x}"
            conn.execute(
                "INSERT INTO epcis_events (event_id, event_type, event_time, event_json,"
                " event_hash, hash_hex, source) VALUES (%s, 'ObjectEvent', now(), '\\x7b7d',"
                " %s, %s, 'test')",
                (f"urn:uuid:insp-{i}", f"ni:///sha-256;{digest}?ver=CBV2.0", digest),
            )
            conn.execute(
                "INSERT INTO inspections (gtin, lot, inspector, result, report_sha256,"
                " report_cid, report_size, event_id, event_hash) VALUES"
                " (%s, %s, 'qa', %s, %s, 'cid', 1, %s, %s)",
                (
                    GTIN_A,
                    lot,
                    result,
                    digest,
                    f"urn:uuid:insp-{i}",
                    f"ni:///sha-256;{digest}?ver=CBV2.0",
                ),
            )
        conn.commit()
    cards = {
        c["supplier_org"]: c
        for c in h.client.get("/commerce/scorecards/suppliers", headers=admin).json()
    }
    # .30*75 + .25*75 + .20*80 + .15*70 + .10*90 = 22.5+18.75+16+10.5+9 = 76.75
    assert cards["sup-a"]["criteria"]["quality"] == "75.00"
    assert cards["sup-a"]["quality_source"] == "inspections"
    assert cards["sup-a"]["score"] == "76.75"
