"""The public reading-proof and ledger-anchor endpoints on a really anchored batch of signed
readings: the proof served verifies with `tracehub verify`; the anchor is the ledger's."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from certs.pki import PKI
from certs.registry import LedgerCertificateDirectory, LedgerRegistry
from ingest.store import ReadingStore, VerifiedRow
from tests.support.api import api_harness
from tests.support.processes import run_cli
from tests.support.signing import enrol_and_sign
from tracehub.batch import batch_tree, encode_batch
from tracehub.config import Settings
from tracehub.ipfs import KuboClient
from tracehub.ledger.local import connect_org
from tracehub.proof import Proof
from tracehub.verify import TrustStore, verify_envelope

pytestmark = pytest.mark.integration


def test_reading_proof_endpoint_serves_a_proof_that_verifies(
    stack: Settings, tmp_path: Path
) -> None:
    device_id = f"epcis-proof-{uuid.uuid4().hex[:8]}"
    _, envelopes = enrol_and_sign(stack, device_id, 5, temperature=5.0, humidity=60.0)
    pki = PKI(stack.pki_dir)
    trust = TrustStore.from_pem_files(pki.ca_bundle_path, pki.crl_path)
    with (
        api_harness(stack) as api,
        KuboClient(stack.ipfs_api) as ipfs,
        connect_org(stack.fabric, 1) as hub,
    ):
        contract = hub.get_network(stack.fabric.channel).get_contract(stack.fabric.chaincode)
        directory = LedgerCertificateDirectory(LedgerRegistry(contract))
        rows = []
        for envelope in envelopes:
            verified = verify_envelope(envelope, trust, directory)
            rows.append(VerifiedRow.from_verified(verified, envelope, datetime.now(UTC)))
        batch_id = f"epcis-test-{uuid.uuid4().hex[:12]}"
        tree = batch_tree(envelopes)
        with ReadingStore(api.connect) as store:
            assert len(store.store_verified(rows).stored) == 5
            store.seal_batch(batch_id, [r.key for r in rows], tree.root.hex())
            # Before anchoring: 404 with a message.
            early = api.client.get(f"/proofs/readings/{device_id}/3")
            assert early.status_code == 404 and "not anchored" in early.json()["detail"]
            cid = ipfs.add(encode_batch(batch_id, envelopes))
            store.mark_stored(batch_id, cid)
            anchor = {
                "batch_id": batch_id,
                "root": tree.root.hex(),
                "ipfs_cid": cid,
                "count": 5,
                "first_ts": rows[0].ts.isoformat(),
                "last_ts": rows[-1].ts.isoformat(),
                "devices": 1,
            }
            committed = contract.submit("AnchorBatch", json.dumps(anchor))
            store.mark_anchored(batch_id, committed.tx_id, committed.block_number)

        reply = api.client.get(f"/proofs/readings/{device_id}/3")
        assert reply.status_code == 200, reply.text
        proof = Proof.from_json(reply.content)
        assert (proof.batch_id, proof.index, proof.tx_id) == (batch_id, 2, committed.tx_id)
        path = tmp_path / "proof.json"
        path.write_text(reply.text)
        result = run_cli("verify", str(path))
        assert result.returncode == 0, result.stdout + result.stderr

        ledger = api.client.get(f"/ledger/anchors/{batch_id}")
        assert ledger.status_code == 200, ledger.text
        body = ledger.json()
        assert body["root"] == tree.root.hex() and body["tx_id"] == committed.tx_id
        assert body["block_number"] == committed.block_number
        assert api.client.get(f"/proofs/readings/{device_id}/99").status_code == 404
