"""The buyer's QR page in real headless Chromium: chart, journey, in-browser verification
against the ledger, a tampered record caught with its reason, and the Arabic page RTL.

The lot comes from the demo scenario (demo.scenario) built into a schema of this module's
own, through the real gateway, MQTT, IPFS and Fabric, its alert e-mails going to an SMTP server
of the module's own; the API runs as `python -m api` on a loopback port. Tampering changes that
schema's rows, never the code or the responses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from api.auth import create_user
from demo.scenario import ScenarioResult, build_scenario
from demo.voyage import INTERVAL, MIN_VOYAGE
from tests.support.alert_peers import smtp_server
from tests.support.browser import chromium, csp_violations
from tests.support.db import connector, migrated_schema
from tests.support.processes import free_port, serve_process
from tracehub.cli import main as tracehub
from tracehub.config import Settings

pytestmark = pytest.mark.integration


class Site:
    """The API server on a loopback port, serving the scenario's schema."""

    def __init__(
        self,
        settings: Settings,
        schema: str,
        scenario: ScenarioResult,
        url: str,
        mail: list[Message],
        stream: AlertStream,
    ):
        self.settings, self.schema, self.scenario, self.url = settings, schema, scenario, url
        self.mail, self.stream = mail, stream

    def connect(self):  # type: ignore[no-untyped-def]
        return connector(self.settings.postgres_dsn, self.schema)()


class AlertStream:
    """The dashboard's live stream (/alerts/stream) as a logistics user of the carrier watches
    it, read on a thread: the {change, alert} of every `alert` event."""

    def __init__(self, base: str, token: str) -> None:
        self.events: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=None))
        self._url, self._token = f"{base}/alerts/stream", token
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "text/event-stream"}
        # Closing the client ends the stream: an error here is the test being done with it.
        with (
            contextlib.suppress(httpx.HTTPError, RuntimeError),
            self._client.stream("GET", self._url, headers=headers) as reply,
        ):
            event = ""
            for line in reply.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                    self.ready.set()
                elif line.startswith("data: ") and event == "alert":
                    self.events.append(json.loads(line[6:]))

    def close(self) -> None:
        self._client.close()


def _start_api(base: str, port: int, schema: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TRACEHUB_API_SEARCH_PATH": schema,
        "TRACEHUB_PUBLIC_URL": base,
        # Every load renders afresh, so a tampered row shows on the next load.
        "TRACEHUB_PAGE_CACHE_S": "0",
    }
    return serve_process(["-m", "api", "--port", str(port)], env, log, f"{base}/healthz")


