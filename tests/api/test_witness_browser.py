"""An anchor the hub does not vouch for: the buyer page asks a ledger witness (Org2's read-only
view of its own peer, tracehub/ledger/witness.py) for every batch it verified, in real headless
Chromium against the real ledger.

Three deployments of the same lot: with Org2's witness running (the page names Org2MSP's peer),
with a witness address where nothing answers (the page says it could not confirm independently,
the hub's verification still shown), and with a witness that holds another root (the page says
the hub is contradicted, and does not call the lot verified).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from demo.scenario import ScenarioResult, build_scenario
from tests.support.browser import chromium
from tests.support.db import migrated_schema
from tests.support.processes import free_port, serve_process
from tracehub.config import Settings

pytestmark = pytest.mark.integration


class _LyingWitness(BaseHTTPRequestHandler):
    """Answers every anchor question with Org2's name and a root of zeros."""

    def do_GET(self) -> None:
        batch = self.path.rsplit("/", 1)[-1]
        body = json.dumps(
            {"msp_id": "Org2MSP", "peer": "x", "anchor": {"batch_id": batch, "root": "0" * 64}}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def pages(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Lot page URLs of three API servers over one scenario, each with another witness."""
    logs = tmp_path_factory.mktemp("witness")
    processes: list[subprocess.Popen[bytes]] = []
    liar = ThreadingHTTPServer(("127.0.0.1", 0), _LyingWitness)
    threading.Thread(target=liar.serve_forever, daemon=True).start()
    with migrated_schema(stack.postgres_dsn) as schema:
        try:
            witness_port = free_port()
            processes.append(
                serve_process(
                    ["-m", "tracehub.ledger.witness", "--org", "2", "--port", str(witness_port)],
                    dict(os.environ),
                    logs / "witness.log",
                    f"http://127.0.0.1:{witness_port}/healthz",
                )
            )
            witnesses = {
                "org2": f"http://127.0.0.1:{witness_port}",
                "silent": f"http://127.0.0.1:{free_port()}",  # nothing listens there
                "lying": f"http://127.0.0.1:{liar.server_address[1]}",
            }
            ports = {name: free_port() for name in witnesses}
            scenario: ScenarioResult = build_scenario(
                stack,
                schema=schema,
                base_url=f"http://127.0.0.1:{ports['org2']}",
                log=logs / "gw.log",
            )
            urls = {}
            for name, witness in witnesses.items():
                base = f"http://127.0.0.1:{ports[name]}"
                env = {
                    **os.environ,
                    "TRACEHUB_API_SEARCH_PATH": schema,
                    "TRACEHUB_PUBLIC_URL": base,
                    "TRACEHUB_LEDGER_WITNESSES": witness,
                }
                processes.append(
                    serve_process(
                        ["-m", "api", "--port", str(ports[name])],
                        env,
                        logs / f"api-{name}.log",
                        f"{base}/healthz",
                    )
                )
                urls[name] = base + scenario.path + "?lang=en"
            yield urls
        finally:
            for process in processes:
                process.terminate()
                process.wait(15)
            liar.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    with chromium(("--disable-quic", "--no-first-run"), prefix="tracehub-witness-") as driver:
        yield driver


def _outcome(driver: webdriver.Chrome, url: str) -> tuple[str, str, str, str]:
    """(verification state, its text, witness state, its text) once verify.js has finished."""
    driver.get(url)
    status = driver.find_element(By.ID, "verify-status")
    WebDriverWait(driver, 30).until(
        lambda _: status.get_attribute("data-state") in ("verified", "failed")
    )
    witness = driver.find_element(By.ID, "verify-witness")
    return (
        str(status.get_attribute("data-state")),
        status.text,
        str(witness.get_attribute("data-state")),
        witness.text,
    )


def test_the_other_organisations_peer_confirms_the_anchors(
    pages: dict[str, str], browser: webdriver.Chrome
) -> None:
    state, _, witnessed, text = _outcome(browser, pages["org2"])
    assert state == "verified"
    assert witnessed == "confirmed"
    assert "Org2MSP" in text and "independently" in text
    # The device CA and certificates the signatures were checked against: Org2's ledger too.
    pki = browser.find_element(By.ID, "verify-pki").text
    assert "Org2MSP's ledger" in pki, pki


def test_a_silent_witness_is_said_so_and_the_hubs_check_still_shown(
    pages: dict[str, str], browser: webdriver.Chrome
) -> None:
    state, _, witnessed, text = _outcome(browser, pages["silent"])
    assert state == "verified"  # every proof checked against the hub's ledger answer
    assert witnessed == "unconfirmed"
    assert "Could not confirm independently" in text
    # Certificates came through the hub once the witness did not answer.
    assert "read through the hub" in browser.find_element(By.ID, "verify-pki").text


def test_a_witness_holding_another_root_contradicts_the_hub(
    pages: dict[str, str], browser: webdriver.Chrome
) -> None:
    state, status, witnessed, text = _outcome(browser, pages["lying"])
    assert witnessed == "disagrees"
    assert "Org2MSP" in text and "different root" in text
    assert state == "failed" and "contradicts" in status
    # Each record of each batch is failed by the independent anchor check, and by nothing else.
    lines = browser.find_elements(By.CSS_SELECTOR, "#verify-failures li[data-check]")
    assert lines and {li.get_attribute("data-check") for li in lines} == {"witness"}
    assert all(li.text.startswith("Anchor (independent witness): ") for li in lines)
