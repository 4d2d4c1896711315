"""A spool that overflows reports, signed, exactly the range it dropped, and the gateway records
exactly that range as lost and nothing else. Real agent, gateway and (private) broker: the hub
is down while the agent's small spool fills; when a gateway starts, it stores what the spool
kept, sees the hole, asks for it, and gets the device's report instead."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import pytest

from certs.pki import PKI
from ingest.store import GapState, ReadingStore
from tests.support.broker import private_broker
from tests.support.edge import EdgeAgent, enrol_device
from tests.support.gateway import private_database, start_gateway, stored_seqs
from tests.support.processes import wait_until
from tracehub.config import Settings
from tracehub.dropped import verify_dropped
from tracehub.verify import InMemoryDirectory, TrustStore

pytestmark = pytest.mark.integration


def test_an_overflowing_spool_reports_what_it_dropped_and_only_that_is_lost(
    stack: Settings, tmp_path: Path
) -> None:
    device = enrol_device(stack, "full")
    with private_broker(tmp_path, stack) as broker, private_database(stack) as (env, connect):
        env = {**env, "TRACEHUB_MQTT_TLS_PORT": str(broker.port)}
        agent = EdgeAgent(
            tmp_path,
            broker.settings(stack),
            device,
            spool="max_readings = 20",
            acks="resend_after_s = 2\nmax_resend_after_s = 4\nmissing_grace_s = 1",
        )
        gateway = None
        try:
            agent.start()
            wait_until(lambda: agent.status().get("publisher", {}).get("connected"), 30, "connect")
            # No gateway: nothing is acknowledged, and 40 readings do not fit in 20.
            agent.read_tags(range(40))
            wait_until(lambda: agent.read_events() == 40, 30, "40 readings made")
            assert agent.status()["spool"]["dropped"] == {"dropped_oldest": 20}
            name = f"full{uuid.uuid4().hex[:8]}"
            gateway = start_gateway(name, name, tmp_path / "gateway.log", env=env)
            with ReadingStore(connect) as store:
                wait_until(
                    lambda: store.gap_state(device) == GapState(missing=[], lost=[(1, 20)]),
                    90,
                    "readings 1..20 recorded as lost",
                )
            wait_until(lambda: agent.spool("depth") == 0, 30, "the agent's spool to empty")
        finally:
            agent.close()
            if gateway is not None:
                gateway.send_signal(signal.SIGTERM)
                gateway.wait(60)
        assert stored_seqs(connect, device) == list(range(21, 41))
        with connect() as conn:
            lost = conn.execute(
                "SELECT first_seq, last_seq, reason FROM lost_readings WHERE device_id = %s"
                " ORDER BY first_seq",
                (device,),
            ).fetchall()
            reports = [
                bytes(row[0])
                for row in conn.execute(
                    "SELECT envelope FROM dropped_reports WHERE device_id = %s", (device,)
                )
            ]
    # The overflow may have been reported in pieces; together they are exactly 1..20.
    covered = sorted(seq for first, last, _ in lost for seq in range(first, last + 1))
    assert covered == list(range(1, 21))
    assert {reason for _, _, reason in lost} == {"overflow"}
    # Each report is the device's signed statement, verifiable by anyone with its certificate.
    pki = PKI(stack.pki_dir)
    trust = TrustStore.from_pem_files(pki.ca_bundle_path, pki.crl_path)
    directory = InMemoryDirectory([pki.device(device)[0].certificate])
    for envelope in reports:
        verified = verify_dropped(envelope, trust, directory, topic_device_id=device)
        assert verified.report.reason == "overflow"
