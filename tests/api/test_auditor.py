"""Auditor view and audit bundles against the real stack: signed readings stored, batched to IPFS
and anchored on Fabric the way the gateway does it, plus an anchored inspection event; the
auditor searches and re-verifies them, exports a bundle, and `tracehub verify` checks the bundle
offline and against the ledger; tampering with any part fails with the reason."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from certs.pki import PKI
from certs.registry import LedgerCertificateDirectory, LedgerRegistry
from ingest.epcis.anchoring import anchor_pending
from ingest.store import ReadingStore, VerifiedRow
from tests.support.api import ApiHarness, api_harness
from tests.support.browser import chromium, serve, sign_in
from tests.support.gateway import Device
from tests.support.inspections import (
    AUDITORS,
    GTIN,
    INSPECTORS,
    LOT,
    minimal_pdf,
    seed_lot,
    upload,
)
from tests.support.processes import run_cli
from tracehub.batch import encode_batch
from tracehub.bundle import verify_bundle
from tracehub.config import Settings
from tracehub.ipfs import KuboClient
from tracehub.ledger.local import connect_org
from tracehub.merkle import MerkleTree
from tracehub.verify import TrustStore, verify_envelope

pytestmark = pytest.mark.integration

SHIPMENT = "SHIP-INSP-1"


def anchor_readings(stack: Settings, h: ApiHarness, count: int = 6) -> tuple[str, str]:
    """Readings of a freshly enrolled device stored, sealed, put on IPFS and anchored, as the
    gateway does; the device is assigned to the shipment. Returns (batch_id, device_id)."""
    device = Device(stack, PKI(stack.pki_dir))
    trust = TrustStore.from_pem_files(stack.pki_dir / "ca-bundle.pem", stack.pki_dir / "crl.pem")
    with connect_org(stack.fabric, 1) as gateway, KuboClient(stack.ipfs_api) as ipfs:
        contract = gateway.get_network("trace").get_contract("tracehub")
        directory = LedgerCertificateDirectory(LedgerRegistry(contract))
        now = datetime.now(UTC)
        rows = []
        for seq in range(1, count + 1):
            envelope = device.sign(seq, 4.0 + seq / 10)
            verified = verify_envelope(envelope, trust, directory)
            rows.append(VerifiedRow.from_verified(verified, envelope, now))
        with ReadingStore(h.connect) as store:
            store.store_verified(rows)
            keys = [row.key for row in rows]
            tree = MerkleTree([bytes.fromhex(k.reading_hash) for k in keys])
            batch_id = f"audit-{uuid.uuid4().hex[:12]}"
            record = store.seal_batch(batch_id, keys, tree.root.hex())
            cid = ipfs.add(encode_batch(batch_id, [r.envelope for r in rows]))
            store.mark_stored(batch_id, cid)
            anchor = {
                "batch_id": batch_id,
                "root": record.root,
                "ipfs_cid": cid,
                "count": record.count,
                "first_ts": record.first_ts.isoformat(),
                "last_ts": record.last_ts.isoformat(),
                "devices": 1,
            }
            committed = contract.submit("AnchorBatch", json.dumps(anchor, sort_keys=True))
            store.mark_anchored(batch_id, committed.tx_id, committed.block_number)
    with h.connect() as conn:
        conn.execute(
            "INSERT INTO device_assignments (device_id, shipment_id, valid_from)"
            " VALUES (%s, %s, %s)",
            (device.id, SHIPMENT, device.start),
        )
        conn.commit()
    return batch_id, device.id


@pytest.fixture(scope="module")
def world(stack: Settings) -> Any:
    """One harness with an anchored reading batch and an anchored inspection event."""
    with api_harness(stack) as h:
        seed_lot(h)
        with h.connect() as conn:
            conn.execute(
                "INSERT INTO shipment_lots (shipment_id, gtin, lot) VALUES (%s, %s, %s)",
                (SHIPMENT, GTIN, LOT),
            )
            conn.commit()
        batch_id, device_id = anchor_readings(stack, h)
        meta = upload(
            h, h.headers("inspector", org_id=INSPECTORS), minimal_pdf("ok"), shipment_id=SHIPMENT
        ).json()
        with connect_org(stack.fabric, 1) as gateway, KuboClient(stack.ipfs_api) as ipfs:
            contract = gateway.get_network("trace").get_contract("tracehub")
            (event_batch,) = anchor_pending(h.connect, ipfs, contract)
        yield h, batch_id, device_id, meta, event_batch


def test_search_and_verify_on_demand(world: Any) -> None:
    h, batch_id, device_id, meta, event_batch = world
    auditor = h.headers("auditor", org_id=AUDITORS)
    assert h.client.get("/auditor/batches", headers=h.headers("logistics")).status_code == 403
    listed = h.client.get("/auditor/batches", headers=auditor).json()
    assert {b["batch_id"] for b in listed} == {batch_id, event_batch}
    only = h.client.get("/auditor/batches", params={"q": batch_id}, headers=auditor).json()
    assert [b["kind"] for b in only] == ["readings"]
    devices = h.client.get("/auditor/devices", headers=auditor).json()
    assert [d["device_id"] for d in devices] == [device_id]
    events = h.client.get("/auditor/events", params={"bizStep": "inspecting"}, headers=auditor)
    assert [e["event_id"] for e in events.json()] == [meta["event_id"]]

    for path in (
        f"/auditor/verify/batch/{batch_id}",
        f"/auditor/verify/batch/{event_batch}",
        f"/auditor/verify/event/{meta['event_id']}",
        f"/auditor/verify/reading/{device_id}/3",
        f"/auditor/verify/device/{device_id}",
    ):
        verdict = h.client.post(path, headers=auditor)
        assert verdict.status_code == 200, (path, verdict.text)
        assert verdict.json()["ok"], (path, verdict.json())
    assert h.client.post("/auditor/verify/batch/nope", headers=auditor).status_code == 404
    assert (
        h.client.post(f"/auditor/verify/reading/{device_id}/99", headers=auditor).status_code == 404
    )

    # The database lies about where the batch is: the server-side check catches it.
    with _cid_moved(h, batch_id, meta["report_cid"]):
        verdict = h.client.post(f"/auditor/verify/batch/{batch_id}", headers=auditor).json()
        assert not verdict["ok"] and "CID" in verdict["failure"], verdict
    page = h.client.get("/auditor")
    assert page.status_code == 200 and 'id="batches"' in page.text


def _set_cid(h: ApiHarness, batch_id: str, cid: str) -> None:
    with h.connect() as conn:
        conn.execute("UPDATE batches SET ipfs_cid = %s WHERE batch_id = %s", (cid, batch_id))
        conn.commit()


@contextmanager
def _cid_moved(h: ApiHarness, batch_id: str, cid: str) -> Iterator[None]:
    """The database lies that the batch is at ``cid`` until the block ends (then it is put back)."""
    with h.connect() as conn:
        (real,) = conn.execute(
            "SELECT ipfs_cid FROM batches WHERE batch_id = %s", (batch_id,)
        ).fetchone()
    _set_cid(h, batch_id, cid)
    try:
        yield
    finally:
        _set_cid(h, batch_id, real)


def test_bundle_verifies_offline_and_online_and_tampering_fails(world: Any, tmp_path: Path) -> None:
    h, batch_id, _, meta, event_batch = world
    auditor = h.headers("auditor", org_id=AUDITORS)
    reply = h.client.get("/auditor/bundle", params={"shipment_id": SHIPMENT}, headers=auditor)
    assert reply.status_code == 200, reply.text
    bundle = reply.json()
    kinds = sorted(r["type"] for r in bundle["records"])
    assert kinds == ["event"] + ["reading"] * 6
    assert {b["batch_id"] for b in bundle["batches"]} == {batch_id, event_batch}
    assert len(bundle["device_certificates"]) == 1
    assert list(bundle["device_certificate_sources"].values()) == ["ledger"]
    by_lot = h.client.get(
        "/auditor/bundle", params={"gtin": GTIN, "lot": LOT}, headers=auditor
    ).json()
    assert len(by_lot["records"]) == 7
    # A batch spans organisations: its bundle is for the hub's operators.
    params = {"batch_id": batch_id}
    assert h.client.get("/auditor/bundle", params=params, headers=auditor).status_code == 403
    by_batch = h.client.get("/auditor/bundle", params=params, headers=h.headers("admin"))
    assert [r["type"] for r in by_batch.json()["records"]] == ["reading"] * 6

    report = verify_bundle(bundle)
    assert report.ok, report.failures
    assert (report.batches_ok, report.records_ok) == (2, 7)

    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    offline = run_cli("verify", str(path), "--offline")
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert "verified offline: 7 records in 2 batches" in offline.stdout
    online = run_cli("verify", str(path))
    assert online.returncode == 0, online.stdout + online.stderr
    assert "verified against the ledger" in online.stdout

    def tampered(change: Any) -> list[str]:
        copy = json.loads(json.dumps(bundle))
        change(copy)
        return verify_bundle(copy).failures

    readings = next(b for b in bundle["batches"] if b["kind"] == "readings")
    r_index = bundle["batches"].index(readings)

    def flip_object_byte(doc: Any) -> None:
        raw = bytearray(base64.b64decode(doc["batches"][r_index]["object_base64"]))
        raw[len(raw) // 2] ^= 0x01
        doc["batches"][r_index]["object_base64"] = base64.b64encode(bytes(raw)).decode()

    failures = tampered(flip_object_byte)
    assert any(f"batch {batch_id}: the object's bytes do not have CID" in f for f in failures)
    # Its records fail too, because their batch did not pass.
    assert sum("is not in the bundle (or failed its checks)" in f for f in failures) == 6

    def change_root(doc: Any) -> None:
        doc["batches"][r_index]["anchor"]["root"] = "0" * 64

    assert any("root is not the anchored root" in f for f in tampered(change_root))

    def change_path(doc: Any) -> None:
        record = next(r for r in doc["records"] if r["type"] == "reading")
        node = record["proof"]["audit_path"][0]
        record["proof"]["audit_path"][0] = ("1" if node[0] != "1" else "2") + node[1:]

    assert any("path:" in f for f in tampered(change_path))

    def swap_certificate(doc: Any) -> None:
        doc["device_certificates"] = {}

    failures = tampered(swap_certificate)
    assert len(failures) == 6 and all("unknown_certificate" in f for f in failures)

    def change_event_hash(doc: Any) -> None:
        record = next(r for r in doc["records"] if r["type"] == "event")
        record["proof"]["event_hash"] = record["proof"]["event_hash"].replace("a", "b", 1)

    assert any(f.startswith(f"record {meta['event_id']}") for f in tampered(change_event_hash))

    # A bundle whose anchor record was rewritten consistently passes offline (the bundle is
    # self-consistent) but the online check catches it against the ledger.
    forged = json.loads(json.dumps(bundle))
    forged["batches"][r_index]["anchor"]["tx_id"] = "f" * 64
    for record in forged["records"]:
        if record["proof"]["batch_id"] == batch_id:
            record["proof"]["tx_id"] = "f" * 64
    assert verify_bundle(forged).ok
    path.write_text(json.dumps(forged))
    online = run_cli("verify", str(path))
    assert online.returncode == 1
    assert "ledger: anchored tx_id" in online.stdout

    # One byte changed in the file itself.
    text = json.dumps(bundle)
    at = text.index('"object_base64": "') + 40
    path.write_text(text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :])
    broken = run_cli("verify", str(path), "--offline")
    assert broken.returncode == 1 and "FAIL" in broken.stdout


def test_bundle_refusals(world: Any) -> None:
    h, *_ = world
    auditor = h.headers("auditor", org_id=AUDITORS)
    assert h.client.get("/auditor/bundle", headers=auditor).status_code == 400
    both = h.client.get(
        "/auditor/bundle", params={"batch_id": "x", "shipment_id": "y"}, headers=auditor
    )
    assert both.status_code == 400
    unknown = {"batch_id": "x"}
    assert h.client.get("/auditor/bundle", params=unknown, headers=auditor).status_code == 403
    admin = h.headers("admin")
    assert h.client.get("/auditor/bundle", params=unknown, headers=admin).status_code == 404
    # A shipment outside the engagement answers like an unknown one.
    outside = {"shipment_id": "SHIP-ELSEWHERE"}
    assert h.client.get("/auditor/bundle", params=outside, headers=auditor).status_code == 404
    naive = h.client.get(
        "/auditor/bundle", params={"since": "2026-01-01T00:00:00"}, headers=auditor
    )
    assert naive.status_code == 400
    assert h.client.get("/auditor/bundle", headers=h.headers("buyer")).status_code == 403


def test_auditor_page_in_chromium(world: Any) -> None:
    """Sign in as an auditor, press "verify" on both batches and the device: each says
    verified; after the database is made to lie about a batch's CID the button says why not."""
    h, batch_id, _, meta, event_batch = world
    username, password = h.user(["auditor"], org_id=AUDITORS)
    with serve(h.config) as base, chromium() as driver:
        sign_in(driver, f"{base}/auditor", username, password)
        wait = WebDriverWait(driver, 30)

        def verdict(row_selector: str) -> str:
            row = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, row_selector))
            row.find_element(By.CSS_SELECTOR, "button.verify").click()
            return str(
                wait.until(
                    lambda d: d.find_element(By.CSS_SELECTOR, f"{row_selector} .verdict").text
                )
            )

        assert verdict(f'#batches tr[data-batch="{batch_id}"]').startswith("verified")
        assert verdict(f'#batches tr[data-batch="{event_batch}"]').startswith("verified")
        assert verdict("#devices tbody tr").startswith("verified")
        assert verdict("#events tbody tr").startswith("verified")
        with _cid_moved(h, batch_id, meta["report_cid"]):
            driver.refresh()
            wait.until(lambda d: d.find_element(By.ID, "app").is_displayed())
            text = verdict(f'#batches tr[data-batch="{batch_id}"]')
            assert text.startswith("not verified") and "CID" in text, text
