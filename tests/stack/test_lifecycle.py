"""`make up` / `make down` on the real stack: idempotent start, data kept across a restart,
and a failed start that names the component and its log."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import uuid

import pytest

from tracehub.config import PROJECT_DIR, Settings
from tracehub.ipfs import KuboClient
from tracehub.ledger.local import connect_org

pytestmark = pytest.mark.integration

STACK = str(PROJECT_DIR / "network" / "stack.sh")
COMPONENTS = [
    "postgres",
    "kubo",
    "mosquitto",
    "orderer",
    "peer0.org1",
    "peer0.org2",
    "chaincode",
    "witness",
    "stripe-mock",
    "mail",
    "api",
    "prometheus",
]


def _stack(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", STACK, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _pids(settings: Settings) -> dict[str, str]:
    pid_dir = settings.run_dir / "pids"
    return {name: (pid_dir / f"{name}.pid").read_text().strip() for name in COMPONENTS}


def test_up_twice_is_harmless(stack: Settings) -> None:
    before = _pids(stack)
    again = _stack("up")
    assert again.returncode == 0, again.stderr
    for name in COMPONENTS:
        assert f"up: {name} already running" in again.stdout
    assert "already committed" in again.stdout
    assert _pids(stack) == before


def test_restart_keeps_ledger_and_ipfs_data(stack: Settings) -> None:
    record_id = f"restart-{uuid.uuid4().hex}"
    document = os.urandom(4096)
    fabric = stack.fabric
    with connect_org(fabric, 1) as org1:
        contract = org1.get_network(fabric.channel).get_contract(fabric.chaincode)
        written = contract.submit("PutRecord", record_id, '{"before": "restart"}')
    with KuboClient(stack.ipfs_api) as ipfs:
        cid = ipfs.add(document)

    down = _stack("down")
    assert down.returncode == 0, down.stderr
    status = _stack("status")
    assert status.returncode != 0
    assert len(re.findall(r"\bdown\b", status.stdout)) == len(COMPONENTS), status.stdout

    up = _stack("up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "stack ready" in up.stdout

    with connect_org(fabric, 2) as org2:
        contract = org2.get_network(fabric.channel).get_contract(fabric.chaincode)
        record = json.loads(contract.evaluate("GetRecord", record_id))
        assert record["tx_id"] == written.tx_id
        # The ledger still takes new transactions after the restart.
        after = contract.submit("PutRecord", f"{record_id}-after", '{"after": "restart"}')
        assert after.block_number > written.block_number
    with KuboClient(stack.ipfs_api) as ipfs:
        assert ipfs.cat(cid) == document
        assert ipfs.is_pinned(cid)


def test_failed_start_names_the_component_and_its_log(stack: Settings) -> None:
    stopped = _stack("stop", "kubo")
    assert stopped.returncode == 0, stopped.stderr
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        squatter.bind(("127.0.0.1", 15001))  # Kubo's RPC port
        squatter.listen()
        failed = _stack("up", timeout=120)
        assert failed.returncode != 0
        assert "FAILED: kubo" in failed.stderr
        assert str(stack.run_dir / "logs" / "kubo.log") in failed.stderr
        assert "address already in use" in failed.stderr  # the log's own last lines are shown
    finally:
        squatter.close()
    recovered = _stack("up")
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert _stack("status").returncode == 0
