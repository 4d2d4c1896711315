"""EPCIS event anchoring and proofs against the real PostgreSQL, Kubo and Fabric."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from ingest.epcis.anchoring import anchor_pending, seal_pending
from ingest.proofs import event_proof
from tests.support.api import ApiHarness, api_harness
from tests.support.epcis_reference import EXAMPLES, events_of, reference_hashes
from tests.support.processes import run_cli
from tracehub.config import Settings
from tracehub.epcis.batch import decode_event_batch
from tracehub.epcis.proof import EventProof
from tracehub.ipfs import KuboClient
from tracehub.ledger import Contract, Network
from tracehub.ledger.local import connect_org
from tracehub.merkle import leaf_hash

pytestmark = pytest.mark.integration


@dataclass
class World:
    api: ApiHarness
    ipfs: KuboClient
    network: Network
    contract: Contract
    batches: list[str]

    def anchor(self, **kwargs: Any) -> list[str]:
        return anchor_pending(
            self.api.connect,
            self.ipfs,
            self.contract,
            block_lookup=self.network.get_contract("qscc"),
            **kwargs,
        )


@pytest.fixture(scope="module")
def world(stack: Settings) -> Iterator[World]:
    with (
        api_harness(stack) as api,
        KuboClient(stack.ipfs_api) as ipfs,
        connect_org(stack.fabric, 1) as gateway,
    ):
        headers = api.headers("admin")  # GS1 examples: every company's identifiers
        for path in sorted(EXAMPLES.glob("*.jsonld")):  # all 38 GS1 examples
            reply = api.client.post("/epcis/capture", content=path.read_bytes(), headers=headers)
            assert reply.status_code == 202, (path.name, reply.text)
        network = gateway.get_network(stack.fabric.channel)
        world = World(api, ipfs, network, network.get_contract(stack.fabric.chaincode), [])
        world.batches = world.anchor(max_events=16)
        yield world


def test_every_event_is_anchored_with_the_package_hash_as_leaf(
    world: World, tmp_path: Path
) -> None:
    with world.api.connect() as conn:
        pending = conn.execute("SELECT count(*) FROM epcis_events WHERE batch_id IS NULL")
        assert pending.fetchone() == (0,)
        total = conn.execute("SELECT count(*) FROM epcis_events").fetchone()
        assert total is not None
        assert len(world.batches) == -(-total[0] // 16)  # batches of at most 16
        checked: set[str] = set()  # stored event ids (an event repeated across files is one)
        for path in sorted(EXAMPLES.glob("*.jsonld")):
            events = events_of(json.loads(path.read_text()))
            expected, _ = reference_hashes(path, tmp_path)  # the package's CLI (or its variant)
            for original, uri in zip(events, expected, strict=True):
                row = conn.execute(
                    "SELECT event_id FROM epcis_events WHERE event_hash = %s AND"
                    " coalesce(convert_from(event_json, 'UTF8')::jsonb->>'eventID', event_id) = %s",
                    (uri, original.get("eventID") or uri),
                ).fetchone()
                assert row is not None, (path.name, uri)
                proof = event_proof(conn, row[0])
                assert proof is not None and proof.event_hash == uri
                # The anchored leaf is RFC 6962's leaf hash of the 32 raw bytes of the hash.
                raw = bytes.fromhex(uri.split(";")[1].split("?")[0])
                assert proof.leaf_hash == leaf_hash(raw).hex()
                assert proof.check_path()
                checked.add(row[0])
    assert len(checked) == total[0]  # every stored event is an example's, and was checked


def test_batches_on_ipfs_and_ledger(world: World) -> None:
    with world.api.connect() as conn:
        for batch_id in world.batches:
            assert batch_id.startswith("ev-")
            cid, root, count = conn.execute(
                "SELECT ipfs_cid, root, count FROM epcis_batches WHERE batch_id = %s"
                " AND state = 'anchored'",
                (batch_id,),
            ).fetchone() or (None, None, None)
            assert cid is not None
            batch = decode_event_batch(world.ipfs.cat(cid))
            assert (batch.batch_id, batch.root, len(batch.events)) == (batch_id, root, count)
            stored = [
                bytes(r[0])
                for r in conn.execute(
                    "SELECT event_json FROM epcis_events WHERE batch_id = %s ORDER BY batch_index",
                    (batch_id,),
                ).fetchall()
            ]
            assert list(batch.events) == stored  # the exact bytes stored
            anchor = json.loads(world.contract.evaluate("GetAnchor", batch_id))
            assert (anchor["root"], anchor["ipfs_cid"], anchor["count"]) == (root, cid, count)
            assert anchor["devices"] == 0


def _proof(world: World) -> EventProof:
    with world.api.connect() as conn:
        row = conn.execute(
            "SELECT event_id FROM epcis_events WHERE batch_index = 3 LIMIT 1"
        ).fetchone()
        assert row is not None
        proof = event_proof(conn, row[0])
    assert proof is not None
    return proof


def _verify(proof: EventProof, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "proof.json"
    path.write_text(proof.to_json(indent=2))
    return run_cli("verify", str(path))


def test_tracehub_verify_accepts_an_event_proof(world: World, tmp_path: Path) -> None:
    result = _verify(_proof(world), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for step in ("ipfs", "event-hash", "path", "ledger"):
        assert f"ok    {step}" in result.stdout
    assert "verified: event" in result.stdout


def test_tracehub_verify_names_what_was_altered(world: World, tmp_path: Path) -> None:
    proof = _proof(world)
    # A byte of the event: the batch object with one byte of event `index` changed, on IPFS.
    data = bytearray(world.ipfs.cat(proof.ipfs_cid))
    lines = bytes(data).split(b"\n")
    event = lines[1 + proof.index]
    position = event.index(b'"eventTime":"') + len(b'"eventTime":"') + 3
    altered_event = event[:position] + (b"8" if event[position : position + 1] != b"8" else b"7")
    altered_event += event[position + 1 :]
    lines[1 + proof.index] = altered_event
    altered_cid = world.ipfs.add(b"\n".join(lines))
    result = _verify(replace(proof, ipfs_cid=altered_cid), tmp_path)
    assert result.returncode == 1
    assert "FAIL  event-hash: event" in result.stdout, result.stdout
    # The path.
    path = list(proof.audit_path)
    path[0] = ("0" if path[0][0] != "0" else "1") + path[0][1:]
    result = _verify(replace(proof, audit_path=tuple(path)), tmp_path)
    assert result.returncode == 1 and "FAIL  path:" in result.stdout, result.stdout
    # The root.
    root = ("0" if proof.root[0] != "0" else "1") + proof.root[1:]
    result = _verify(replace(proof, root=root), tmp_path)
    assert result.returncode == 1 and "FAIL  path:" in result.stdout, result.stdout
    # The root and the path made consistent (a forged tree): the ledger disagrees.
    forged = replace(proof, audit_path=(), batch_size=1, index=0, root=proof.leaf_hash)
    result = _verify(forged, tmp_path)
    assert result.returncode == 1 and "FAIL  ipfs:" in result.stdout, result.stdout


def test_resubmission_after_a_crash_is_confirmed_by_get_anchor(world: World) -> None:
    """The ledger committed, our database never heard: the next pass takes GetAnchor's word."""
    batch_id = world.batches[0]
    with world.api.connect() as conn:
        before = conn.execute(
            "SELECT tx_id, block_number FROM epcis_batches WHERE batch_id = %s", (batch_id,)
        ).fetchone()
        conn.execute(
            "UPDATE epcis_batches SET state = 'stored', tx_id = NULL, block_number = NULL,"
            " anchored_at = NULL WHERE batch_id = %s",
            (batch_id,),
        )
        conn.execute("INSERT INTO epcis_anchor_outbox (batch_id) VALUES (%s)", (batch_id,))
        conn.commit()
    assert world.anchor() == [batch_id]
    with world.api.connect() as conn:
        after = conn.execute(
            "SELECT tx_id, block_number FROM epcis_batches WHERE batch_id = %s AND"
            " state = 'anchored'",
            (batch_id,),
        ).fetchone()
        outbox = conn.execute("SELECT count(*) FROM epcis_anchor_outbox").fetchone()
    assert after == before and outbox == (0,)


