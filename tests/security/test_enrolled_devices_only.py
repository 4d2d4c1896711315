"""Devices the consortium never saw: whoever holds the hub's PKI can issue a device certificate,
but the gateway accepts readings only from certificates enrolled on the ledger, and not revoked
there at the reading's time (decision 0024).

Real processes throughout: a private Mosquitto started by this tree's mosquitto.sh, a gateway
process on a schema of its own, the edge agent process with its spool, and the stack's Fabric
peers (the registrar enrols and revokes, the gateway's cache reads). Every reading the gateway
accepted is checked with the kernel verifier against the ledger's registry, as
`tracehub verify` does.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from certs.enrolment import record_on_ledger
from certs.pki import PKI
from certs.registry import LedgerCertificateDirectory, LedgerRegistry
from ingest.proofs import ProofUnavailableError, proof_for
from ingest.store import ReadingStore
from tests.support.broker import PrivateBroker, private_broker
from tests.support.db import Connect
from tests.support.edge import EdgeAgent, enrol_device
from tests.support.gateway import private_database, start_gateway, stored_seqs, subscribed
from tests.support.processes import run_cli, wait_until
from tracehub.audit import verify_proof
from tracehub.config import Settings
from tracehub.ipfs import KuboClient
from tracehub.ledger.local import connect_org, connect_registrar
from tracehub.verify import TrustStore

pytestmark = pytest.mark.integration

# The agent resends what the hub has not acknowledged after 2 s (30 s in production).
QUICK_ACKS = "resend_after_s = 2\nmax_resend_after_s = 4\nmissing_grace_s = 1"
REFRESH_S = 1.0  # the gateway's registry refresh in these tests (5 s by default)


@dataclass
class Hub:
    broker: PrivateBroker
    connect: Connect
    log: Path
    gateway: subprocess.Popen[bytes]


@pytest.fixture()
def hub(stack: Settings, tmp_path: Path) -> Iterator[Hub]:
    """A private broker and database, and one gateway process on them."""
    with private_broker(tmp_path, stack) as broker, private_database(stack) as (env, connect):
        env = {**env, "TRACEHUB_MQTT_TLS_PORT": str(broker.port)}
        log = tmp_path / "gateway.log"
        name = f"enr{uuid.uuid4().hex[:8]}"
        gateway = start_gateway(name, name, log, "--registry-refresh", str(REFRESH_S), env=env)
        try:
            wait_until(lambda: subscribed(log), 60, "the gateway to subscribe")
            yield Hub(broker, connect, log, gateway)
        finally:
            gateway.send_signal(signal.SIGTERM)
            gateway.wait(60)


def _refusals(connect: Connect, device_id: str) -> dict[str, int]:
    with connect() as conn:
        rows = conn.execute(
            "SELECT reason, count(*) FROM quarantine WHERE device_id = %s GROUP BY reason",
            (device_id,),
        ).fetchall()
    return {row[0]: int(row[1]) for row in rows}


def _anchored(connect: Connect, device_id: str) -> int:
    with connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM readings r JOIN batches b USING (batch_id)"
            " WHERE r.device_id = %s AND b.tx_id IS NOT NULL AND b.block_number IS NOT NULL",
            (device_id,),
        ).fetchone()
    return int(row[0]) if row else 0


def _agent(tmp_path: Path, stack: Settings, hub: Hub, device_id: str) -> EdgeAgent:
    agent = EdgeAgent(tmp_path, hub.broker.settings(stack), device_id, acks=QUICK_ACKS)
    agent.start()
    wait_until(
        lambda: bool((agent.status().get("publisher") or {}).get("connected")),
        30,
        "the agent to connect",
    )
    return agent


def _verify_against_ledger(
    stack: Settings, connect: Connect, device_id: str, seqs: list[int], tmp_path: Path
) -> None:
    """Each reading's proof verifies with the device certificate found on the ledger."""
    wait_until(lambda: _anchored(connect, device_id) == len(seqs), 60, "the readings anchored")
    trust = TrustStore.from_pem_files(
        stack.pki_dir / "ca-bundle.pem", stack.pki_dir / "crl.pem", allow_stale_crls=True
    )
    with (
        ReadingStore(connect) as store,
        KuboClient(stack.ipfs_api) as ipfs,
        connect_org(stack.fabric, 2) as gateway,  # the other organisation's peer
    ):
        contract = gateway.get_network(stack.fabric.channel).get_contract(stack.fabric.chaincode)
        directory = LedgerCertificateDirectory(LedgerRegistry(contract))
        proofs = []
        for seq in seqs:
            try:
                proof = proof_for(
                    store,
                    device_id,
                    seq,
                    channel=stack.fabric.channel,
                    chaincode=stack.fabric.chaincode,
                )
            except ProofUnavailableError as exc:  # pragma: no cover - shown on failure
                raise AssertionError(f"reading {device_id} #{seq}: {exc}") from exc
            result = verify_proof(
                proof, ipfs=ipfs, ledger=contract, trust=trust, directory=directory
            )
            assert result.ok, f"reading #{seq}: {result.failure}"
            proofs.append(proof)
    # And as an auditor runs it, for one of them.
    path = tmp_path / f"{device_id}-{seqs[0]}.json"
    path.write_text(proofs[0].to_json(indent=2))
    verified = run_cli("verify", str(path), timeout=60)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_device_the_ledger_never_saw_is_refused_until_it_is_enrolled(
    stack: Settings, hub: Hub, tmp_path: Path
) -> None:
    pki = PKI(stack.pki_dir)
    device_id = f"sec-pki-only-{uuid.uuid4().hex[:8]}"
    issued = pki.enrol_simulated_device(device_id)  # the hub's PKI alone: no ledger record
    time.sleep(1.1)  # the certificate is valid from the next whole second
    agent = _agent(tmp_path, stack, hub, device_id)
    try:
        agent.read_tags(range(5))
        wait_until(lambda: agent.read_events() == 5, 30, "5 readings made")
        # Refused and quarantined with their reason; not stored, so not acknowledged: the agent
        # keeps them and resends them (each refused at least twice).
        wait_until(
            lambda: _refusals(hub.connect, device_id).get("device_not_enrolled", 0) >= 10,
            60,
            "every reading refused, resent and refused again",
        )
        assert set(_refusals(hub.connect, device_id)) == {"device_not_enrolled"}
        assert stored_seqs(hub.connect, device_id) == []
        assert agent.spool("depth") == 5, "the agent still holds every reading"

        # The registrar enrols it: the next resends are accepted and acknowledged.
        record_on_ledger(stack.fabric, [issued.certificate_pem])
        wait_until(
            lambda: stored_seqs(hub.connect, device_id) == [1, 2, 3, 4, 5], 60, "5 stored once"
        )
        wait_until(lambda: agent.spool("depth") == 0, 60, "the agent's spool to empty")
    finally:
        agent.close()
    _verify_against_ledger(stack, hub.connect, device_id, [1, 2, 3, 4, 5], tmp_path)


