"""Crash drill under load: while devices publish, the gateway is killed with SIGKILL at random
moments ten times, the Org1 peer is restarted once and Kubo once. Afterwards every published
reading is stored exactly once and anchored exactly once, and the proofs verify."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from certs.pki import PKI
from ingest.proofs import proof_for
from ingest.store import ReadingStore
from tests.support.gateway import Device, count_rows, start_gateway, subscribed
from tests.support.mqtt import close, connect, device_client
from tests.support.processes import run_cli, wait_until
from tracehub import db
from tracehub.config import PROJECT_DIR, Settings
from tracehub.ledger.local import connect_org

pytestmark = pytest.mark.integration

STACK = str(PROJECT_DIR / "network" / "stack.sh")
DEVICES, READINGS = 4, 300


def _stack(*args: str) -> None:
    result = subprocess.run(["bash", STACK, *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kills_and_restarts_under_load_lose_and_double_nothing(
    stack: Settings, tmp_path: Path
) -> None:
    rng = random.Random(20261122)
    pki = PKI(stack.pki_dir)
    devices = Device.many(stack, pki, DEVICES)
    time.sleep(3.1)
    ours = [d.id for d in devices]
    log = tmp_path / "gateway.log"
    name, group = f"drill{uuid.uuid4().hex[:6]}", f"drill{uuid.uuid4().hex[:6]}"
    gateway = start_gateway(name, group, log)
    clients = []
    for device in devices:
        client = device_client(stack, device.id)
        assert connect(client, stack)
        clients.append(client)
    envelopes = {
        d.id: [d.sign(seq, 2.0 + seq / 100) for seq in range(1, READINGS + 1)] for d in devices
    }
    publishing_done = threading.Event()

    def publish() -> None:
        # Paced at about 120 readings/s so the drill happens while data flows.
        for seq in range(READINGS):
            for device, client in zip(devices, clients, strict=True):
                client.publish(device.topic, envelopes[device.id][seq], qos=1)
            time.sleep(1 / 30)
        publishing_done.set()

    publisher = threading.Thread(target=publish)
    wait_until(lambda: subscribed(log), 60, "the gateway's subscription")
    publisher.start()
    try:
        kills = 0
        while kills < 10:
            time.sleep(rng.uniform(0.3, 1.2))
            gateway.send_signal(signal.SIGKILL)
            gateway.wait(10)
            kills += 1
            gateway = start_gateway(name, group, log)
            # Outages of the components the running gateway depends on: it must back off
            # and catch up, not lose or double anything.
            if kills == 4:
                _stack("stop", "peer0.org1")
                time.sleep(3)
                _stack("up")
            if kills == 7:
                _stack("stop", "kubo")
                time.sleep(3)
                _stack("up")
        publisher.join(120)
        assert publishing_done.is_set()
        total = DEVICES * READINGS
        wait_until(
            lambda: (
                count_rows(stack, "select count(*) from readings where device_id = any(%s)", ours)
                >= total
            ),
            120,
            "every reading stored",
        )
        wait_until(
            lambda: (
                count_rows(
                    stack,
                    "select count(*) from readings r join batches b using "
                    "(batch_id) where r.device_id = any(%s) and b.state = 'anchored'",
                    ours,
                )
                >= total
            ),
            180,
            "every reading anchored",
        )
    finally:
        for client in clients:
            close(client)
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(30)

    for device in devices:
        assert (
            count_rows(stack, "select count(*) from readings where device_id = %s", device.id)
            == READINGS
        )
        assert (
            count_rows(
                stack, "select count(distinct seq) from readings where device_id = %s", device.id
            )
            == READINGS
        )
    with db.connect(stack.postgres_dsn) as conn:
        batches = [
            row[0]
            for row in conn.execute(
                "select distinct batch_id from readings where device_id = any(%s)", (ours,)
            )
        ]
    # Anchored exactly once: the ledger holds one anchor per batch, with our root.
    with connect_org(stack.fabric, 2) as org2:
        contract = org2.get_network(stack.fabric.channel).get_contract(stack.fabric.chaincode)
        store = ReadingStore(lambda: db.connect(stack.postgres_dsn))
        try:
            for batch_id in batches:
                record = store.batch(batch_id)
                assert record is not None and record.state == "anchored"
                anchor = json.loads(contract.evaluate("GetAnchor", batch_id))
                assert anchor["root"] == record.root and anchor["tx_id"] == record.tx_id
            # Every reading's proof checks offline; a sample is verified end to end.
            for device in devices:
                for seq in range(1, READINGS + 1):
                    proof = proof_for(
                        store,
                        device.id,
                        seq,
                        channel=stack.fabric.channel,
                        chaincode=stack.fabric.chaincode,
                    )
                    assert proof.check_path()
            sample = proof_for(
                store,
                devices[0].id,
                READINGS // 2,
                channel=stack.fabric.channel,
                chaincode=stack.fabric.chaincode,
            )
        finally:
            store.close()
    path = tmp_path / "sample-proof.json"
    path.write_text(sample.to_json())
    verified = run_cli("verify", str(path), timeout=60)
    assert verified.returncode == 0, verified.stdout
