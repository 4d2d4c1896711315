"""The buyer's QR page in real headless Chromium: chart, journey, in-browser verification
against the ledger, a tampered record caught with its reason, and the Arabic page RTL.

The lot comes from the demo scenario (demo.scenario) built into a schema of this module's
own, through the real gateway, MQTT, IPFS and Fabric; the API runs as `python -m api` on a
loopback port. Tampering changes that schema's rows, never the code or the responses.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from demo.scenario import ScenarioResult, build_scenario
from tests.support.browser import chromium, csp_violations
from tests.support.db import connector, migrated_schema
from tests.support.processes import free_port
from tracehub.config import PROJECT_DIR, Settings

pytestmark = pytest.mark.integration


class Site:
    """The API server on a loopback port, serving the scenario's schema."""

    def __init__(self, settings: Settings, schema: str, scenario: ScenarioResult, url: str):
        self.settings, self.schema, self.scenario, self.url = settings, schema, scenario, url

    def connect(self):  # type: ignore[no-untyped-def]
        return connector(self.settings.postgres_dsn, self.schema)()


@pytest.fixture(scope="module")
def site(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    logs = tmp_path_factory.mktemp("browser")
    with migrated_schema(stack.postgres_dsn) as schema:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        scenario = build_scenario(stack, schema=schema, base_url=base, log=logs / "gw.log")
        env = {
            **os.environ,
            "TRACEHUB_API_SEARCH_PATH": schema,
            "TRACEHUB_PUBLIC_URL": base,
            # Every load renders afresh, so a tampered row shows on the next load.
            "TRACEHUB_PAGE_CACHE_S": "0",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "api", "--port", str(port)],
            cwd=PROJECT_DIR,
            env=env,
            stdout=(logs / "api.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert server.poll() is None, (logs / "api.log").read_text()
                assert time.monotonic() < deadline, "API server did not start"
                time.sleep(0.2)
            yield Site(stack, schema, scenario, base)
        finally:
            server.terminate()
            server.wait(15)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    flags = (
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    )
    with chromium(flags, prefix="tracehub-chromium-") as driver:
        yield driver


def verification(driver: webdriver.Chrome) -> tuple[str, str]:
    """Wait for verify.js to finish; (state, status text)."""
    status = driver.find_element(By.ID, "verify-status")
    WebDriverWait(driver, 30).until(
        lambda _: status.get_attribute("data-state") in ("verified", "failed")
    )
    return str(status.get_attribute("data-state")), status.text


def open_lot(driver: webdriver.Chrome, site: Site, query: str = "?lang=en") -> None:
    driver.get(site.url + site.scenario.path + query)


def test_page_shows_chart_journey_and_verifies_on_the_ledger(
    site: Site, browser: webdriver.Chrome
) -> None:
    open_lot(browser, site)
    state, text = verification(browser)
    assert state == "verified", text
    assert text.startswith("Verified on ledger: tx ")
    # The tx and block shown are a real anchor of one of the lot's batches.
    with site.connect() as conn:
        anchors = {
            (tx, str(block))
            for tx, block in conn.execute(
                "SELECT tx_id, block_number FROM batches WHERE state = 'anchored'"
                " UNION SELECT tx_id, block_number FROM epcis_batches WHERE state = 'anchored'"
            ).fetchall()
        }
    shown_tx = text.split("tx ")[1].split(",")[0]
    shown_block = text.rsplit("block ", 1)[1].strip()
    assert (shown_tx, shown_block) in anchors
    # Chart: the temperature line, the 2-8 °C band and the 12 excursion readings marked.
    chart = browser.find_element(By.CSS_SELECTOR, "svg.chart.temperature")
    assert chart.find_element(By.CSS_SELECTOR, "path.series").get_attribute("d")
    assert chart.find_element(By.CSS_SELECTOR, "rect.band").size["height"] > 0
    marks = chart.find_elements(By.CSS_SELECTOR, "circle.excursion")
    assert len(marks) == len(site.scenario.excursion_seqs) == 12
    assert "9.4" in browser.find_element(By.ID, "excursions").text
    # Journey, at city level (the brand owner's default): the scanner's 4 custody events and 2
    # RFID reads are shown with their cities but without their signed bytes (which name the
    # sites); the EPCIS events naming the lot (4 custody steps, the inspection, any alert) are
    # each ticked, by their hashes.
    assert browser.find_elements(By.CSS_SELECTOR, "#journey li.event[data-device]") == []
    epcis = browser.find_elements(By.CSS_SELECTOR, "#journey li.event[data-event]")
    assert len(epcis) >= 5
    assert all("ok" in (s.get_attribute("class") or "") for s in epcis)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#journey li.event")) >= 6 + 5
    journey = browser.find_element(By.ID, "journey").text
    for words in ("Commissioned", "Shipped", "Received", "RFID read", "Shenzhen, CN"):
        assert words in journey
    assert "Valencia, ES" in journey
    page = browser.page_source
    for site_detail in ("Shenzhen dock 3", "9506000134005", "9506000134012", "line 2"):
        assert site_detail not in page, site_detail
    # The inspection report: its PDF link and its anchored event, verified.
    report = browser.find_element(By.CSS_SELECTOR, "#inspections li.inspection")
    assert "ok" in (report.get_attribute("class") or "")
    assert site.scenario.inspection["report_sha256"] in report.text
    pdf_url = report.find_element(By.TAG_NAME, "a").get_attribute("href")
    assert pdf_url and "linkType=gs1:certificationInfo" in pdf_url
    pdf = httpx.get(pdf_url, timeout=10)
    assert pdf.headers["content-type"] == "application/pdf"
    assert hashlib.sha256(pdf.content).hexdigest() == site.scenario.inspection["report_sha256"]
    # All of it ran under the hub's Content-Security-Policy (no inline script or style) without
    # one refusal in the console.
    policy = httpx.get(site.url + site.scenario.path, timeout=10).headers["content-security-policy"]
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert csp_violations(browser) == []


def test_the_recall_stands_first_and_is_verified(site: Site, browser: webdriver.Chrome) -> None:
    """The scenario ends with a recall of the antigen lot the vaccine lot was made from: the
    buyer's page shows it above everything, ticked by its anchored EPCIS event's hash."""
    recall = site.scenario.recall
    assert recall is not None and recall.payment_state == "held"
    open_lot(browser, site)
    state, text = verification(browser)
    assert state == "verified", text
    banner = browser.find_element(By.CSS_SELECTOR, "section#recall")
    assert banner.location["y"] < browser.find_element(By.ID, "product").location["y"]
    notice = banner.find_element(By.CSS_SELECTOR, "li.recall.event")
    assert "Class I" in notice.text and recall.event_hash in notice.text
    assert "ok" in (notice.get_attribute("class") or "")
    assert "farmacia-central" in recall.parties


def test_sites_and_signed_journey_once_the_brand_owner_publishes_them(
    site: Site, browser: webdriver.Chrome
) -> None:
    with site.connect() as conn:
        conn.execute(
            "INSERT INTO publication_settings (org_id, journey_detail) VALUES ('coolvax-sz',"
            " 'site') ON CONFLICT (org_id) DO UPDATE SET journey_detail = 'site'"
        )
        conn.commit()
    try:
        open_lot(browser, site)
        state, text = verification(browser)
        assert state == "verified", text
        # The scanner's 4 custody events and 2 RFID reads, now as signed readings, each ticked.
        signed = browser.find_elements(By.CSS_SELECTOR, "#journey li.event[data-device]")
        assert len(signed) == 6
        assert all("ok" in (s.get_attribute("class") or "") for s in signed)
        journey = browser.find_element(By.ID, "journey").text
        assert "Shenzhen dock 3" in journey and "Shenzhen, CN" not in journey
    finally:
        with site.connect() as conn:
            conn.execute(
                "UPDATE publication_settings SET journey_detail = 'city'"
                " WHERE org_id = 'coolvax-sz'"
            )
            conn.commit()


def test_arabic_page_is_right_to_left(site: Site, browser: webdriver.Chrome) -> None:
    open_lot(browser, site, "?lang=ar")
    html = browser.find_element(By.TAG_NAME, "html")
    assert html.get_attribute("dir") == "rtl"
    assert html.get_attribute("lang") == "ar"
    direction = browser.execute_script(
        "return getComputedStyle(document.querySelector('main')).direction"
    )
    assert direction == "rtl"
    state, text = verification(browser)
    assert state == "verified"
    assert text.startswith("تم التحقق على السجل")
    # The choice is remembered: the next page without ?lang= is Arabic too (cookie).
    browser.get(site.url + site.scenario.path)
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("dir") == "rtl"
    browser.get(site.url + site.scenario.path + "?lang=en")


_VISUAL_ORDER = r"""
// For every "YYYY-MM-DD HH:MM" in the text under the given elements: does its first digit
// still render left of its last one? (In a right-to-left paragraph the bidi algorithm shows an
// unisolated "2026-12-01 16:03" as "16:03 2026-12-01".)
const out = [];
for (const root of arguments[0]) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  let node;
  while ((node = walker.nextNode())) {
    for (const match of node.textContent.matchAll(/\d{4}-\d{2}-\d{2} \d{2}:\d{2}/g)) {
      const edge = (i) => {
        const range = document.createRange();
        range.setStart(node, i);
        range.setEnd(node, i + 1);
        return range.getBoundingClientRect().left;
      };
      out.push([match[0], edge(match.index) < edge(match.index + match[0].length - 1)]);
    }
  }
}
return out;
"""


def test_arabic_page_keeps_dates_and_identifiers_in_order(
    site: Site, browser: webdriver.Chrome
) -> None:
    open_lot(browser, site, "?lang=ar")
    assert verification(browser)[0] == "verified"
    places = browser.find_elements(By.CSS_SELECTOR, "#shipments, #journey, #excursions, #alerts")
    checked = browser.execute_script(_VISUAL_ORDER, places)
    assert len(checked) >= 3, checked  # journey times, the excursion's start and end, alerts
    assert all(in_order for _, in_order in checked), checked
    # Identifiers sit in left-to-right isolates inside the right-to-left page.
    gtin = browser.find_element(By.CSS_SELECTOR, "#product dd.mono bdi")
    assert gtin.get_attribute("dir") == "ltr" and gtin.text == "09506000134352"
    # A date set into a translated sentence is isolated too (Unicode LRI ... PDI).
    excursion = browser.find_element(By.CSS_SELECTOR, "#excursions li").get_attribute("textContent")
    assert "\u2066" in str(excursion) and "\u2069" in str(excursion)
    browser.get(site.url + site.scenario.path + "?lang=en")


def test_a_displayed_value_changed_in_the_database_is_not_verified(
    site: Site, browser: webdriver.Chrome
) -> None:
    seq = site.scenario.excursion_seqs[0]
    with site.connect() as conn:
        # Hide the first excursion reading: the page now shows 5.0 °C for it.
        conn.execute(
            "UPDATE readings SET data = jsonb_set(data, '{temperature_c}', '5.0')"
            " WHERE device_id = %s AND seq = %s",
            (site.scenario.logger_id, seq),
        )
        conn.commit()
    try:
        open_lot(browser, site)
        state, text = verification(browser)
        assert state == "failed"
        assert text == (
            f"Not verified: value mismatch for record {site.scenario.logger_id} #{seq}: "
            "the page shows 5, the signed reading says 9.4"
        )
    finally:
        with site.connect() as conn:
            conn.execute(
                "UPDATE readings SET data = jsonb_set(data, '{temperature_c}', '9.4')"
                " WHERE device_id = %s AND seq = %s",
                (site.scenario.logger_id, seq),
            )
            conn.commit()


def test_a_stored_leaf_changed_in_the_database_breaks_the_root(
    site: Site, browser: webdriver.Chrome
) -> None:
    """Rewrite one reading's stored hash: its proof is rebuilt from the stored leaves, so the
    reading no longer matches its signed bytes, and the root its path leads to is not the one on
    the ledger. Its neighbours' proofs still come from the tree their batch was sealed with."""
    device, seq = site.scenario.logger_id, 3
    with site.connect() as conn:
        (original, batch_id) = conn.execute(
            "SELECT reading_hash, batch_id FROM readings WHERE device_id = %s AND seq = %s",
            (device, seq),
        ).fetchone()
        forged = ("0" if original[0] != "0" else "1") + original[1:]
        conn.execute(
            "UPDATE readings SET reading_hash = %s WHERE device_id = %s AND seq = %s",
            (forged, device, seq),
        )
        conn.commit()
    try:
        open_lot(browser, site)
        state, text = verification(browser)
        assert state == "failed"
        assert text.startswith("Not verified: ")
        failures = browser.find_element(By.ID, "verify-failures").text
        # The forged reading itself: its signed bytes no longer hash to the proof's leaf data.
        assert f"hash mismatch for record {device} #{seq}" in failures
        assert "1 records failed verification" in failures
        assert "verified on ledger" not in text.lower()
        # And the served proof's root is not the anchored one.
        proof = httpx.get(f"{site.url}/proofs/readings/{device}/{seq}").json()
        anchor = httpx.get(f"{site.url}/ledger/anchors/{batch_id}").json()
        assert proof["reading_hash"] == forged
        assert proof["root"] != anchor["root"]
    finally:
        with site.connect() as conn:
            conn.execute(
                "UPDATE readings SET reading_hash = %s WHERE device_id = %s AND seq = %s",
                (original, device, seq),
            )
            conn.commit()
    open_lot(browser, site)
    assert verification(browser)[0] == "verified"


def test_api_clients_get_the_lot_as_json_with_its_proofs(site: Site) -> None:
    """Same URL, Accept: application/ld+json: the view, with the excursion summarised."""
    reply = httpx.get(
        site.url + site.scenario.path, headers={"Accept": "application/ld+json"}, timeout=10
    )
    assert reply.status_code == 200
    body = reply.json()
    summary = body["sensors"]["summary"]
    assert summary["points"] == 48
    assert summary["band"]["temp_min_c"] == 2.0 and summary["band"]["temp_max_c"] == 8.0
    (excursion,) = summary["excursions"]
    assert excursion["quantity"] == "temperature"
    assert excursion["points"] == 12 and excursion["extreme"] == 9.4
    assert {e["step"] for e in body["journey"]} >= {"commissioning", "shipping", "receiving"}
    assert body["inspections"][0]["sha256"] == site.scenario.inspection["report_sha256"]
    # Every batch named can be checked on the ledger through the public anchor endpoint.
    for batch_id in body["proofs"]["batches"]:
        anchor = httpx.get(f"{site.url}/ledger/anchors/{batch_id}", timeout=10)
        assert anchor.status_code == 200, batch_id
    # linkType: the certification information is the inspection report.
    cert = httpx.get(
        site.url + site.scenario.path,
        params={"linkType": "gs1:certificationInfo"},
        headers={"Accept": "application/json"},
        timeout=10,
    )
    assert cert.json()["inspections"][0]["result"] == "pass"
    label = httpx.get(f"{site.url}/qr{site.scenario.path}.png", timeout=10)
    assert label.headers["x-digital-link"] == site.url + site.scenario.path


def test_a_report_hash_changed_in_the_database_is_not_verified(
    site: Site, browser: webdriver.Chrome
) -> None:
    """The recorded SHA-256 of the inspection report rewritten: the server refuses to serve
    bytes that do not match it, and the page says the report could not be verified."""
    inspection_id = site.scenario.inspection["inspection_id"]
    original = site.scenario.inspection["report_sha256"]
    with site.connect() as conn:
        conn.execute(
            "UPDATE inspections SET report_sha256 = %s WHERE inspection_id = %s",
            ("f" * 64, inspection_id),
        )
        conn.commit()
    try:
        open_lot(browser, site)
        state, text = verification(browser)
        assert state == "failed"
        assert text == "Not verified: could not fetch report (HTTP 502)"
        report = browser.find_element(By.CSS_SELECTOR, "#inspections li.inspection")
        assert "bad" in (report.get_attribute("class") or "")
    finally:
        with site.connect() as conn:
            conn.execute(
                "UPDATE inspections SET report_sha256 = %s WHERE inspection_id = %s",
                (original, inspection_id),
            )
            conn.commit()
