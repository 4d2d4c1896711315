"""The ledger witness over Org2's real peer: anchors as Org2's copy of the ledger holds them, a
clear 404 for a batch never anchored, 502 when its peer cannot be reached, readable by any
page (CORS)."""

from __future__ import annotations

import json
import uuid

import pytest
from starlette.testclient import TestClient

from tests.support.processes import free_port
from tracehub.config import Settings
from tracehub.ledger.gateway import Gateway, Timeouts
from tracehub.ledger.identity import load_msp_identity
from tracehub.ledger.local import connect_org
from tracehub.ledger.witness import witness_app


def _anchor(batch_id: str) -> dict[str, object]:
    return {
        "batch_id": batch_id,
        "root": uuid.uuid4().hex * 2,
        "count": 3,
        "ipfs_cid": "bafkreian3lo42uabfe26wdm4basx33nsh4xwhsbgq7euzw7j5qyzrupabu",
        "first_ts": "2026-12-03T05:03:12+00:00",
        "last_ts": "2026-12-03T05:03:26+00:00",
        "devices": 1,
    }


@pytest.mark.integration
def test_the_witness_answers_from_org2s_ledger(stack: Settings) -> None:
    fabric = stack.fabric
    batch_id = f"b-{uuid.uuid4().hex}"
    anchor = _anchor(batch_id)
    with connect_org(fabric, 1) as hub, connect_org(fabric, 2) as org2:
        hub.get_network(fabric.channel).get_contract(fabric.chaincode).submit(
            "AnchorBatch", json.dumps(anchor)
        )
        contract = org2.get_network(fabric.channel).get_contract(fabric.chaincode)
        client = TestClient(witness_app(contract, msp_id="Org2MSP", peer="peer0.org2"))
        reply = client.get(f"/anchors/{batch_id}")
        assert reply.status_code == 200
        assert reply.headers["access-control-allow-origin"] == "*"
        body = reply.json()
        assert body["msp_id"] == "Org2MSP" and body["peer"] == "peer0.org2"
        assert body["anchor"]["root"] == anchor["root"]
        assert body["anchor"]["tx_id"]

        missing = client.get("/anchors/no-such-batch")
        assert missing.status_code == 404
        assert missing.json() == {"error": "not_anchored", "batch_id": "no-such-batch"}
        assert client.post(f"/anchors/{batch_id}").status_code == 405  # read-only
        assert client.get("/healthz").json()["msp_id"] == "Org2MSP"


@pytest.mark.integration
def test_an_unreachable_peer_is_a_502_not_a_false_answer(stack: Settings) -> None:
    fabric = stack.fabric
    identity, signer = load_msp_identity(fabric.user_msp_dir(2, "User1"), fabric.msp_id(2))
    with Gateway.connect(
        f"127.0.0.1:{free_port()}",  # no peer listens there
        identity=identity,
        signer=signer,
        tls_root_cert=fabric.tls_ca_file(2).read_bytes(),
        timeouts=Timeouts(evaluate=2),
    ) as gateway:
        contract = gateway.get_network(fabric.channel).get_contract(fabric.chaincode)
        client = TestClient(witness_app(contract, msp_id="Org2MSP", peer="gone"))
        reply = client.get("/anchors/any")
        assert reply.status_code == 502
        assert reply.json() == {"error": "ledger_unavailable", "msp_id": "Org2MSP"}


@pytest.mark.integration
def test_the_witness_serves_the_device_ca_and_certificates_from_org2s_ledger(
    stack: Settings,
) -> None:
    """The buyer page checks signatures against these, not against what the hub serves."""
    fabric = stack.fabric
    with connect_org(fabric, 2) as org2:
        contract = org2.get_network(fabric.channel).get_contract(fabric.chaincode)
        recorded = json.loads(contract.evaluate("GetDeviceCA"))
        client = TestClient(witness_app(contract, msp_id="Org2MSP", peer="peer0.org2"))
        reply = client.get("/device-ca")
        assert reply.status_code == 200
        assert reply.headers["access-control-allow-origin"] == "*"
        body = reply.json()
        assert body["msp_id"] == "Org2MSP"
        assert body["device_ca"]["certificate_pem"] == recorded["certificate_pem"]

        unknown = client.get(f"/certificates/{uuid.uuid4().hex * 2}")
        assert unknown.status_code == 404
        assert unknown.json() == {"error": "not_recorded", "msp_id": "Org2MSP"}
        assert client.get("/certificates/not-a-fingerprint").status_code == 404
