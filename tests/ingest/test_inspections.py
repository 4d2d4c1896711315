"""Inspection reports: upload (inspector only), IPFS storage, EPCIS anchoring, checked download."""

from __future__ import annotations

import hashlib
import json

import pytest

from ingest.epcis.anchoring import anchor_pending
from ingest.inspections import MAX_REPORT_BYTES
from ingest.proofs import event_proof
from tests.support.api import api_harness
from tests.support.inspections import (
    AUDITORS,
    BUYER,
    GTIN,
    INSPECTORS,
    LOT,
    minimal_pdf,
    seed_lot,
    upload,
)
from tracehub.config import Settings
from tracehub.epcis.hashing import event_hash
from tracehub.ipfs import KuboClient
from tracehub.ledger.local import connect_org

pytestmark = pytest.mark.integration


def test_upload_store_anchor_and_download(stack: Settings) -> None:
    pdf = minimal_pdf("Inspection: temperature log reviewed, seals intact.")
    with api_harness(stack) as h:
        seed_lot(h)
        inspector = h.headers("inspector", org_id=INSPECTORS)
        reply = upload(h, inspector, pdf, shipment_id="SHIP-INSP-1")
        assert reply.status_code == 201, reply.text
        meta = reply.json()
        assert meta["report_sha256"] == hashlib.sha256(pdf).hexdigest()
        assert meta["report_size"] == len(pdf)
        assert meta["shipment_id"] == "SHIP-INSP-1"

        # The exact bytes are on IPFS under the recorded CID.
        with KuboClient(stack.ipfs_api) as ipfs:
            assert ipfs.cat(meta["report_cid"]) == pdf

        # The EPCIS event names the report and its hash is the CBV 2.0 hash of what is stored.
        with h.connect() as conn:
            (raw,) = conn.execute(
                "SELECT event_json FROM epcis_events WHERE event_id = %s", (meta["event_id"],)
            ).fetchone()
        event = json.loads(bytes(raw))
        assert event["bizStep"] == "inspecting"
        assert event["quantityList"] == [{"epcClass": f"https://id.gs1.org/01/{GTIN}/10/{LOT}"}]
        assert f"ni:///sha-256;{meta['report_sha256']}" in event["certificationInfo"]
        assert f"ipfs://{meta['report_cid']}" in event["certificationInfo"]
        assert event_hash(event) == meta["event_hash"]

        # Anchoring the event batch makes an event proof whose hash is the inspection's.
        with connect_org(stack.fabric, 1) as gateway, KuboClient(stack.ipfs_api) as ipfs:
            contract = gateway.get_network("trace").get_contract("tracehub")
            anchored = anchor_pending(h.connect, ipfs, contract)
            assert len(anchored) == 1
            proof = event_proof(h.connect(), meta["event_id"])
            assert proof is not None and proof.event_hash == meta["event_hash"]
            assert proof.check_path()
            on_ledger = json.loads(contract.evaluate("GetAnchor", proof.batch_id))
            assert on_ledger["root"] == proof.root

        reader = h.headers("buyer", org_id=BUYER)
        got = h.client.get(f"/inspections/{meta['inspection_id']}", headers=reader)
        assert got.status_code == 200 and got.json()["event_hash"] == meta["event_hash"]
        listed = h.client.get("/inspections", params={"gtin": GTIN, "lot": LOT}, headers=reader)
        assert [i["inspection_id"] for i in listed.json()] == [meta["inspection_id"]]
        body = h.client.get(meta["report_url"], headers=reader)
        assert body.status_code == 200
        assert body.headers["content-type"] == "application/pdf"
        assert body.content == pdf


def test_download_refuses_bytes_that_no_longer_match(stack: Settings) -> None:
    with api_harness(stack) as h:
        seed_lot(h, shipment=None)
        meta = upload(h, h.headers("inspector", org_id=INSPECTORS), minimal_pdf("original")).json()
        # Point the record at other bytes on IPFS: the server must notice, not serve them.
        with KuboClient(stack.ipfs_api) as ipfs:
            other = ipfs.add(minimal_pdf("forged"))
        with h.connect() as conn:
            conn.execute(
                "UPDATE inspections SET report_cid = %s WHERE inspection_id = %s",
                (other, meta["inspection_id"]),
            )
            conn.commit()
        reply = h.client.get(meta["report_url"], headers=h.headers("auditor", org_id=AUDITORS))
        assert reply.status_code == 502
        assert "not the recorded" in reply.json()["detail"]


def test_refusals(stack: Settings) -> None:
    with api_harness(stack) as h:
        seed_lot(h, shipment=None)
        pdf = minimal_pdf("x")
        for role in ("logistics", "buyer", "auditor", "supplier"):
            assert upload(h, h.headers(role), pdf).status_code == 403
        assert h.client.post("/inspections", data={"gtin": GTIN}).status_code == 401
        inspector = h.headers("inspector", org_id=INSPECTORS)
        not_pdf = upload(h, inspector, b"GIF89a not a pdf at all")
        assert not_pdf.status_code == 400 and "not a PDF" in not_pdf.json()["detail"]
        truncated = upload(h, inspector, pdf[:40])
        assert truncated.status_code == 400 and "%%EOF" in truncated.json()["detail"]
        huge = upload(h, inspector, b"%PDF-1.4\n" + b"0" * MAX_REPORT_BYTES + b"%%EOF\n")
        assert huge.status_code == 413
        assert upload(h, inspector, pdf, lot="NOPE").status_code == 404
        assert upload(h, inspector, pdf, shipment_id="NO-SUCH").status_code == 404
        bad_gtin = upload(h, inspector, pdf, gtin="09506000134353")
        assert bad_gtin.status_code == 400 and "check digit" in bad_gtin.json()["detail"]
        assert upload(h, inspector, pdf, result="maybe").status_code == 422
        assert h.client.get("/inspections/not-a-uuid", headers=inspector).status_code == 404
        with h.connect() as conn:
            (count,) = conn.execute("SELECT count(*) FROM inspections").fetchone()
        assert count == 0
