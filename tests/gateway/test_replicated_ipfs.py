"""The gateway on two Kubo nodes of the test's own (TRACEHUB_IPFS_APIS): with one node killed, a
sealed batch waits (no CID recorded, nothing anchored) rather than being anchored on one copy;
once the node is back the batch is anchored, on both nodes, and its proof verifies with either
node killed."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from certs.pki import PKI
from ingest.proofs import proof_for
from ingest.store import ReadingStore
from tests.support.db import Connect
from tests.support.gateway import Device, private_database, start_gateway, subscribed
from tests.support.kubo import KuboPair, kubo_pair
from tests.support.mqtt import close, connect, device_client
from tests.support.processes import run_cli, wait_until
from tracehub.config import Settings

pytestmark = pytest.mark.integration

READINGS = 10


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[KuboPair]:
    with kubo_pair(tmp_path / "kubo") as nodes:
        yield nodes


def _batches(connect_db: Connect, state: str) -> list[tuple[str, str | None]]:
    with connect_db() as conn:
        rows = conn.execute(
            "SELECT batch_id, ipfs_cid FROM batches WHERE state = %s", (state,)
        ).fetchall()
    return [(row[0], row[1]) for row in rows]


def test_a_batch_is_anchored_only_once_both_nodes_pin_it(
    stack: Settings, pair: KuboPair, tmp_path: Path
) -> None:
    pki = PKI(stack.pki_dir)
    (device,) = Device.many(stack, pki, 1)
    time.sleep(3.1)  # certificates valid from a whole second
    log = tmp_path / "gateway.log"
    with private_database(stack) as (env, connect_db):
        env = {
            **env,
            "TRACEHUB_IPFS_APIS": ",".join(pair.urls),
            "TRACEHUB_IPFS_WRITE_TIMEOUT_S": "2",
        }
        gateway = start_gateway(
            f"t{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:8]}", log, env=env
        )
        client = device_client(stack, device.id)
        try:
            assert connect(client, stack)
            wait_until(lambda: subscribed(log), 60, "the gateway's subscription")
            pair.kill(2)
            for seq in range(1, READINGS + 1):
                client.publish(device.topic, device.sign(seq, 4.0), qos=1).wait_for_publish(5)
            wait_until(lambda: bool(_batches(connect_db, "sealed")), 30, "a sealed batch")
            # Two write timeouts and more: the batch is retried, never recorded on one copy.
            wait_until(
                lambda: "not pinned on all 2 Kubo nodes" in log.read_text(errors="replace"),
                30,
                "the gateway to report the missing node",
            )
            time.sleep(3)
            assert not _batches(connect_db, "stored") and not _batches(connect_db, "anchored")

            pair.start(2)
            wait_until(
                lambda: (
                    not _batches(connect_db, "sealed") and bool(_batches(connect_db, "anchored"))
                ),
                90,
                "every batch anchored after the node returned",
            )
        finally:
            close(client)
            gateway.send_signal(signal.SIGTERM)
            gateway.wait(30)

        cids = {cid for _, cid in _batches(connect_db, "anchored")}
        for node in (1, 2):
            with pair.client(node) as kubo:
                assert cids <= kubo.pinned()

        store = ReadingStore(connect_db)
        try:
            proof = proof_for(
                store, device.id, 1, channel=stack.fabric.channel, chaincode=stack.fabric.chaincode
            )
        finally:
            store.close()
    path = tmp_path / "proof.json"
    path.write_text(proof.to_json(indent=2))
    for down in (1, 2):  # the proof resolves on either node alone
        pair.kill(down)
        verified = run_cli("verify", str(path), env=env, timeout=60)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "ok    ipfs" in verified.stdout
        pair.start(down)
