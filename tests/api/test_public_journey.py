"""The public lot page's journey at the level the brand owner publishes (real PostgreSQL, a
schema of our own): city and country of each recorded location by default, the sites (GLNs,
site names) only after the brand owner opts in, no place at all if it chooses so. Nobody else
may change what the brand owner publishes, and locations are the admins' to record."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from ingest.epcis import capture_events
from ingest.lot_view import location_gln
from tests.support.api import ApiHarness, api_harness
from tests.support.tenancy import member
from tracehub.config import Settings

pytestmark = pytest.mark.integration

GTIN = "04006381333931"
LOT = "J-1"
PLANT = "4006381000017"  # recorded: Nuremberg, DE
DEPOT = "4006381000024"  # not recorded: no city to show
PATH = f"/01/{GTIN}/10/{LOT}"
JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html"}


@pytest.fixture(scope="module")
def harness(stack: Settings) -> Iterator[ApiHarness]:
    with api_harness(stack, extra={"page_cache_s": 0}) as h:
        with h.connect() as conn:
            for org, kind in (("brand", "supplier"), ("rival", "supplier"), ("recv", "buyer")):
                conn.execute(
                    "INSERT INTO organisations (org_id, name, kind, country)"
                    " VALUES (%s, %s, %s, 'DE')",
                    (org, org.upper(), kind),
                )
            conn.execute(
                "INSERT INTO products (gtin, name, owner_org) VALUES (%s, 'Pen', 'brand')", (GTIN,)
            )
            conn.execute(
                "INSERT INTO lots (gtin, lot, supplier_org) VALUES (%s, %s, 'brand')", (GTIN, LOT)
            )
            conn.execute(
                "INSERT INTO shipments (shipment_id, origin, destination, shipper_org,"
                " receiver_org) VALUES ('S-J', %s, %s, 'brand', 'recv')",
                (PLANT, DEPOT),
            )
            conn.execute(
                "INSERT INTO shipment_lots (shipment_id, gtin, lot) VALUES ('S-J', %s, %s)",
                (GTIN, LOT),
            )
            capture_events(
                conn,
                [
                    {
                        "type": "ObjectEvent",
                        "eventTime": "2026-11-20T10:00:00Z",
                        "eventTimeZoneOffset": "+00:00",
                        "action": "OBSERVE",
                        "bizStep": "shipping",
                        "quantityList": [
                            {"epcClass": f"https://id.gs1.org/01/{GTIN}/10/{LOT}", "quantity": 5}
                        ],
                        # An SGLN: dock 3 of the plant, in the plant's city.
                        "readPoint": {"id": f"https://id.gs1.org/414/{PLANT}/254/3"},
                        "bizLocation": {"id": f"https://id.gs1.org/414/{PLANT}/254/3"},
                    },
                    {
                        "type": "ObjectEvent",
                        "eventTime": "2026-11-22T10:00:00Z",
                        "eventTimeZoneOffset": "+00:00",
                        "action": "OBSERVE",
                        "bizStep": "receiving",
                        "quantityList": [
                            {"epcClass": f"https://id.gs1.org/01/{GTIN}/10/{LOT}", "quantity": 5}
                        ],
                        "bizLocation": {"id": "urn:epc:id:sgln:4006381.00002.0"},
                    },
                ],
                source="test",
            )
            conn.commit()
        admin = h.headers("admin")
        reply = h.client.put(
            f"/admin/organisations/brand/locations/{PLANT}",
            headers=admin,
            json={"name": "Brand plant, Hafenstrasse 3", "city": "Nuremberg", "country_code": "DE"},
        )
        assert reply.status_code == 200, reply.text
        yield h


def journey(h: ApiHarness) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    body = h.client.get(PATH, headers=JSON).json()
    return body["journey"], body["shipments"][0], json.dumps(body)


def set_detail(h: ApiHarness, detail: str) -> None:
    brand = member(h, "supplier", "brand")
    reply = h.client.put(
        "/organisations/brand/publication", headers=brand, json={"journey_detail": detail}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["journey_detail"] == detail


def test_location_identifiers_name_their_gln() -> None:
    assert location_gln(PLANT) == PLANT
    assert location_gln(f"https://id.gs1.org/414/{PLANT}/254/3") == PLANT
    assert location_gln("urn:epc:id:sgln:4006381.00002.0") == DEPOT
    assert location_gln("urn:epc:id:sgtin:4006381.033393.1") is None
    assert location_gln("Lyon") is None and location_gln(None) is None


def test_the_journey_is_shown_at_city_level_by_default(harness: ApiHarness) -> None:
    steps, shipment, text = journey(harness)
    assert [(s["step"], s["where"]) for s in steps] == [
        ("shipping", "Nuremberg, DE"),
        ("receiving", None),  # the depot is not recorded: no place rather than its GLN
    ]
    assert all(s["loc"] is None for s in steps)
    # Still verifiable by their hashes.
    assert all(s["event_hash"] and s["event_id"] for s in steps)
    assert (shipment["origin"], shipment["destination"]) == ("Nuremberg, DE", None)
    for site in (PLANT, DEPOT, "Hafenstrasse", "4006381.00002", "/414/"):
        assert site not in text, site
    page = harness.client.get(PATH, headers=HTML).text
    assert "Nuremberg, DE" in page
    assert PLANT not in page and DEPOT not in page and "Hafenstrasse" not in page


def test_sites_only_after_the_brand_owner_opts_in(harness: ApiHarness) -> None:
    # Another company, even a party of the lot, cannot change what the brand owner publishes.
    for org, role in (("rival", "supplier"), ("recv", "buyer")):
        other = member(harness, role, org)
        reply = harness.client.put(
            "/organisations/brand/publication", headers=other, json={"journey_detail": "site"}
        )
        assert reply.status_code == 404, (org, reply.text)
    assert PLANT not in journey(harness)[2]
    set_detail(harness, "site")
    try:
        steps, shipment, _ = journey(harness)
        assert [s["loc"] for s in steps] == [
            f"https://id.gs1.org/414/{PLANT}/254/3",
            "urn:epc:id:sgln:4006381.00002.0",
        ]
        assert (shipment["origin"], shipment["destination"]) == (PLANT, DEPOT)
        page = harness.client.get(PATH, headers=HTML).text
        assert f"GLN {PLANT}" in page
        set_detail(harness, "none")
        steps, shipment, text = journey(harness)
        assert [s["where"] for s in steps] == [None, None] and len(steps) == 2
        assert (shipment["origin"], shipment["destination"]) == (None, None)
        assert "Nuremberg" not in text and PLANT not in text
    finally:
        set_detail(harness, "city")


def test_locations_are_recorded_by_admins_only(harness: ApiHarness) -> None:
    body = {"name": "Depot", "city": "Lyon", "country_code": "FR"}
    url = f"/admin/organisations/brand/locations/{DEPOT}"
    brand = member(harness, "supplier", "brand")
    assert harness.client.put(url, headers=brand, json=body).status_code == 403
    admin = harness.headers("admin")
    bad = harness.client.put(
        "/admin/organisations/brand/locations/4006381000025", headers=admin, json=body
    )
    assert bad.status_code == 400 and "check digit" in bad.text
    assert (
        harness.client.put(
            "/admin/organisations/nobody/locations/" + DEPOT, headers=admin, json=body
        ).status_code
        == 404
    )
    try:
        assert harness.client.put(url, headers=admin, json=body).status_code == 200
        steps, shipment, _ = journey(harness)
        assert [s["where"] for s in steps] == ["Nuremberg, DE", "Lyon, FR"]
        assert shipment["destination"] == "Lyon, FR"
    finally:
        with harness.connect() as conn:
            conn.execute("DELETE FROM locations WHERE gln = %s", (DEPOT,))
            conn.commit()
