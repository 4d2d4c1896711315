"""The Digital Link resolver and QR labels over HTTP (real PostgreSQL, a schema of our own),
plus the pure parts: content negotiation, language choice, catalogs, excursion runs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from api import i18n
from api.resolver import wants_json
from ingest.lot_view import excursions
from tests.support.api import ApiHarness, api_harness
from tracehub.config import Settings

GTIN = "04006381333931"
LOT = "B/42-x"


@pytest.fixture(scope="module")
def harness(stack: Settings) -> Iterator[ApiHarness]:
    with api_harness(stack, extra={"page_cache_s": 0}) as h:
        with h.connect() as conn:
            conn.execute(
                "INSERT INTO organisations (org_id, name, kind, country)"
                " VALUES ('acme', 'ACME Pens', 'supplier', 'DE')"
            )
            conn.execute(
                "INSERT INTO products (gtin, name, owner_org, temp_min_c, temp_max_c)"
                " VALUES (%s, 'Pen', 'acme', 15, 25)",
                (GTIN,),
            )
            conn.execute(
                "INSERT INTO lots (gtin, lot, supplier_org, quantity) VALUES (%s, %s, 'acme', 10)",
                (GTIN, LOT),
            )
            conn.execute(
                "INSERT INTO shipments (shipment_id, origin, destination, shipper_org)"
                " VALUES ('S-1', 'Nuremberg', 'Lyon', 'acme')"
            )
            conn.execute(
                "INSERT INTO shipment_lots (shipment_id, gtin, lot) VALUES ('S-1', %s, %s)",
                (GTIN, LOT),
            )
            conn.commit()
        yield h


pytestmark = pytest.mark.integration
JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"}


def test_invalid_links_are_400_with_the_reason_in_json_or_html(harness: ApiHarness) -> None:
    bad = harness.client.get("/01/4006381333932/10/X", headers=JSON)
    assert bad.status_code == 400
    assert bad.json() == {"detail": "GTIN (AI 01) 4006381333932 has check digit 2, expected 1"}
    page = harness.client.get("/01/4006381333931/10/" + "A" * 21, headers=HTML)
    assert page.status_code == 400
    assert page.headers["content-type"].startswith("text/html")
    assert "batch/lot (AI 10) is at most 20 characters, got 21" in page.text
    assert harness.client.get("/01/4006381333931/10/a%20b", headers=JSON).status_code == 400
    assert harness.client.get(
        "/01/4006381333931", headers=JSON, params={"17": "271301"}
    ).json() == {"detail": "expiry date (AI 17) 271301 has month 13, not 01-12"}


def test_unknown_product_or_lot_is_404(harness: ApiHarness) -> None:
    assert harness.client.get("/01/09506000134352", headers=JSON).status_code == 404
    reply = harness.client.get(f"/01/{GTIN}/10/NOPE", headers=HTML)
    assert reply.status_code == 404
    assert "No product or lot is known under this link." in reply.text


def test_json_view_of_a_lot_shows_public_fields_only(harness: ApiHarness) -> None:
    # GTIN-13 in the link, percent-encoded lot: both resolve to the stored lot.
    reply = harness.client.get("/01/4006381333931/10/B%2F42-x", headers=JSON)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["gs1"] == {"gtin": GTIN, "lot": LOT, "serial": None}
    assert body["product"]["name"] == "Pen"
    assert body["lot"]["supplier"] == "ACME Pens" and body["lot"]["quantity"] == 10
    # Places at city level (the default): a free-text place is no recorded location, so it is
    # not shown (it might be an address); tests/api/test_public_journey.py has the rest.
    assert body["shipments"][0]["origin"] is None
    assert body["shipments"][0]["shipper"] == "ACME Pens"
    assert body["sensors"]["summary"]["band"]["temp_max_c"] == 25.0
    text = json.dumps(body)
    for private in ("acme", "S-1", "org_id", "shipment_id", "password", "email"):
        assert private not in text, private


def test_browsers_get_the_page_in_their_language(harness: ApiHarness) -> None:
    url = f"/01/{GTIN}/10/B%2F42-x"
    page = harness.client.get(url, headers={**HTML, "Accept-Language": "fr;q=1, es-MX;q=0.8"})
    assert page.status_code == 200
    assert '<html lang="es" dir="ltr">' in page.text
    assert "Trazabilidad del producto" in page.text
    assert 'id="verify-data"' in page.text and "/static/verify.js" in page.text
    arabic = harness.client.get(url + "?lang=ar", headers=HTML)
    assert '<html lang="ar" dir="rtl">' in arabic.text
    assert arabic.cookies.get("lang") == "ar"
    assert harness.client.get("/static/verify.js").status_code == 200


def test_qr_labels_encode_the_link_on_the_public_base_url(harness: ApiHarness) -> None:
    png = harness.client.get("/qr/01/4006381333931/10/B%2F42-x.png")
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    base = harness.config.public_base_url
    assert png.headers["x-digital-link"] == f"{base}/01/{GTIN}/10/B%2F42-x"
    svg = harness.client.get(f"/qr/01/{GTIN}/10/B%2F42-x/21/7.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.lstrip().startswith("<svg")
    assert svg.headers["x-digital-link"].endswith("/21/7")
    assert harness.client.get(f"/qr/01/{GTIN}.gif").status_code == 400
    assert harness.client.get("/qr/01/4006381333930.svg").status_code == 400


def test_content_negotiation() -> None:
    assert wants_json("application/json")
    assert wants_json("application/ld+json;q=0.9, text/html;q=0.5")
    assert not wants_json("text/html,application/xhtml+xml,*/*;q=0.8")
    assert not wants_json(None)
    assert not wants_json("application/json;q=0.5, text/html")


def test_accept_language_by_q_value() -> None:
    assert i18n.from_accept_language("de, zh-CN;q=0.7, es;q=0.9") == "es"
    assert i18n.from_accept_language("ar-EG") == "ar"
    assert i18n.from_accept_language("de, fr;q=0.5") is None
    assert i18n.from_accept_language("*;q=0.5, en;q=0") == "zh"
    assert i18n.choose_locale("AR", "es", "zh") == "ar"
    assert i18n.choose_locale("xx", "es", "zh") == "es"
    assert i18n.choose_locale(None, None, None) == "en"
    assert i18n.direction("ar") == "rtl" and i18n.direction("zh") == "ltr"


def test_every_catalog_has_every_message() -> None:
    directory = Path(i18n.__file__).parent / "locales"
    english = set(json.loads((directory / "en.json").read_text("utf-8")))
    for locale in i18n.LOCALES:
        own = json.loads((directory / f"{locale}.json").read_text("utf-8"))
        assert set(own) == english, locale


def test_excursions_are_runs_outside_the_band() -> None:
    values = [5.0, 9.0, 9.5, 5.0, 1.0, 5.0]
    series = [
        {"ts": f"2026-01-01T00:0{i}:00+00:00", "temperature_c": v, "humidity_pct": 50.0}
        for i, v in enumerate(values)
    ]
    band = {"temp_min_c": 2.0, "temp_max_c": 8.0, "humidity_min": None, "humidity_max": None}
    found = excursions(series, band)
    assert [(e.quantity, e.start[14:16], e.points, e.extreme) for e in found] == [
        ("temperature", "01", 2, 9.5),
        ("temperature", "04", 1, 1.0),
    ]


def test_views_are_cached_for_the_configured_time(stack: Settings) -> None:
    """With a view cache, a change shows only once the cached view expires; each format and
    language is cached apart."""
    with api_harness(stack, extra={"page_cache_s": 1.5}) as h:
        with h.connect() as conn:
            conn.execute("INSERT INTO products (gtin, name) VALUES (%s, 'Old name')", (GTIN,))
            conn.commit()
        url = f"/01/{GTIN}"
        assert h.client.get(url, headers=JSON).json()["product"]["name"] == "Old name"
        with h.connect() as conn:
            conn.execute("UPDATE products SET name = 'New name' WHERE gtin = %s", (GTIN,))
            conn.commit()
        assert h.client.get(url, headers=JSON).json()["product"]["name"] == "Old name"
        assert "New name" in h.client.get(url, headers=HTML).text
        time.sleep(1.6)
        assert h.client.get(url, headers=JSON).json()["product"]["name"] == "New name"
