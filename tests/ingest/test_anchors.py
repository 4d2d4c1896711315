"""Batch anchors on the real ledger: written once by the hub, readable by the other org."""

from __future__ import annotations

import json
import uuid

import pytest

from tracehub.anchoring import submit_anchor
from tracehub.config import Settings
from tracehub.ledger import EndorseError, EvaluateError, LedgerError
from tracehub.ledger.local import connect_org

pytestmark = pytest.mark.integration


def _anchor(batch_id: str) -> dict[str, object]:
    return {
        "batch_id": batch_id,
        "root": "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        "ipfs_cid": "bafkreiccp6j4v7m4ygn6n3wahzmqzhdm36pwrcs6v4q7vdlsgupcwfp5au",
        "count": 5000,
        "first_ts": "2026-11-22T03:00:00.000Z",
        "last_ts": "2026-11-22T03:00:02.000Z",
        "devices": 40,
    }


def test_anchor_once_read_by_the_other_org(stack: Settings) -> None:
    batch_id = f"b-{uuid.uuid4().hex}"
    fabric = stack.fabric
    with connect_org(fabric, 1) as hub, connect_org(fabric, 2) as logistics:
        anchoring = hub.get_network(fabric.channel).get_contract(fabric.chaincode)
        reading = logistics.get_network(fabric.channel).get_contract(fabric.chaincode)
        committed = anchoring.submit("AnchorBatch", json.dumps(_anchor(batch_id)))
        stored = json.loads(reading.evaluate("GetAnchor", batch_id))
        assert stored["root"] == _anchor(batch_id)["root"]
        assert stored["tx_id"] == committed.tx_id
        # Re-submission after a crash is refused, and the first anchor stands.
        with pytest.raises(EndorseError, match="already anchored"):
            anchoring.submit("AnchorBatch", json.dumps(_anchor(batch_id) | {"count": 1}))
        assert json.loads(reading.evaluate("GetAnchor", batch_id))["count"] == 5000
        with pytest.raises(EndorseError, match="only Org1MSP client identities may anchor"):
            reading.submit("AnchorBatch", json.dumps(_anchor(f"b-{uuid.uuid4().hex}")))
        with pytest.raises(EndorseError, match="64 lowercase hex"):
            anchoring.submit("AnchorBatch", json.dumps(_anchor("x") | {"root": "ABC"}))
        with pytest.raises(EvaluateError, match="is not anchored"):
            reading.evaluate("GetAnchor", "no-such-batch")


def test_submit_anchor_takes_the_ledgers_record_after_a_crash(stack: Settings) -> None:
    """The second submission of one batch (as after a crash before our commit) returns the
    first's tx id and block; the same batch id with another root is refused."""
    fabric = stack.fabric
    anchor = _anchor(f"b-{uuid.uuid4().hex}")
    with connect_org(fabric, 1) as hub:
        network = hub.get_network(fabric.channel)
        contract, qscc = network.get_contract(fabric.chaincode), network.get_contract("qscc")
        first = submit_anchor(contract, anchor, block_lookup=qscc, channel=fabric.channel)
        again = submit_anchor(contract, anchor, block_lookup=qscc, channel=fabric.channel)
        assert again == first
        other_root = anchor | {"root": "0" * 64}
        with pytest.raises(LedgerError, match="anchored with another root"):
            submit_anchor(contract, other_root, block_lookup=qscc, channel=fabric.channel)
