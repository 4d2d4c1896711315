"""Everything `tracehub verify` checks, in the buyer's browser: each envelope's ES256 signature,
its device certificate's chain to the device CA on the ledger and validity at the reading's
time, and revocation (the device CA's CRL and the ledger's record), besides the Merkle path and
the anchor, in real headless Chromium against the real stack.

The page is served through a tampering proxy in front of `python -m api`: each test rewrites one
answer (the page's envelope, the device CA, a proof's path, the hub's anchor) and the page must
name exactly the check that failed, for exactly the records it concerns. The revocation test
revokes the scenario's own logger, as `tracehub devices revoke` does (its CRL and its ledger
record), so it runs last.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from certs.pki import PKI
from certs.registry import LedgerRegistry
from demo.scenario import ScenarioResult, build_scenario
from tests.support.browser import chromium, csp_violations
from tests.support.db import migrated_schema
from tests.support.pki import make_certificate, new_key
from tests.support.processes import free_port, serve_process
from tracehub.config import PROJECT_DIR, Settings
from tracehub.ledger.local import connect_registrar

pytestmark = pytest.mark.integration

Rewrite = Callable[[str, bytes], bytes]
_DATA = re.compile(rb'(<script type="application/json" id="verify-data">)(.*?)(</script>)', re.S)


class Proxy(BaseHTTPRequestHandler):
    """Forwards GETs to the API; ``rewrite(path, body)`` may change an answer on the way."""

    upstream = ""
    rewrite: Rewrite | None = None

    def do_GET(self) -> None:
        try:
            reply = httpx.get(
                self.upstream + self.path,
                headers={k: v for k, v in self.headers.items() if k.lower() != "host"}
                | {"Accept-Encoding": "identity"},
                timeout=30,
            )
        except httpx.TransportError:  # the API is still starting
            self.send_error(502)
            return
        body = reply.content
        if type(self).rewrite is not None and reply.status_code == 200:
            body = type(self).rewrite(self.path, body)  # type: ignore[misc]
        self.send_response(reply.status_code)
        for name, value in reply.headers.items():
            if name.lower() not in (
                "content-length",
                "transfer-encoding",
                "content-encoding",
                "connection",
            ):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class Site:
    def __init__(self, settings: Settings, scenario: ScenarioResult, url: str) -> None:
        self.settings, self.scenario, self.url = settings, scenario, url

    def tamper(self, rewrite: Rewrite | None) -> None:
        Proxy.rewrite = staticmethod(rewrite) if rewrite else None  # type: ignore[assignment]

    def page_data(self) -> dict[str, Any]:
        html = httpx.get(self.url + self.scenario.path + "?lang=en", timeout=30).content
        found = _DATA.search(html)
        assert found
        data: dict[str, Any] = json.loads(found.group(2))
        return data


def rewrite_page_data(change: Callable[[dict[str, Any]], None]) -> Rewrite:
    """A rewrite of the lot page's verify-data block (the records and their envelopes)."""

    def rewrite(path: str, body: bytes) -> bytes:
        if not path.startswith("/01/"):
            return body

        def patched(match: re.Match[bytes]) -> bytes:
            data = json.loads(match.group(2))
            change(data)
            text = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
            return match.group(1) + text.encode() + match.group(3)

        return _DATA.sub(patched, body)

    return rewrite


def rewrite_json(prefix: str, change: Callable[[dict[str, Any]], None]) -> Rewrite:
    def rewrite(path: str, body: bytes) -> bytes:
        if not path.startswith(prefix):
            return body
        data = json.loads(body)
        change(data)
        return json.dumps(data).encode()

    return rewrite


def _flip(text: str) -> str:
    """One base64url or hex character changed (not the last, whose spare bits may be unused)."""
    return text[:10] + ("A" if text[10] != "A" else "B") + text[11:]


