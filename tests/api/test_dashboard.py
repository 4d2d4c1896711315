"""Logistics dashboard JSON endpoints and page, on a migrated schema with real rows."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.api import ApiHarness, api_harness
from tests.support.browser import chromium, serve, sign_in
from tracehub.config import Settings

pytestmark = pytest.mark.integration

GTIN = "09506000134352"


def seed(h: ApiHarness) -> datetime:
    """A 2..8 °C product, a lot on an in-transit shipment watched by one logger (30 readings,
    two above 8 °C), a planned shipment, an open and a resolved alert; both shipments are
    carried by organisation ``carrier-x`` (another, ``carrier-y``, carries nothing)."""
    now = datetime.now(UTC).replace(microsecond=0)
    with h.connect() as conn:
        conn.execute(
            "INSERT INTO organisations (org_id, name, kind) VALUES"
            " ('carrier-x', 'Carrier X', 'logistics'), ('carrier-y', 'Carrier Y', 'logistics')"
        )
        conn.execute(
            "INSERT INTO products (gtin, name, temp_min_c, temp_max_c, humidity_min, humidity_max)"
            " VALUES (%s, 'Vaccine', 2, 8, 20, 80)",
            (GTIN,),
        )
        conn.execute("INSERT INTO lots (gtin, lot) VALUES (%s, 'L1')", (GTIN,))
        conn.execute(
            "INSERT INTO shipments (shipment_id, origin, destination, state, shipped_at,"
            " carrier_org) VALUES ('S-MOVING', 'Shenzhen', 'Rotterdam', 'in_transit', %s,"
            " 'carrier-x'), ('S-PLANNED', 'Shenzhen', 'Madrid', 'planned', NULL, 'carrier-x')",
            (now - timedelta(hours=2),),
        )
        conn.execute(
            "INSERT INTO shipment_lots (shipment_id, gtin, lot, quantity)"
            " VALUES ('S-MOVING', %s, 'L1', 100)",
            (GTIN,),
        )
        conn.execute(
            "INSERT INTO device_assignments (device_id, shipment_id, valid_from)"
            " VALUES ('logger-1', 'S-MOVING', %s)",
            (now - timedelta(hours=2),),
        )
        for seq in range(1, 31):
            temperature = 9.5 if seq in (10, 11) else 4.0 + seq / 100
            conn.execute(
                "INSERT INTO readings (device_id, seq, ts, received_at, kind, data, loc,"
                " prev_hash, reading_hash, envelope, certificate_sha256)"
                " VALUES ('logger-1', %s, %s, %s, 'environment', %s, %s, %s, %s, 'x', %s)",
                (
                    seq,
                    now - timedelta(minutes=60 - seq),
                    now,
                    json.dumps({"temperature_c": temperature, "humidity_pct": 50}),
                    f"geo:51.9{seq:02d},4.4" if seq % 10 == 0 else None,
                    "0" * 64,
                    f"{seq:064x}",
                    "a" * 64,
                ),
            )
        # A reading of another device outside any assignment: nobody's shipment, so no
        # carrier's dashboard shows it.
        conn.execute(
            "INSERT INTO readings (device_id, seq, ts, received_at, kind, data, prev_hash,"
            " reading_hash, envelope, certificate_sha256)"
            " VALUES ('dock-7', 1, %s, %s, 'environment', '{\"temperature_c\": 20.5}', %s, %s,"
            " 'x', %s)",
            (now, now, "0" * 64, "f" * 64, "a" * 64),
        )
        for state in ("open", "resolved"):
            conn.execute(
                "INSERT INTO alerts (rule_id, kind, severity, state, shipment_id, device_id,"
                " started_at) VALUES ('r1', 'temperature_excursion', 'critical', %s,"
                " 'S-MOVING', 'logger-1', %s)",
                (state, now - timedelta(minutes=50)),
            )
        conn.commit()
    return now


def test_dashboard_endpoints(stack: Settings) -> None:
    with api_harness(stack) as h:
        now = seed(h)
        staff = h.headers("logistics", org_id="carrier-x")
        stranger = h.headers("logistics", org_id="carrier-y")
        for path in ("/dashboard/shipments", "/dashboard/alerts", "/dashboard/readings/latest"):
            assert h.client.get(path, headers=h.headers("buyer")).status_code == 403
            assert h.client.get(path).status_code == 401
            # Another carrier's staff see none of it.
            assert h.client.get(path, headers=stranger).json() == []
        other = h.client.get("/dashboard/shipments/S-MOVING/series", headers=stranger)
        assert other.status_code == 404

        shipments = h.client.get("/dashboard/shipments", headers=staff).json()
        assert [s["shipment_id"] for s in shipments] == ["S-MOVING", "S-PLANNED"]
        moving = shipments[0]
        assert moving["open_alerts"] == 1
        assert moving["lots"] == [{"gtin": GTIN, "lot": "L1", "sscc": None, "quantity": 100}]
        assert moving["last_reading"]["data"]["temperature_c"] == pytest.approx(4.30)
        assert datetime.fromisoformat(moving["last_reading"]["ts"]) == now - timedelta(minutes=30)
        assert moving["last_position"] == "geo:51.930,4.4"
        assert shipments[1]["last_reading"] is None and shipments[1]["open_alerts"] == 0
        planned = h.client.get("/dashboard/shipments?state=planned", headers=staff).json()
        assert [s["shipment_id"] for s in planned] == ["S-PLANNED"]

        latest = {
            r["device_id"]: r
            for r in h.client.get("/dashboard/readings/latest", headers=staff).json()
        }
        assert set(latest) == {"logger-1"}
        assert latest["logger-1"]["seq"] == 30 and latest["logger-1"]["shipment_id"] == "S-MOVING"
        # Paged and filtered: by shipment, by device id prefix, past the last page.
        for query, devices in (
            ("shipment_id=S-MOVING", ["logger-1"]),
            ("shipment_id=S-PLANNED", []),
            ("device=logg", ["logger-1"]),
            ("device=dock", []),
            ("offset=1", []),
        ):
            page = h.client.get(f"/dashboard/readings/latest?{query}", headers=staff).json()
            assert [r["device_id"] for r in page] == devices, query

        alerts = h.client.get("/dashboard/alerts", headers=staff).json()
        assert [a["state"] for a in alerts] == ["open"]

        series = h.client.get(
            "/dashboard/shipments/S-MOVING/series", params={"points": 10}, headers=staff
        ).json()
        assert series["band"] == {
            "temp_min": 2.0,
            "temp_max": 8.0,
            "humidity_min": 20.0,
            "humidity_max": 80.0,
        }
        assert series["thinned_from"] == 30
        points = series["points"]
        assert len(points) == 10 and points[0]["temperature_c"] == pytest.approx(4.01)
        assert points[-1]["temperature_c"] == pytest.approx(4.30)  # the last point is kept
        full = h.client.get("/dashboard/shipments/S-MOVING/series", headers=staff).json()
        assert sum(p["temperature_c"] > 8 for p in full["points"]) == 2
        assert h.client.get("/dashboard/shipments/NOPE/series", headers=staff).status_code == 404
        bad = h.client.get("/dashboard/shipments/S-MOVING/series?hours=0", headers=staff)
        assert bad.status_code == 422

        page = h.client.get("/dashboard")
        assert page.status_code == 200
        # The codes' labels come in the reader's language, as data for the script.
        spanish = h.client.get("/dashboard", headers={"Accept-Language": "es-MX,en;q=0.5"}).text
        block = spanish.split('<script type="application/json" id="labels">')[1]
        labels = json.loads(block.split("</script>")[0])
        assert labels["shipment_state_in_transit"] == "En tránsito"
        assert labels["alert_temperature_excursion"] == "Desviación de temperatura"
        assert 'id="chart-temp"' in page.text and "/static/dashboard/dashboard.js" in page.text
        assert h.client.get("/static/dashboard/dashboard.js").status_code == 200


# ------------------------------------------------------------------ the page in real Chromium


def test_dashboard_page_in_chromium(stack: Settings) -> None:
    """Sign in, see the shipments, the chart with its two excursions, and a new alert arrive
    over the alert stream (well before the 15 s polling fallback or the 60 s refresh)."""
    with api_harness(stack) as h:
        seed(h)
        username, password = h.user(["logistics"], org_id="carrier-x")
        with serve(h.config) as base, chromium() as driver:
            sign_in(driver, f"{base}/dashboard", username, password)
            wait = WebDriverWait(driver, 10)
            card = wait.until(
                lambda d: d.find_element(By.CSS_SELECTOR, '.card[data-shipment="S-MOVING"]')
            )
            assert "1 open alerts" in card.text and "Shenzhen → Rotterdam" in card.text
            assert "4.3 °C" in card.text
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#chart-temp polyline"))
            assert len(driver.find_elements(By.CSS_SELECTOR, "#chart-temp circle.excursion")) == 2
            assert not driver.find_elements(By.CSS_SELECTOR, "#chart-hum circle.excursion")
            rows = driver.find_elements(By.CSS_SELECTOR, "#readings tbody tr")
            assert len(rows) == 1  # the logger; the unassigned dock device is nobody's
            wait.until(lambda d: "live" in d.find_element(By.ID, "live").text)

            with h.connect() as conn:
                (alert_id,) = conn.execute(
                    "INSERT INTO alerts (rule_id, kind, severity, shipment_id, started_at)"
                    " VALUES ('r2', 'sensor_silent', 'warning', 'S-PLANNED', now())"
                    " RETURNING alert_id::text"
                ).fetchone()
                conn.execute(
                    "SELECT pg_notify('tracehub_alerts', %s)",
                    (json.dumps({"alert_id": alert_id, "state": "open"}),),
                )
                conn.commit()
            started = time.monotonic()
            WebDriverWait(driver, 10).until(
                lambda d: d.find_elements(By.CSS_SELECTOR, f'#alerts tr[data-alert="{alert_id}"]')
            )
            assert time.monotonic() - started < 10
            assert driver.find_element(By.ID, "alert-count").text == "(2 open, 0 acknowledged)"