@pytest.fixture(scope="module")
def site(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The scenario built while the API already serves its schema, so a carrier's user follows
    the live alert stream as the alert is raised."""
    logs = tmp_path_factory.mktemp("browser")
    with migrated_schema(stack.postgres_dsn) as schema, smtp_server() as (smtp_port, mail):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = _start_api(base, port, schema, logs / "api.log")
        stream = None
        try:
            with connector(stack.postgres_dsn, schema)() as conn:
                # The carrier the scenario ships with (its set-up keeps an existing row).
                conn.execute(
                    "INSERT INTO organisations (org_id, name, kind, country) VALUES"
                    " ('oceanic-reefer', 'Oceanic Reefer Lines', 'logistics', 'SG')"
                )
                create_user(conn, "reefer-watch", "watch-password", ["logistics"],
                            org_id="oceanic-reefer")  # fmt: skip
            token = httpx.post(
                f"{base}/auth/token",
                data={"username": "reefer-watch", "password": "watch-password"},
                timeout=10,
            ).json()["access_token"]
            stream = AlertStream(base, token)
            assert stream.ready.wait(15), "the alert stream did not open"
            smtp = dataclasses.replace(stack.smtp, host="127.0.0.1", port=smtp_port)
            settings = dataclasses.replace(stack, smtp=smtp)
            scenario = build_scenario(settings, schema=schema, base_url=base, log=logs / "gw.log")
            yield Site(stack, schema, scenario, base, mail, stream)
        finally:
            if stream is not None:
                stream.close()
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
    # Chart: the temperature line, the 2-8 °C band and the 7 excursion readings marked.
    chart = browser.find_element(By.CSS_SELECTOR, "svg.chart.temperature")
    assert chart.find_element(By.CSS_SELECTOR, "path.series").get_attribute("d")
    assert chart.find_element(By.CSS_SELECTOR, "rect.band").size["height"] > 0
    marks = chart.find_elements(By.CSS_SELECTOR, "circle.excursion")
    assert len(marks) == len(site.scenario.excursion_seqs) == 7
    assert "9.4" in browser.find_element(By.ID, "excursions").text
    # Journey, at city level (the brand owner's default): one row per step. The 4 custody steps
    # each in one row with both sources (the EPCIS event, ticked by its hash; the scanner's
    # signed reading, named without its signed bytes, which name the site), the 2 RFID reads,
    # the transformation that made the lot, the inspection and the alert's event.
    rows = browser.find_elements(By.CSS_SELECTOR, "#journey ol.timeline > li")
    steps = [row.get_attribute("data-step") for row in rows]
    for step in ("commissioning", "packing", "shipping", "receiving"):
        assert steps.count(step) == 1, steps
    assert steps.count("observed") == 2 and "sensor_reporting" in steps, steps
    assert len(steps) == 4 + 2 + 3, steps
    merged = browser.find_elements(By.CSS_SELECTOR, "#journey li.merged")
    assert [m.get_attribute("data-step") for m in merged] == [
        "commissioning",
        "packing",
        "shipping",
        "receiving",
    ]
    for row in merged:
        sources = row.find_elements(By.CSS_SELECTOR, "ul.sources > li.event")
        assert len(sources) == 2
        assert "ok" in (sources[0].get_attribute("class") or "")  # the event, verified
        assert "Device" in sources[1].text
    assert browser.find_elements(By.CSS_SELECTOR, "#journey li.event[data-device]") == []
    epcis = browser.find_elements(By.CSS_SELECTOR, "#journey li.event[data-event]")
    # the custody steps; the transformation that made the lot, the inspection, the alert
    assert len(epcis) == 4 + 3
    assert all("ok" in (s.get_attribute("class") or "") for s in epcis)
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


def test_the_voyage_reads_like_a_shipment_and_its_alert_reaches_the_carrier(
    site: Site,
    browser: webdriver.Chrome,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Days of readings 10 minutes apart, uploaded on arrival; custody steps at their times;
    an hour above 8 °C that the lot's rule turns into an alert, anchored as an EPCIS event,
    e-mailed to the carrier's operations user, on its dashboard and on the buyer's page."""
    voyage = site.scenario.voyage
    body = httpx.get(
        site.url + site.scenario.path, headers={"Accept": "application/ld+json"}, timeout=10
    ).json()
    times = [datetime.fromisoformat(p["ts"]) for p in body["sensors"]["series"]]
    assert (times[0], times[-1]) == (voyage.departed, voyage.arrived)
    assert voyage.duration >= MIN_VOYAGE
    assert all(later - earlier == INTERVAL for earlier, later in itertools.pairwise(times))
    # Signed at departure, days (or hours, on a young PKI) before the logger's ledger record was
    # made when it uploaded: `tracehub verify` accepts it, as its certificate was valid then.
    first = httpx.get(f"{site.url}/proofs/readings/{site.scenario.logger_id}/1", timeout=10)
    (tmp_path / "proof.json").write_text(first.text)
    capsys.readouterr()
    assert tracehub(["verify", str(tmp_path / "proof.json")]) == 0, capsys.readouterr().out
    assert "ok    ledger" in capsys.readouterr().out
    (excursion,) = body["sensors"]["summary"]["excursions"]
    started = datetime.fromisoformat(excursion["start"])
    assert datetime.fromisoformat(excursion["end"]) - started == timedelta(minutes=60)
    assert voyage.departed < started < voyage.arrived
    # Each custody step once, at its own time: days apart, not the same minute.
    steps = {e["step"]: e for e in body["journey"] if e["step"] != "observed"}
    assert len([e for e in body["journey"] if e["step"] == "shipping"]) == 1
    assert datetime.fromisoformat(steps["shipping"]["ts"]) == voyage.departed
    assert datetime.fromisoformat(steps["receiving"]["ts"]) == voyage.received
    assert steps["shipping"]["sources"] == ["device", "epcis"]
    (shipment,) = body["shipments"]
    shipped, delivered = shipment["shipped_at"], shipment["delivered_at"]
    assert datetime.fromisoformat(delivered) - datetime.fromisoformat(shipped) > MIN_VOYAGE
    # The alert: from the excursion's first reading, ended when it was back in band, with its
    # EPCIS event (on the journey, verified below).
    alert = site.scenario.alert
    assert alert["started_at"] == started
    assert alert["ended_at"] == started + timedelta(minutes=70)
    assert steps["sensor_reporting"]["event_hash"] == alert["event_hash"]
    # E-mailed (opened, then cleared) to the carrier's user, through the gateway's deliverer.
    user = site.scenario.logistics
    mail = [m for m in site.mail if m["X-TraceHub-Alert"] == alert["alert_id"]]
    assert sorted(str(m["Subject"]).rsplit("(", 1)[1] for m in mail) == ["cleared)", "opened)"]
    assert all(m["X-Rcpt"] == user.email for m in mail)
    assert "temperature_excursion" in str(mail[0]["Subject"])
    assert [e["state"] for e in alert["emails"]] == ["delivered", "delivered"]
    # Pushed live to the carrier's dashboards as it was raised and as it ended (each push
    # recorded as a delivery of the `sse` channel).
    deadline = time.monotonic() + 10
    pushed: list[str] = []
    while pushed != ["opened", "cleared"] and time.monotonic() < deadline:
        time.sleep(0.2)
        pushed = [
            e["change"] for e in site.stream.events if e["alert"]["alert_id"] == alert["alert_id"]
        ]
    assert pushed == ["opened", "cleared"]
    with site.connect() as conn:
        streamed = conn.execute(
            "SELECT change FROM alert_deliveries WHERE alert_id = %s AND channel = 'sse'"
            " ORDER BY id",
            (alert["alert_id"],),
        ).fetchall()
    assert [c for (c,) in streamed] == ["opened", "cleared"]
    # On the carrier's dashboard (its user signs in with the password the demo printed).
    token = httpx.post(
        site.url + "/auth/token",
        data={"username": user.username, "password": user.password},
        timeout=10,
    ).json()["access_token"]
    listed = httpx.get(
        site.url + "/dashboard/alerts", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).json()
    assert [a["alert_id"] for a in listed if a["rule_id"] == user.rule_id] == [alert["alert_id"]]
    # On the buyer's page: in its alert list, and its event ticked on the journey.
    open_lot(browser, site)
    assert verification(browser)[0] == "verified"
    shown = browser.find_element(By.ID, "alerts").text
    ended = alert["ended_at"].strftime("%Y-%m-%d %H:%M")
    assert f"Temperature excursion · {started:%Y-%m-%d %H:%M} \u2013 {ended} · open" in shown
    event = browser.find_element(
        By.CSS_SELECTOR, f'#journey li.event[data-event="{alert["event_id"]}"]'
    )
    assert "ok" in (event.get_attribute("class") or "")


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
        # The scanner's 4 custody events (each beside its EPCIS event in its step's row) and 2
        # RFID reads, now as signed readings, each ticked, each with its proof's link.
        signed = browser.find_elements(By.CSS_SELECTOR, "#journey li.event[data-device]")
        assert len(signed) == 6
        assert all("ok" in (s.get_attribute("class") or "") for s in signed)
        for row in browser.find_elements(By.CSS_SELECTOR, "#journey li.merged"):
            links = [a.get_attribute("href") or "" for a in row.find_elements(By.CSS_SELECTOR, "a")]
            assert len(links) == 2 and "/proofs/events/" in links[0], links
            assert f"/proofs/readings/{site.scenario.scanner_id}/" in links[1], links
            for link in links:
                assert httpx.get(link, timeout=10).status_code == 200, link
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
        (original,) = conn.execute(
            "SELECT data->'temperature_c' FROM readings WHERE device_id = %s AND seq = %s",
            (site.scenario.logger_id, seq),
        ).fetchone()
        assert original == 8.3  # the first reading above 8 °C (demo/voyage.py)
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
            "the page shows 5, the signed reading says 8.3"
        )
    finally:
        with site.connect() as conn:
            conn.execute(
                "UPDATE readings SET data = jsonb_set(data, '{temperature_c}', %s::jsonb)"
                " WHERE device_id = %s AND seq = %s",
                (str(original), site.scenario.logger_id, seq),
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
    voyage = site.scenario.voyage
    assert summary["points"] == voyage.duration / INTERVAL + 1
    assert summary["band"]["temp_min_c"] == 2.0 and summary["band"]["temp_max_c"] == 8.0
    (excursion,) = summary["excursions"]
    assert excursion["quantity"] == "temperature"
    assert excursion["points"] == 7 and excursion["extreme"] == 9.4
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


def test_a_range_of_proofs_is_the_proofs_one_by_one(site: Site) -> None:
    """The page asks for its readings' proofs a range at a time: each is the single proof."""
    device = site.scenario.logger_id
    answer = httpx.get(
        f"{site.url}/proofs/readings/{device}", params={"first": 1, "last": 12}, timeout=30
    ).json()
    assert answer["device_id"] == device
    assert sorted(int(seq) for seq in answer["proofs"]) == list(range(1, 13))
    for seq in (1, 7, 12):
        single = httpx.get(f"{site.url}/proofs/readings/{device}/{seq}", timeout=30).json()
        assert answer["proofs"][str(seq)] == single
    # Past the logger's last reading: named as unavailable, with the single proof's reason.
    beyond = site.scenario.readings + 1000
    tail = httpx.get(
        f"{site.url}/proofs/readings/{device}",
        params={"first": beyond, "last": beyond + 1},
        timeout=30,
    ).json()
    assert tail["proofs"] == {}
    assert set(tail["unavailable"]) == {str(beyond), str(beyond + 1)}
    assert "not anchored" in tail["unavailable"][str(beyond)]
    for first, last in ((5, 4), (1, 1001)):
        refused = httpx.get(
            f"{site.url}/proofs/readings/{device}",
            params={"first": first, "last": last},
            timeout=30,
        )
        assert refused.status_code == 400, refused.text