@pytest.fixture(scope="module")
def site(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    logs = tmp_path_factory.mktemp("envelope-browser")
    with migrated_schema(stack.postgres_dsn) as schema:
        port, proxy_port = free_port(), free_port()
        base = f"http://127.0.0.1:{proxy_port}"
        scenario = build_scenario(stack, schema=schema, base_url=base, log=logs / "gw.log")
        env = {
            **os.environ,
            "TRACEHUB_API_SEARCH_PATH": schema,
            "TRACEHUB_PUBLIC_URL": base,
            "TRACEHUB_PAGE_CACHE_S": "0",
            # No witness: the device CA and certificates come through the hub, so they can be
            # tampered with here (test_witness_browser.py covers reading them from Org2's peer).
            "TRACEHUB_LEDGER_WITNESSES": "none",
        }
        server = serve_process(
            ["-m", "api", "--port", str(port)],
            env,
            logs / "api.log",
            f"http://127.0.0.1:{port}/healthz",
        )
        Proxy.upstream = f"http://127.0.0.1:{port}"
        proxy = ThreadingHTTPServer(("127.0.0.1", proxy_port), Proxy)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        try:
            yield Site(stack, scenario, base)
        finally:
            Proxy.rewrite = None
            proxy.shutdown()
            server.terminate()
            server.wait(15)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    assert (PROJECT_DIR / "api" / "static" / "vendor" / "x509.js").exists(), "run make web-deps"
    with chromium(("--disable-quic", "--no-first-run"), prefix="tracehub-envelope-") as driver:
        yield driver


@pytest.fixture
def tamper(site: Site) -> Iterator[Callable[[Rewrite | None], None]]:
    yield site.tamper
    site.tamper(None)


class Outcome:
    """What the page said once verify.js finished."""

    def __init__(self, driver: webdriver.Chrome) -> None:
        status = driver.find_element(By.ID, "verify-status")
        WebDriverWait(driver, 60).until(
            lambda _: status.get_attribute("data-state") in ("verified", "failed")
        )
        self.state = str(status.get_attribute("data-state"))
        self.text = status.text
        self.ms = int(status.get_attribute("data-ms") or -1)
        self.pki = driver.find_element(By.ID, "verify-pki").text
        items = driver.find_elements(By.CSS_SELECTOR, "#verify-failures li[data-check]")
        #: record -> (check, text of its line) for every failing record
        self.failures = {
            record: (str(li.get_attribute("data-check")), li.text)
            for li in items
            for record in str(li.get_attribute("data-records")).split()
        }
        self.checks = {check for check, _ in self.failures.values()}


def open_lot(driver: webdriver.Chrome, site: Site) -> Outcome:
    driver.get(site.url + site.scenario.path + "?lang=en")
    return Outcome(driver)


def test_every_envelope_is_verified_in_the_browser(site: Site, browser: webdriver.Chrome) -> None:
    outcome = open_lot(browser, site)
    assert outcome.state == "verified", outcome.text
    assert outcome.failures == {}
    assert "device CA on the ledger (read through the hub)" in outcome.pki
    # The X.509 library and the checks ran under the page's policy: script-src 'self' only.
    assert csp_violations(browser) == []


def test_a_tampered_signature_is_named_for_its_record(
    site: Site, browser: webdriver.Chrome, tamper: Callable[[Rewrite | None], None]
) -> None:
    device, seq = site.scenario.logger_id, 5

    def change(data: dict[str, Any]) -> None:
        for record in data["records"]:
            if record.get("device_id") == device and record.get("seq") == seq:
                head, payload, signature = record["envelope"].split(".")
                record["envelope"] = f"{head}.{payload}.{_flip(signature)}"

    tamper(rewrite_page_data(change))
    outcome = open_lot(browser, site)
    assert outcome.state == "failed"
    assert outcome.text == (
        f"Not verified: signature invalid for record {device} #{seq}: "
        "the device's key did not sign these bytes"
    )
    assert outcome.failures.keys() == {f"{device}#{seq}"}
    assert outcome.checks == {"signature"}
    assert outcome.failures[f"{device}#{seq}"][1].startswith("Signature: ")


def test_a_device_ca_that_did_not_issue_the_certificates_breaks_the_chain(
    site: Site, browser: webdriver.Chrome, tamper: Callable[[Rewrite | None], None]
) -> None:
    """The hub answers with another CA under the real device CA's name: every reading's
    certificate chain fails; the EPCIS events (not signed by devices) still verify."""
    real = PKI(site.settings.pki_dir).device_ca_certificate()
    key = new_key()
    impostor = make_certificate(
        real.subject,
        key.public_key(),
        None,
        key,
        ca=True,
        path_length=0,
        not_before=real.not_valid_before_utc,
        not_after=real.not_valid_after_utc,
    )
    pem = impostor.public_bytes(Encoding.PEM).decode()
    tamper(rewrite_json("/ledger/device-ca", lambda d: d.update(certificate_pem=pem)))
    outcome = open_lot(browser, site)
    assert outcome.state == "failed"
    assert outcome.checks == {"certificate"}
    readings = {f"{site.scenario.logger_id}#{s}" for s in range(1, 49)}
    assert readings <= outcome.failures.keys()
    assert all(key.startswith(site.scenario.logger_id) for key in outcome.failures)
    text = outcome.failures[f"{site.scenario.logger_id}#1"][1]
    assert text.startswith("Certificate: certificate chain broken for record")


def test_a_certificate_the_envelope_does_not_name_is_refused(
    site: Site, browser: webdriver.Chrome, tamper: Callable[[Rewrite | None], None]
) -> None:
    """The hub answers the logger's certificate lookup with the scanner's certificate."""
    pki = PKI(site.settings.pki_dir)
    other = pki.device(site.scenario.scanner_id)[0].certificate
    pem = other.public_bytes(Encoding.PEM).decode()
    tamper(rewrite_json("/ledger/certificates/", lambda d: d.update(certificate_pem=pem)))
    outcome = open_lot(browser, site)
    assert outcome.state == "failed"
    assert outcome.checks == {"certificate"}
    assert "the ledger holds no enrolled certificate" in next(iter(outcome.failures.values()))[1]


def test_a_reading_dated_outside_its_certificates_validity_is_refused(
    site: Site, browser: webdriver.Chrome, tamper: Callable[[Rewrite | None], None]
) -> None:
    """The certificate is judged at the reading's own time, before its signature: a payload
    re-dated to 2020 (before the device CA existed) fails the certificate check."""
    device, seq = site.scenario.logger_id, 9

    def change(data: dict[str, Any]) -> None:
        for record in data["records"]:
            if record.get("device_id") == device and record.get("seq") == seq:
                head, payload, signature = record["envelope"].split(".")
                reading = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
                reading["ts"] = "2020-01-01T00:00:00.000Z"
                canonical = json.dumps(
                    reading, sort_keys=True, separators=(",", ":"), ensure_ascii=False
                ).encode()
                redated = base64.urlsafe_b64encode(canonical).rstrip(b"=").decode()
                record["envelope"] = f"{head}.{redated}.{signature}"

    tamper(rewrite_page_data(change))
    outcome = open_lot(browser, site)
    assert outcome.state == "failed"
    assert outcome.failures.keys() == {f"{device}#{seq}"}
    assert outcome.checks == {"certificate"}
    assert outcome.text == (
        f"Not verified: certificate not valid for record {device} #{seq} at the reading's time "
        "2020-01-01T00:00:00.000Z"
    )


def test_a_tampered_path_hash_is_named_for_its_record(
    site: Site, browser: webdriver.Chrome, tamper: Callable[[Rewrite | None], None]
) -> None:
    device, seq = site.scenario.logger_id, 7

    def change(answer: dict[str, Any]) -> None:
        # The page asks for its readings' proofs a range at a time (GET /proofs/readings/<id>).
        path = answer["proofs"][str(seq)]["audit_path"]
        path[0] = ("0" if path[0][0] != "0" else "1") + path[0][1:]

    tamper(rewrite_json(f"/proofs/readings/{device}?", change))
    outcome = open_lot(browser, site)
    assert outcome.state == "failed"
    assert outcome.failures.keys() == {f"{device}#{seq}"}
    assert outcome.checks == {"path"}
    assert outcome.text.startswith(f"Not verified: path invalid for record {device} #{seq}")


def test_a_tampered_hub_anchor_is_named_for_the_records_of_its_batch(
    site: Site, browser: webdriver.Chrome, tamper: Callable[[Rewrite | None], None]
) -> None:
    proof = httpx.get(f"{site.url}/proofs/readings/{site.scenario.logger_id}/1", timeout=30).json()
    batch = proof["batch_id"]
    tamper(rewrite_json(f"/ledger/anchors/{batch}", lambda d: d.update(root="0" * 64)))
    outcome = open_lot(browser, site)
    assert outcome.state == "failed"
    assert outcome.checks == {"anchor"}
    assert f"{site.scenario.logger_id}#1" in outcome.failures
    assert outcome.text.startswith(f"Not verified: root mismatch for batch {batch}")
    text = outcome.failures[f"{site.scenario.logger_id}#1"][1]
    assert text.startswith("Anchor (hub): root mismatch")


def test_verify_time_of_100_records(
    site: Site, browser: webdriver.Chrome, tamper: Callable[[Rewrite | None], None]
) -> None:
    """100 readings on one page (the lot's 48, repeated): each fetches its proof and has its
    signature checked; the time is printed for the record (pytest -s)."""

    def change(data: dict[str, Any]) -> None:
        readings = [r for r in data["records"] if r["type"] == "reading"]
        data["records"] = [readings[i % len(readings)] for i in range(100)]

    tamper(rewrite_page_data(change))
    times = []
    for _ in range(3):
        outcome = open_lot(browser, site)
        assert outcome.state == "verified", outcome.text
        times.append(outcome.ms)
    # The checks `tracehub verify` adds, alone: a fresh checker (device CA, CRL and certificate
    # fetched once) over the same 100 envelopes, in the page that just verified them.
    browser.set_script_timeout(60)
    alone = browser.execute_async_script(_ENVELOPES_ALONE)
    print(f"\npage verify time, 100 records: {times} ms; envelope checks alone: {alone} ms")
    assert isinstance(alone, (int, float)) and alone >= 0
    assert min(times) < 30_000


_ENVELOPES_ALONE = """
const done = arguments[0];
(async () => {
  const data = JSON.parse(document.getElementById("verify-data").textContent);
  const checker = window.TraceHubEnvelopes.create([]);
  const started = performance.now();
  for (const r of data.records) {
    const part = r.envelope.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const payload = JSON.parse(atob(part));
    await checker.check(r.envelope, payload, r.device_id);
  }
  done(Math.round(performance.now() - started));
})().catch((error) => done(String(error)));
"""


def test_a_revoked_devices_readings_are_flagged(
    site: Site, browser: webdriver.Chrome, tamper: Callable[[Rewrite | None], None]
) -> None:
    """Revoke the logger for key compromise (every reading it signed is suspect), as the CLI
    does: its CRL and its ledger record. Then once more with the hub serving the CRL from before
    the revocation: the ledger's record, read independently of the CRL, still flags it."""
    device = site.scenario.logger_id
    old_crl = httpx.get(f"{site.url}/pki/crls/device-ca", timeout=30).content
    pki = PKI(site.settings.pki_dir)
    revoked = pki.revoke_device(device, x509.ReasonFlags.key_compromise)
    with connect_registrar(site.settings.fabric) as gateway:
        contract = gateway.get_network(site.settings.fabric.channel).get_contract(
            site.settings.fabric.chaincode
        )
        LedgerRegistry(contract).revoke(device, reason="keyCompromise")
    crl = x509.load_der_x509_crl(httpx.get(f"{site.url}/pki/crls/device-ca", timeout=30).content)
    assert crl.get_revoked_certificate_by_serial_number(revoked[0].serial) is not None

    for served in ("current CRL", "CRL from before"):
        if served == "CRL from before":
            tamper(lambda path, body: old_crl if path.startswith("/pki/crls/") else body)
        outcome = open_lot(browser, site)
        assert outcome.state == "failed", served
        assert outcome.checks == {"revoked"}, served
        assert {f"{device}#{s}" for s in range(1, 49)} <= outcome.failures.keys()
        text = outcome.failures[f"{device}#1"][1]
        assert text.startswith(f"Revoked: record {device} #1 is signed by a revoked certificate")
        assert "(keyCompromise, since" in text
