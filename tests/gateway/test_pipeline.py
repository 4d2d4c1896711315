"""The gateway process on the real stack: signed readings from enrolled devices are verified,
stored exactly once, batched to IPFS and anchored on the ledger, and their proofs verify with
`tracehub verify`; duplicates are dropped, replays and forgeries quarantined with reasons; a
gateway killed with SIGKILL mid-stream loses nothing."""

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
from tests.support.gateway import Device, count_rows, start_gateway, subscribed
from tests.support.mqtt import close, connect, device_client
from tests.support.processes import run_cli, wait_until
from tracehub import db
from tracehub.config import Settings
from tracehub.envelope import reading_hash

pytestmark = pytest.mark.integration


@pytest.fixture()
def store(stack: Settings) -> Iterator[ReadingStore]:
    reading_store = ReadingStore(lambda: db.connect(stack.postgres_dsn))
    yield reading_store
    reading_store.close()


def test_gateway_stores_batches_anchors_and_survives_a_kill(
    stack: Settings, store: ReadingStore, tmp_path: Path
) -> None:
    pki = PKI(stack.pki_dir)
    devices = Device.many(stack, pki, 2)
    time.sleep(3.1)  # certificates valid from a whole second; readings are 2-32 s later
    log = tmp_path / "gateway.log"
    group, name = f"t{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:8]}"
    gateway = start_gateway(name, group, log)
    clients = []
    try:
        for device in devices:
            client = device_client(stack, device.id)
            assert connect(client, stack)
            clients.append(client)
        wait_until(lambda: subscribed(log), 60, "the gateway's subscription")
        a, b = devices
        envelopes = {d.id: [d.sign(seq, 4.0 + seq / 10) for seq in range(1, 31)] for d in devices}
        for seq in range(30):
            for device, client in zip(devices, clients, strict=True):
                client.publish(device.topic, envelopes[device.id][seq], qos=1)
            if seq == 14:
                # Crash the gateway mid-stream; the broker keeps its session's messages.
                time.sleep(0.3)
                gateway.send_signal(signal.SIGKILL)
                gateway.wait(10)
                gateway = start_gateway(name, group, log)
        # A redelivered duplicate, a replay (same seq, other content, validly signed) and a
        # forgery (signature altered).
        clients[0].publish(a.topic, envelopes[a.id][4], qos=1)
        clients[0].publish(a.topic, a.sign(6, 99.9, prev=reading_hash(envelopes[a.id][4])), qos=1)
        forged = envelopes[b.id][7][:-6] + (
            b"AAAAAA" if envelopes[b.id][7][-6:] != b"AAAAAA" else b"BBBBBB"
        )
        clients[1].publish(b.topic, forged, qos=1).wait_for_publish(5)

        ours = [d.id for d in devices]
        wait_until(
            lambda: (
                count_rows(stack, "select count(*) from readings where device_id = any(%s)", ours)
                >= 60
            ),
            60,
            "60 readings stored",
        )
        wait_until(
            lambda: (
                count_rows(stack, "select count(*) from quarantine where device_id = any(%s)", ours)
                >= 2
            ),
            30,
            "2 quarantined messages",
        )
        wait_until(
            lambda: (
                count_rows(
                    stack,
                    "select count(*) from readings r join batches b using "
                    "(batch_id) where r.device_id = any(%s) and b.state = 'anchored'",
                    ours,
                )
                == 60
            ),
            120,
            "every reading anchored",
        )
    finally:
        for client in clients:
            close(client)
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(30)

    # Exactly once: 30 per device, no more, by (device, seq).
    for device in devices:
        assert (
            count_rows(stack, "select count(*) from readings where device_id = %s", device.id) == 30
        )
        assert (
            count_rows(
                stack, "select count(distinct seq) from readings where device_id = %s", device.id
            )
            == 30
        )
    with db.connect(stack.postgres_dsn) as conn:
        reasons = {
            (row[0], row[1])
            for row in conn.execute(
                "select device_id, reason from quarantine where device_id = any(%s)",
                ([d.id for d in devices],),
            )
        }
    assert (a.id, "replay") in reasons
    assert any(
        device == b.id and reason in {"bad_signature", "malformed"} for device, reason in reasons
    )
    # The stored reading is the original, not the replay.
    assert store.reading(a.id, 6).envelope == envelopes[a.id][5]  # type: ignore[union-attr]

    # Proofs from the store verify end to end without the database.
    for device, seq in ((a.id, 1), (b.id, 30), (a.id, 16)):
        proof = proof_for(
            store, device, seq, channel=stack.fabric.channel, chaincode=stack.fabric.chaincode
        )
        path = tmp_path / f"{device}-{seq}.json"
        path.write_text(proof.to_json(indent=2))
        verified = run_cli("verify", str(path), timeout=60)
        assert verified.returncode == 0, verified.stdout + verified.stderr


def test_two_gateways_split_the_load_without_duplicates(stack: Settings, tmp_path: Path) -> None:
    pki = PKI(stack.pki_dir)
    devices = Device.many(stack, pki, 4)
    time.sleep(3.1)
    group = f"t{uuid.uuid4().hex[:8]}"
    logs = [tmp_path / "gw-a.log", tmp_path / "gw-b.log"]
    gateways = [start_gateway(f"t{uuid.uuid4().hex[:8]}", group, log) for log in logs]
    clients = []
    try:
        for device in devices:
            client = device_client(stack, device.id)
            assert connect(client, stack)
            clients.append(client)
        wait_until(lambda: all(subscribed(log) for log in logs), 60, "both subscriptions")
        for seq in range(1, 51):
            for device, client in zip(devices, clients, strict=True):
                client.publish(device.topic, device.sign(seq, 3.0 + seq / 100), qos=1)
        ours = [d.id for d in devices]
        wait_until(
            lambda: (
                count_rows(stack, "select count(*) from readings where device_id = any(%s)", ours)
                >= 200
            ),
            60,
            "200 readings stored",
        )
    finally:
        for client in clients:
            close(client)
        for gateway in gateways:
            gateway.send_signal(signal.SIGTERM)
            gateway.wait(30)
    for device in devices:
        assert (
            count_rows(stack, "select count(*) from readings where device_id = %s", device.id) == 50
        )
    # Both processes took part: each logged the messages it received when it stopped.
    received = []
    for log in logs:
        stopped = [line for line in log.read_text().splitlines() if "gateway stopped" in line]
        assert stopped, log.read_text()[-2000:]
        received.append(int(stopped[-1].split("received=")[1].split(",")[0]))
    assert all(count > 0 for count in received), received
    assert sum(received) >= 200
