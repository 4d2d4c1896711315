"""A gateway process through a PostgreSQL failover: its database is a primary with a synchronous
hot standby of the test's own (tests/support/postgres_pair.py, free ports, a temporary run dir),
everything else is the stack's (broker, ledger registry, Kubo). A device enrolled on the ledger
publishes signed readings at a steady rate and listens for the hub's end-to-end
acknowledgements; the primary is killed (SIGKILL) and `failover.sh promote` run.

Every reading the hub acknowledged must be stored exactly once on the new primary, and in the
end every reading published; the pause is the longest stretch without an acknowledgement that
moved forward, printed with the figures.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from certs.pki import PKI
from ingest.schema import migrate
from tests.support import mqtt as mqtt_support
from tests.support.gateway import Device, start_gateway, subscribed
from tests.support.postgres_pair import PostgresPair, postgres_pair
from tests.support.processes import wait_until
from tracehub import db
from tracehub.acks import HubAck, ack_topic, readings_topic
from tracehub.config import Settings

pytestmark = pytest.mark.integration

SCHEMA = "gw_failover"
#: readings published after the failover: they must all be stored through the new primary
AFTER_FAILOVER = 60
#: a pause longer than this means the failover did not work (kill, promote, reconnect: ~3 s)
MAX_PAUSE_S = 30.0


@pytest.fixture()
def pair(stack: Settings) -> Iterator[PostgresPair]:
    with postgres_pair() as pair:
        with pair.connect("postgres", autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {SCHEMA}")
        with pair.connect("postgres", options=f"-c search_path={SCHEMA}") as conn:
            migrate(conn)
        yield pair


class Acks:
    """The hub's acknowledgements to one device, as (arrival time, stored through)."""

    def __init__(self) -> None:
        self.received: list[tuple[float, int]] = []

    def on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        self.received.append(
            (time.monotonic(), HubAck.from_json_bytes(bytes(message.payload)).through)
        )

    def through(self) -> int:
        return max((t for _, t in self.received), default=0)


def stored_counts(pair: PostgresPair, node: str, device_id: str) -> dict[int, int]:
    with pair.connect(node) as conn:
        rows = conn.execute(
            f"SELECT seq, count(*) FROM {SCHEMA}.readings WHERE device_id = %s GROUP BY seq",
            (device_id,),
        ).fetchall()
    return {int(seq): int(n) for seq, n in rows}


def test_a_gateway_rides_out_a_failover_nothing_acknowledged_is_lost(
    stack: Settings, pair: PostgresPair, tmp_path: Path
) -> None:
    primary, standby = pair.port["postgres"], pair.port["postgres-standby"]
    owner = (
        f"host=127.0.0.1 port={primary} user=tracehub dbname=tracehub "
        f"passfile={pair.settings.postgres_passfile}"
    )
    env = {
        **os.environ,  # the stack for everything but PostgreSQL
        "TRACEHUB_POSTGRES_DSN": db.with_search_path(owner, SCHEMA),
        "TRACEHUB_POSTGRES_STANDBYS": f"127.0.0.1:{standby}",
    }
    # 20 ms apart, as published: the readings' timestamps stay within the gateway's clock skew.
    device = Device.many(stack, PKI(stack.pki_dir), 1, step=timedelta(milliseconds=20))[0]
    name = f"pgf{uuid.uuid4().hex[:8]}"
    log = tmp_path / "gateway.log"
    gateway = start_gateway(name, name, log, env=env)
    client = mqtt_support.device_client(stack, device.id)
    acks = Acks()
    client.on_message = acks.on_message
    published: list[int] = []
    stop = threading.Event()

    def publish() -> None:
        seq = 0
        while not stop.wait(0.02):  # a steady 50 readings/s
            seq += 1
            info = client.publish(readings_topic(device.id), device.sign(seq, 4.0), qos=1)
            info.wait_for_publish(30)
            published.append(seq)

    publisher = threading.Thread(target=publish, daemon=True)
    try:
        wait_until(lambda: subscribed(log), 60, "the gateway to subscribe")
        assert mqtt_support.connect(client, stack)
        client.subscribe(ack_topic(device.id), qos=1)
        publisher.start()
        wait_until(lambda: acks.through() >= 100, 60, "100 readings acknowledged")

        killed_at = time.monotonic()
        pair.kill("postgres")
        through_at_kill = acks.through()
        # Synchronous: every reading acknowledged so far is on the standby before any promotion.
        on_standby = stored_counts(pair, "postgres-standby", device.id)
        assert all(on_standby.get(seq) == 1 for seq in range(1, through_at_kill + 1))
        failover = pair.script("failover.sh", "promote")
        assert failover.returncode == 0, failover.stdout + failover.stderr
        promoted_in = time.monotonic() - killed_at

        last = len(published) + AFTER_FAILOVER
        wait_until(lambda: len(published) >= last, 60, f"{AFTER_FAILOVER} more published")
        stop.set()
        publisher.join(60)
        wait_until(
            lambda: acks.through() >= len(published), 90, "every published reading acknowledged"
        )
    finally:
        stop.set()
        mqtt_support.close(client)
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(60)

    stored = stored_counts(pair, "postgres-standby", device.id)  # the new primary
    assert set(stored.values()) == {1}, "a reading stored twice"
    assert sorted(stored) == list(range(1, len(published) + 1)), "a reading lost"
    # The pause: the longest stretch without an acknowledgement that ends after the kill.
    times = [t for t, _ in acks.received]
    pause = max(b - a for a, b in pairwise(times) if b > killed_at)
    print(
        f"\nHA PostgreSQL, gateway process: primary killed; failover.sh promote done "
        f"{promoted_in:.2f} s after the kill; pause in acknowledgements {pause:.2f} s; "
        f"{len(published)} readings published, acknowledged through {acks.through()}, "
        f"{len(stored)} stored, each once"
    )
    assert pause < MAX_PAUSE_S
    assert "database unreachable" in log.read_text()  # the group in flight was written again
