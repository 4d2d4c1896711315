"""The staff pages, the lot page and the API docs in real headless Chromium, as a logistics
clerk, an auditor and a partner's integrator use them: sign in, act on alerts from the
dashboard, read a chart, search the auditor page, open /docs with no other origin reachable,
and every page on a 390 x 844 phone without sideways scrolling. Screenshots of each go to the
test's output directory (``screenshots/``); the page load times to ``load-times.json`` there.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.support.api import ApiHarness, api_harness
from tests.support.browser import chromium, requested_urls, serve, sign_in
from tracehub.config import Settings

pytestmark = pytest.mark.integration

GTIN = "09506000134352"
EVENT_HASH = "ni:///sha-256;" + "c0ffee" * 10 + "abcd" + "?ver=CBV2.0"
DESKTOP, PHONE = (1366, 900), (390, 844)


@dataclass
class Site:
    h: ApiHarness
    base: str
    driver: webdriver.Chrome
    shots: Path
    clerk: tuple[str, str]
    auditor: tuple[str, str]
    alert: str
    held_alert: str
    now: datetime

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def size(self, width: int, height: int) -> None:
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
        )


def _seed(h: ApiHarness) -> tuple[str, str, datetime]:
    """A 2..8 °C product; shipment S-MOVING (lot L1, logger-1: 48 readings over 4 hours, two
    above 8 °C, one open alert), S-PAID (an alert that keeps a held payment of buyer
    ``buy-x``), S-QUIET (newest, no readings, no alert); all carried by ``carrier-x``. Logger-1's
    readings are in batch b-dash-0001; one EPCIS event names lot L1."""
    now = datetime.now(UTC).replace(microsecond=0)
    with h.connect() as conn:
        conn.execute(
            "INSERT INTO organisations (org_id, name, kind) VALUES ('carrier-x', 'Carrier X',"
            " 'logistics'), ('buy-x', 'Buyer X', 'buyer'), ('sup-x', 'Supplier X', 'supplier')"
        )
        conn.execute(
            "INSERT INTO products (gtin, name, temp_min_c, temp_max_c, humidity_min, humidity_max)"
            " VALUES (%s, 'Vaccine', 2, 8, 20, 80)",
            (GTIN,),
        )
        conn.execute("INSERT INTO lots (gtin, lot) VALUES (%s, 'L1'), (%s, 'L2')", (GTIN, GTIN))
        for offset, shipment in enumerate(("S-MOVING", "S-PAID", "S-QUIET")):
            conn.execute(
                "INSERT INTO shipments (shipment_id, origin, destination, state, shipped_at,"
                " carrier_org, created_at) VALUES (%s, %s, 'Rotterdam', 'in_transit', %s,"
                " 'carrier-x', %s)",
                # A long SGLN URN as the origin: the lot page must still fit a phone.
                (
                    shipment,
                    "urn:epc:id:sgln:9506000.00001.0-Shenzhen-Bao'an-cold-store-7",
                    now - timedelta(hours=5),
                    now + timedelta(seconds=offset),
                ),
            )
        conn.execute(
            "INSERT INTO shipment_lots (shipment_id, gtin, lot, quantity) VALUES"
            " ('S-MOVING', %s, 'L1', 100), ('S-PAID', %s, 'L2', 10)",
            (GTIN, GTIN),
        )
        conn.execute(
            "INSERT INTO device_assignments (device_id, shipment_id, valid_from)"
            " VALUES ('logger-1', 'S-MOVING', %s)",
            (now - timedelta(hours=5),),
        )
        conn.execute(
            "INSERT INTO batches (batch_id, sealed_at, count, first_ts, last_ts, devices, root)"
            " VALUES ('b-dash-0001', %s, 48, %s, %s, 1, %s)",
            (now, now - timedelta(minutes=240), now - timedelta(minutes=5), "ab" * 32),
        )
        for seq in range(1, 49):
            temperature = 9.5 if seq in (20, 21) else 4.0 + (seq % 7) / 10
            conn.execute(
                "INSERT INTO readings (device_id, seq, ts, received_at, kind, data, loc,"
                " prev_hash, reading_hash, envelope, certificate_sha256, batch_id, batch_index)"
                " VALUES ('logger-1', %s, %s, %s, 'environment', %s, NULL, %s, %s, 'x', %s,"
                " 'b-dash-0001', %s)",
                (
                    seq,
                    now - timedelta(minutes=245 - seq * 5),
                    now,
                    json.dumps({"temperature_c": temperature, "humidity_pct": 50}),
                    "0" * 64,
                    f"{seq:064x}",
                    "a" * 64,
                    seq - 1,
                ),
            )
        # S-BULK: 140 probes with one reading each, as many devices as a real fleet shows.
        conn.execute(
            "INSERT INTO shipments (shipment_id, origin, destination, state, carrier_org,"
            " created_at) VALUES ('S-BULK', 'Madrid', 'Lyon', 'in_transit', 'carrier-x', %s)",
            (now - timedelta(days=1),),
        )
        conn.execute(
            "INSERT INTO device_assignments (device_id, shipment_id, valid_from)"
            " SELECT 'probe-' || lpad(n::text, 3, '0'), 'S-BULK', %s"
            " FROM generate_series(1, 140) n",
            (now - timedelta(hours=5),),
        )
        conn.execute(
            "INSERT INTO readings (device_id, seq, ts, received_at, kind, data, prev_hash,"
            " reading_hash, envelope, certificate_sha256) SELECT 'probe-' || lpad(n::text, 3,"
            " '0'), 1, %s, %s, 'environment', '{\"temperature_c\": 5, \"humidity_pct\": 40}',"
            " %s, %s, 'x', %s FROM generate_series(1, 140) n",
            (now - timedelta(minutes=1), now, "0" * 64, "2" * 64, "a" * 64),
        )
        conn.execute(
            "INSERT INTO devices (device_id, certificate_sha256, first_seen, last_seen, last_seq)"
            " VALUES ('logger-1', %s, %s, %s, 48)",
            ("a" * 64, now - timedelta(hours=5), now),
        )
        conn.execute(
            "INSERT INTO epcis_events (event_id, event_type, event_time, event_json, event_hash,"
            " hash_hex, subjects, biz_step, source) VALUES (%s, 'ObjectEvent', %s, '{}', %s, %s,"
            " %s, 'shipping', 'test')",
            (
                EVENT_HASH,
                now - timedelta(hours=4),
                EVENT_HASH,
                EVENT_HASH.split(";")[1][:64],
                [f"lot:{GTIN}/L1"],
            ),
        )
        alert = conn.execute(
            "INSERT INTO alerts (rule_id, kind, severity, shipment_id, device_id, started_at)"
            " VALUES ('r1', 'temperature_excursion', 'critical', 'S-MOVING', 'logger-1', %s)"
            " RETURNING alert_id::text",
            (now - timedelta(minutes=150),),
        ).fetchone()[0]
        order = conn.execute(
            "INSERT INTO orders (buyer_org, supplier_org, idempotency_key, currency, incoterm,"
            " total_minor, settlement_currency, settlement_minor, hold_until_delivery, state,"
            " created_by) VALUES ('buy-x', 'sup-x', 'k1', 'USD', 'FOB', 1999, 'USD', 1999, true,"
            " 'confirmed', 'test') RETURNING order_id::text"
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO payments (order_id, method, provider, idempotency_key, amount_minor,"
            " currency, state) VALUES (%s, 'bank_transfer', 'manual', 'p1', 1999, 'USD', 'held')",
            (order,),
        )
        conn.execute(
            "INSERT INTO order_shipments (order_id, shipment_id) VALUES (%s, 'S-PAID')", (order,)
        )
        held = conn.execute(
            "INSERT INTO alerts (rule_id, kind, severity, shipment_id, started_at) VALUES"
            " ('r2', 'sensor_silent', 'warning', 'S-PAID', %s) RETURNING alert_id::text",
            (now - timedelta(minutes=30),),
        ).fetchone()[0]
        conn.commit()
    return alert, held, now


@pytest.fixture(scope="module")
def site(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    shots = tmp_path_factory.mktemp("screenshots")
    with api_harness(stack) as h:
        alert, held, now = _seed(h)
        clerk = h.user(["logistics"], org_id="carrier-x")
        auditor = h.user(["admin"])
        with serve(h.config) as base, chromium(network_log=True) as driver:
            yield Site(h, base, driver, shots, clerk, auditor, alert, held, now)
    print(f"screenshots in {shots}")


def _signed_in(site: Site, page: str, who: tuple[str, str]) -> None:
    if site.driver.current_url.startswith(site.base):
        site.driver.execute_script("sessionStorage.clear()")
    sign_in(site.driver, f"{site.base}{page}", *who)


def _wait(site: Site, condition, timeout: float = 10):  # type: ignore[no-untyped-def]
    wait = WebDriverWait(
        site.driver,
        timeout,
        poll_frequency=0.05,
        ignored_exceptions=[StaleElementReferenceException],
    )
    return wait.until(condition)


def test_signing_in_removes_the_form(site: Site) -> None:
    site.size(*DESKTOP)
    site.driver.get(f"{site.base}/dashboard")
    form = _wait(site, lambda d: d.find_element(By.ID, "sign-in"))
    assert form.is_displayed()
    site.shot("01-sign-in")
    _signed_in(site, "/dashboard", site.clerk)
    assert not site.driver.find_element(By.ID, "sign-in").is_displayed()
    assert site.driver.find_element(By.ID, "app").is_displayed()
    _wait(site, lambda d: d.find_elements(By.CSS_SELECTOR, "#alerts tbody tr[data-alert]"))
    site.shot("02-dashboard-signed-in")


def _row(site: Site, alert: str):  # type: ignore[no-untyped-def]
    rows = site.driver.find_elements(By.CSS_SELECTOR, f'#alerts tr[data-alert="{alert}"]')
    return rows[0] if rows else None


def test_clerk_acknowledges_and_resolves_an_alert_from_the_dashboard(site: Site) -> None:
    _signed_in(site, "/dashboard", site.clerk)
    row = _wait(site, lambda d: _row(site, site.alert))
    assert "Temperature excursion" in row.text and "Critical" in row.text  # labels, not codes
    assert "temperature_excursion" not in row.text
    _wait(site, lambda d: "live" in d.find_element(By.ID, "live").text)
    row.find_element(By.NAME, "note").send_keys("called the driver")
    row.find_element(By.CSS_SELECTOR, "button.ack").click()
    _wait(
        site,
        lambda d: (r := _row(site, site.alert)) and r.get_attribute("data-state") == "acknowledged",
    )
    status = site.driver.find_element(By.ID, "alert-status")
    assert "acknowledged" in status.text and site.clerk[0] in status.text
    site.shot("03-alert-acknowledged")

    row = _row(site, site.alert)
    row.find_element(By.NAME, "note").send_keys("re-iced at the depot")
    row.find_element(By.CSS_SELECTOR, "button.resolve").click()
    started = time.monotonic()
    _wait(site, lambda d: _row(site, site.alert) is None)
    assert time.monotonic() - started < 5
    with site.h.connect() as conn:
        state, resolution = conn.execute(
            "SELECT state, resolution FROM alerts WHERE alert_id = %s", (site.alert,)
        ).fetchone()
    assert (state, resolution) == ("resolved", "re-iced at the depot")
    site.shot("04-alert-resolved")

    # An alert keeping a held payment: the carrier's resolve is refused and the page says why.
    held = _row(site, site.held_alert)
    held.find_element(By.CSS_SELECTOR, "button.resolve").click()
    _wait(site, lambda d: "buyer" in d.find_element(By.ID, "alert-status").text)
    status = site.driver.find_element(By.ID, "alert-status")
    assert "Could not resolve" in status.text and "403" in status.text
    assert "error" in status.get_attribute("class")
    assert _row(site, site.held_alert) is not None
    site.shot("05-resolve-refused-held-payment")

    # A new alert arrives live, without a reload.
    with site.h.connect() as conn:
        new = conn.execute(
            "INSERT INTO alerts (rule_id, kind, severity, shipment_id, started_at) VALUES"
            " ('r3', 'custody_gap', 'warning', 'S-MOVING', now()) RETURNING alert_id::text"
        ).fetchone()[0]
        conn.execute(
            "SELECT pg_notify('tracehub_alerts', %s)",
            (json.dumps({"alert_id": new, "state": "open"}),),
        )
        conn.commit()
    _wait(site, lambda d: _row(site, new))


def test_the_chart_has_a_time_axis_and_keeps_its_shape(site: Site) -> None:
    _signed_in(site, "/dashboard", site.clerk)
    # S-QUIET is the newest shipment, but S-MOVING has the readings and the alerts.
    _wait(site, lambda d: "S-MOVING" in d.find_element(By.ID, "chart-status").text)
    chart = site.driver.find_element(By.ID, "chart-temp")
    ticks = chart.find_elements(By.CSS_SELECTOR, "text.tick.time")
    assert len(ticks) >= 3
    instants = [datetime.fromisoformat(t.get_attribute("data-time")) for t in ticks]
    assert instants == sorted(instants)
    first, last = site.now - timedelta(minutes=240), site.now - timedelta(minutes=5)
    assert all(first <= t <= last for t in instants)  # the readings' own range
    assert all(":" in t.text for t in ticks)  # clock times
    assert chart.find_elements(By.CSS_SELECTOR, "rect.band")
    assert len(chart.find_elements(By.CSS_SELECTOR, "circle.excursion")) == 2
    width, height = chart.size["width"], chart.size["height"]
    assert abs(height / width - 260 / 720) < 0.02, (width, height)
    site.driver.execute_script("document.getElementById('chart-panel').scrollIntoView()")
    site.shot("06-chart-desktop")
    # Picking another shipment scrolls the chart into view and says what it shows.
    site.driver.execute_script("window.scrollTo(0, 0)")
    card = site.driver.find_element(By.CSS_SELECTOR, '.card[data-shipment="S-QUIET"]')
    card.find_element(By.CSS_SELECTOR, "button.show-chart").click()
    _wait(site, lambda d: "S-QUIET: no readings" in d.find_element(By.ID, "chart-status").text)
    _wait(
        site,
        lambda d: d.execute_script(
            "const r = document.getElementById('chart-panel').getBoundingClientRect();"
            "return r.top >= -1 && r.top < window.innerHeight / 2;"
        ),
    )
    assert "selected" in card.get_attribute("class")


def test_readings_are_paged_and_filtered(site: Site) -> None:
    _signed_in(site, "/dashboard", site.clerk)
    rows = "#readings tbody tr[data-device]"
    _wait(site, lambda d: len(d.find_elements(By.CSS_SELECTOR, rows)) == 20)  # of 141 devices
    assert site.driver.find_element(By.ID, "readings-page").text == "devices 1 to 20"
    site.driver.find_element(By.ID, "readings-next").click()
    _wait(site, lambda d: d.find_element(By.ID, "readings-page").text == "devices 21 to 40")
    form = site.driver.find_element(By.ID, "readings-filter")
    Select(form.find_element(By.NAME, "shipment_id")).select_by_value("S-MOVING")
    form.find_element(By.TAG_NAME, "button").click()
    _wait(site, lambda d: d.find_element(By.ID, "readings-page").text == "devices 1 to 1")
    assert [
        r.get_attribute("data-device") for r in site.driver.find_elements(By.CSS_SELECTOR, rows)
    ] == ["logger-1"]
    assert site.driver.find_element(By.ID, "readings-prev").get_attribute("disabled")
    Select(form.find_element(By.NAME, "shipment_id")).select_by_value("")
    form.find_element(By.NAME, "device").send_keys("nobody")
    form.find_element(By.TAG_NAME, "button").click()
    _wait(site, lambda d: "No reading matches" in d.find_element(By.ID, "readings").text)
    assert site.driver.find_element(By.ID, "readings-next").get_attribute("disabled")


def _search(site: Site, **fields: str) -> str:
    form = site.driver.find_element(By.ID, "search")
    form.find_element(By.ID, "search-reset").click()
    _wait(site, lambda d: "(" in d.find_element(By.ID, "search-status").text)
    for name, value in fields.items():
        form.find_element(By.NAME, name).send_keys(value)
    before = site.driver.find_element(By.ID, "search-status").text
    form.find_element(By.CSS_SELECTOR, "button:not([type])").click()
    _wait(site, lambda d: d.find_element(By.ID, "search-status").text not in (before, "searching…"))
    return str(site.driver.find_element(By.ID, "search-status").text)


def test_the_auditor_searches_by_device_and_by_event(site: Site) -> None:
    _signed_in(site, "/auditor", site.auditor)
    _wait(site, lambda d: d.find_elements(By.CSS_SELECTOR, "#batches tr[data-batch]"))
    said = _search(site, device="logger-1")
    assert said.startswith("1 batches, 1 devices"), said  # not the 140 probes
    assert site.driver.find_elements(By.CSS_SELECTOR, '#batches tr[data-batch="b-dash-0001"]')
    seen = site.driver.find_element(By.CSS_SELECTOR, '#devices tr[data-device="logger-1"] time')
    assert seen.get_attribute("title").endswith("(UTC)")  # local time shown, UTC on hover
    site.shot("07-auditor-by-device")
    said = _search(site, event="ni:///sha-256;c0ffee")  # a prefix of the hash
    assert "1 events" in said, said
    assert site.driver.find_elements(By.CSS_SELECTOR, f'#events tr[data-event="{EVENT_HASH}"]')
    said = _search(site, lot="L1")
    assert "1 events" in said, said
    site.shot("08-auditor-by-event")
    said = _search(site, q="zz-no-such")
    assert said.startswith("Nothing matches"), said
    assert "No batches match" in site.driver.find_element(By.ID, "batches").text


def test_api_docs_render_from_the_hub_alone(site: Site) -> None:
    site.size(*DESKTOP)
    requested_urls(site.driver)  # forget earlier pages' requests
    site.driver.get(f"{site.base}/docs")
    _wait(site, lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock"), 20)
    assert "how to get a token" in site.driver.page_source.lower() or (
        "Getting a token" in site.driver.page_source
    )
    # The partner flows' examples are there: open EPCIS capture and read its example body.
    capture = site.driver.find_element(By.ID, "operations-epcis-capture_epcis_capture_post")
    capture.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    _wait(site, lambda d: "EPCISDocument" in capture.text)
    site.driver.execute_script("arguments[0].scrollIntoView()", capture)
    site.shot("09-docs")
    urls = requested_urls(site.driver)
    origins = {f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" for u in urls if u.startswith("http")}
    assert origins == {site.base}, urls
    assert any(u.endswith("/docs/assets/swagger-ui-bundle.js") for u in urls)


PAGES = {
    "dashboard": ("/dashboard", "#alerts tbody tr"),
    "auditor": ("/auditor", "#batches tbody tr"),
    "lot": (f"/01/{GTIN}/10/L1", "main"),
    "docs": ("/docs", ".swagger-ui .opblock"),
}


@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_fits_a_phone(site: Site, name: str) -> None:
    path, ready = PAGES[name]
    who = {"dashboard": site.clerk, "auditor": site.auditor}.get(name)
    site.size(*PHONE)
    if who:
        _signed_in(site, path, who)
    else:
        site.driver.get(f"{site.base}{path}")
    _wait(site, lambda d: d.find_elements(By.CSS_SELECTOR, ready), 20)
    time.sleep(0.3)  # the page's data filled in
    scroll, inner = site.driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]"
    )
    site.shot(f"11-phone-{name}")
    assert scroll <= inner, (name, scroll, inner)


def test_page_load_times(site: Site) -> None:
    """Navigation Timing of the three pages people open most, at 1366 x 900 (signed in; for
    the staff pages, also until their first data shows). Written to load-times.json."""
    site.size(*DESKTOP)
    times = {}
    for name, (path, ready) in {
        "dashboard": ("/dashboard", "#alerts tbody tr"),
        "auditor": ("/auditor", "#batches tbody tr"),
        "lot": (f"/01/{GTIN}/10/L1", "main"),
    }.items():
        who = {"dashboard": site.clerk, "auditor": site.auditor}.get(name)
        samples = []
        for _ in range(3):
            if who and not site.driver.execute_script("return sessionStorage.length"):
                _signed_in(site, path, who)
            site.driver.get(f"{site.base}{path}")
            _wait(site, lambda d, ready=ready: d.find_elements(By.CSS_SELECTOR, ready), 20)
            samples.append(
                site.driver.execute_script(
                    "const n = performance.getEntriesByType('navigation')[0];"
                    "return {dom: n.domContentLoadedEventEnd, load: n.loadEventEnd,"
                    " ready: performance.now()};"
                )
            )
        times[name] = {key: round(min(s[key] for s in samples), 1) for key in samples[0]}
        assert times[name]["load"] > 0
    (site.shots / "load-times.json").write_text(json.dumps(times, indent=2))
    print("page load times (ms):", json.dumps(times))