def test_a_failing_store_backs_off_and_keeps_the_batch_queued(
    world: World, stack: Settings
) -> None:
    headers = world.api.headers("admin")
    document = json.loads((EXAMPLES / "Example_9.6.1-ObjectEvent.jsonld").read_text())
    for event in document["epcisBody"]["eventList"]:
        event.pop("eventID")  # new content (time below), identified by its hash
        event["eventTime"] = "2030-01-01T00:00:00.000Z"
    reply = world.api.client.post("/epcis/capture", content=json.dumps(document), headers=headers)
    assert reply.status_code == 202, reply.text
    with world.api.connect() as conn:
        batch_id = seal_pending(conn, max_events=100)
    assert batch_id is not None
    with KuboClient("http://127.0.0.1:9", timeout=2) as dead:  # nothing listens on port 9
        assert anchor_pending(world.api.connect, dead, world.contract) == []
    with world.api.connect() as conn:
        attempts, error, due = conn.execute(
            "SELECT attempts, last_error, next_attempt_at > now() FROM epcis_anchor_outbox"
            " WHERE batch_id = %s",
            (batch_id,),
        ).fetchone() or (None, None, None)
        assert attempts == 1 and error and due is True
        # Due again: the real Kubo takes it.
        conn.execute("UPDATE epcis_anchor_outbox SET next_attempt_at = now()")
        conn.commit()
    assert world.anchor() == [batch_id]