def test_a_device_revoked_on_the_ledger_is_refused_within_the_refresh(
    stack: Settings, hub: Hub, tmp_path: Path
) -> None:
    device_id = enrol_device(stack, "sec-revoked")  # PKI and ledger
    agent = _agent(tmp_path, stack, hub, device_id)
    try:
        agent.read_tags(range(3))
        wait_until(lambda: stored_seqs(hub.connect, device_id) == [1, 2, 3], 60, "3 stored")
        wait_until(lambda: agent.spool("depth") == 0, 60, "the agent's spool to empty")

        # Revoked on the ledger only: the hub's PKI index and CRL still call it active.
        with connect_registrar(stack.fabric) as registrar:
            contract = registrar.get_network(stack.fabric.channel).get_contract(
                stack.fabric.chaincode
            )
            LedgerRegistry(contract).revoke(device_id, reason="keyCompromise")
        assert PKI(stack.pki_dir).device(device_id)[0].status == "active"
        time.sleep(REFRESH_S + 1.0)  # one refresh of the gateway's cache, and a margin

        agent.read_tags(range(3, 6))
        wait_until(lambda: agent.read_events() == 6, 30, "3 more readings made")
        wait_until(
            lambda: _refusals(hub.connect, device_id).get("revoked", 0) >= 3,
            30,
            "the readings after the revocation refused",
        )
        assert set(_refusals(hub.connect, device_id)) == {"revoked"}
        assert stored_seqs(hub.connect, device_id) == [1, 2, 3]
        assert agent.spool("depth") == 3, "refused readings are not acknowledged"
    finally:
        agent.close()
    # What was accepted before the revocation still verifies against the ledger's registry.
    _verify_against_ledger(stack, hub.connect, device_id, [1, 2, 3], tmp_path)
