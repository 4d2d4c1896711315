"""Shared pieces of the customs and trade-document tests (no tests here): the shipped tariff
table loaded, buyers in Spain and the US, a T-shirt product, quotes through the API, and an
order of the seeded vaccine shipped to a buyer (tests/support/commerce.py seeds the rest)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from commerce.customs.tariffs import import_rows, shipped_rows
from tests.support.api import ApiHarness
from tests.support.commerce import GTIN_A, move_order, party_headers, place_order

#: A T-shirt (GS1 example prefix; check digit valid), HS 6109.10, a duty-bearing line.
GTIN_SHIRT = "09506000134376"


def load_tariffs(h: ApiHarness) -> None:
    with h.connect() as conn:
        import_rows(conn, shipped_rows())
        conn.commit()


def buyer_org(h: ApiHarness, country: str) -> tuple[str, dict[str, str]]:
    """A new buyer organisation in ``country`` and the headers of one of its buyers."""
    org = f"b-{country.lower()}-{secrets.token_hex(3)}"
    with h.connect() as conn:
        conn.execute(
            "INSERT INTO organisations (org_id, name, kind, country) VALUES (%s, %s, 'buyer', %s)",
            (org, f"Buyer {org}", country),
        )
        conn.commit()
    return org, party_headers(h, "buyer", org)


def add_shirt(h: ApiHarness, unit_price_minor: int = 507) -> None:
    with h.connect() as conn:
        conn.execute(
            "INSERT INTO products (gtin, name, owner_org) VALUES (%s, 'Cotton T-shirt', 'sup-a')"
            " ON CONFLICT DO NOTHING",
            (GTIN_SHIRT,),
        )
        conn.execute(
            "INSERT INTO price_lists (supplier_org, gtin, currency, unit_price_minor)"
            " VALUES ('sup-a', %s, 'USD', %s) ON CONFLICT DO NOTHING",
            (GTIN_SHIRT, unit_price_minor),
        )
        conn.commit()


def quote(
    h: ApiHarness,
    buyer: dict[str, str],
    supplier: dict[str, str],
    lines: list[dict[str, Any]],
    incoterm: str = "EXW",
) -> str:
    """An RFQ to sup-a in USD answered with ``lines`` (gtin, quantity, unit_price)."""
    rfq = h.client.post(
        "/commerce/rfqs",
        headers=buyer,
        json={
            "supplier_org": "sup-a",
            "currency": "USD",
            "lines": [{"gtin": x["gtin"], "quantity": x["quantity"]} for x in lines],
        },
    )
    assert rfq.status_code == 201, rfq.text
    answer = h.client.post(
        f"/commerce/rfqs/{rfq.json()['id']}/quotes",
        headers=supplier,
        json={
            "incoterm": incoterm,
            "named_place": "Shenzhen",
            "valid_until": (datetime.now(UTC) + timedelta(days=7)).isoformat(),
            "lines": lines,
        },
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def shipped_order(
    h: ApiHarness,
    buyer: dict[str, str],
    supplier: dict[str, str],
    *,
    incoterm: str = "DDP",
    lot: str = "L1",
    sscc: str = "095060001234567897",
) -> tuple[str, str]:
    """An order of 10 vaccines (HS 300241, lot of origin CN), confirmed and shipped as one
    SSCC; returns (order_id, shipment_id)."""
    classified = h.client.post(
        "/commerce/classifications",
        headers=supplier,
        json={"gtin": GTIN_A, "hs_code": "300241", "lot": lot, "origin_country": "CN"},
    )
    assert classified.status_code == 200, classified.text
    placed = place_order(
        h, buyer, secrets.token_hex(6), incoterm=incoterm, quantity=10, named_place="Valencia"
    )
    assert placed.status_code in (200, 201), placed.text
    order_id = str(placed.json()["order_id"])
    assert move_order(h, supplier, order_id, "confirmed").status_code == 200
    shipment_id = f"SHP-{order_id[:8]}"
    shipped = h.client.post(
        f"/commerce/orders/{order_id}/shipments",
        headers=supplier,
        json={
            "shipment_id": shipment_id,
            "origin": "urn:epc:id:sgln:9506000.00001.0",
            "destination": "urn:epc:id:sgln:9506000.00002.0",
            "expected_delivery": (datetime.now(UTC) + timedelta(days=3)).isoformat(),
            "lots": [{"gtin": GTIN_A, "lot": lot, "sscc": sscc, "quantity": 10}],
        },
    )
    assert shipped.status_code == 201, shipped.text
    return order_id, shipment_id