def test_public_proof_and_anchor_endpoints(world: World) -> None:
    client = world.api.client
    proof = _proof(world)
    reply = client.get(f"/proofs/events/{quote(proof.event_id, safe='')}")
    assert reply.status_code == 200, reply.text
    assert EventProof.from_json(reply.content) == proof
    anchor = client.get(f"/ledger/anchors/{proof.batch_id}")
    assert anchor.status_code == 200, anchor.text
    body = anchor.json()
    assert body["root"] == proof.root and body["block_number"] == proof.block_number
    missing = client.get("/ledger/anchors/ev-never-anchored")
    assert missing.status_code == 404 and "not anchored" in missing.json()["detail"]
    assert client.get("/proofs/events/urn:nope").status_code == 404
    assert client.get("/proofs/readings/no-such-device/1").status_code == 404


def test_the_anchor_loop_anchors_new_events(world: World, stack: Settings) -> None:
    """The loop the gateway runs: a captured event is anchored within a few seconds."""
    from ingest.epcis.anchoring import EventAnchorLoop
    from tests.support.processes import wait_until

    document = json.loads((EXAMPLES / "Example_9.6.2-ObjectEvent.jsonld").read_text())
    event = document["epcisBody"]["eventList"][0]
    event.pop("eventID")
    event["eventTime"] = "2030-02-02T00:00:00.000Z"
    headers = world.api.headers("admin")
    reply = world.api.client.post("/epcis/capture", content=json.dumps(document), headers=headers)
    assert reply.status_code == 202, reply.text
    loop = EventAnchorLoop(
        world.api.connect,
        world.ipfs,
        world.contract,
        block_lookup=world.network.get_contract("qscc"),
        max_events=1000,
        max_age_s=0.5,
        interval_s=0.2,
    )
    loop.start()
    try:

        def anchored() -> bool:
            with world.api.connect() as conn:
                row = conn.execute(
                    "SELECT count(*) FROM epcis_events e JOIN epcis_batches b USING (batch_id)"
                    " WHERE e.event_time = '2030-02-02T00:00:00Z' AND b.state = 'anchored'"
                ).fetchone()
            return row == (1,)

        wait_until(anchored, 30, "the loop anchors the new event")
    finally:
        loop.stop()
