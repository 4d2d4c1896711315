"""End-to-end acknowledgement with the real broker, gateway processes and edge agent process:
whatever the broker loses (a departed shared-subscription member's queue, its whole state after
a restart without its persistence file) or the gateway dies holding, every reading the agent
made is stored exactly once and the agent's spool empties.

Each test runs a Mosquitto of its own, started by this tree's network/mosquitto/mosquitto.sh
(tests.support.broker: the ACL under test, and a broker a test may kill), and its gateways write
to a schema of their own (tests.support.gateway.private_database), so no other traffic on the
stack reaches them.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.store import GapState, ReadingStore
from tests.support.broker import PrivateBroker, private_broker
from tests.support.db import Connect
from tests.support.edge import EdgeAgent, enrol_device
from tests.support.gateway import (
    leave_group,
    private_database,
    start_gateway,
    stored_seqs,
    subscribed,
)
from tests.support.processes import wait_until
from tracehub.config import Settings

pytestmark = pytest.mark.integration

# The agent gives up on an acknowledgement after 3 s (30 s in production), and resends what the
# hub lists as missing once it was sent 1 s ago: the tests then take seconds, not minutes.
QUICK_ACKS = "resend_after_s = 3\nmax_resend_after_s = 6\nmissing_grace_s = 1"


def _name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def _chain_gaps(connect: Connect, device_id: str) -> int:
    with connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM chain_gaps WHERE device_id = %s AND kind = 'gap'", (device_id,)
        ).fetchone()
    return int(row[0]) if row else 0


def _gap_state(connect: Connect, device_id: str) -> GapState:
    with ReadingStore(connect) as store:
        return store.gap_state(device_id)


def _connected(agent: EdgeAgent) -> bool:
    publisher = agent.status().get("publisher")
    return isinstance(publisher, dict) and bool(publisher.get("connected"))


class Hub:
    """A private broker and database: the environment for gateway processes, the settings for
    agents, connections for the test's queries."""

    def __init__(self, broker: PrivateBroker, env: dict[str, str], connect: Connect) -> None:
        self.broker = broker
        self.env = {**env, "TRACEHUB_MQTT_TLS_PORT": str(broker.port)}
        self.connect = connect


@pytest.fixture()
def hub(stack: Settings, tmp_path: Path) -> Iterator[Hub]:
    with private_broker(tmp_path, stack) as broker, private_database(stack) as (env, connect):
        yield Hub(broker, env, connect)


def test_a_departed_group_member_then_a_burst_every_reading_stored_once(
    stack: Settings, hub: Hub, tmp_path: Path
) -> None:
    """The issue's scenario: a member of the group stops for good (its session kept 600 s, so
    Mosquitto keeps queueing its share), a new member joins, the agent publishes 89 readings."""
    env, connect = hub.env, hub.connect
    device = enrol_device(stack, "acc")
    group, departed, joined = _name("acc"), _name("gone"), _name("new")
    departed_log, joined_log = tmp_path / "departed.log", tmp_path / "joined.log"
    first = start_gateway(departed, group, departed_log, "--session-expiry", "600", env=env)
    try:
        wait_until(lambda: subscribed(departed_log), 60, "the first member to subscribe")
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(60)
    second = start_gateway(joined, group, joined_log, env=env)
    agent = EdgeAgent(tmp_path, hub.broker.settings(stack), device, acks=QUICK_ACKS)
    try:
        wait_until(lambda: subscribed(joined_log), 60, "the new member to subscribe")
        agent.start()
        wait_until(lambda: _connected(agent), 30, "the agent to connect")
        agent.read_tags(range(89))
        wait_until(lambda: agent.read_events() == 89, 30, "89 readings made")
        wait_until(lambda: len(set(stored_seqs(connect, device))) == 89, 120, "89 stored")
        wait_until(lambda: agent.spool("depth") == 0, 60, "the agent's spool to empty")
    finally:
        agent.close()
        second.send_signal(signal.SIGTERM)
        second.wait(60)
    assert stored_seqs(connect, device) == list(range(1, 90)), "each reading stored once"
    # The premise held: the departed member's queue took readings, so the new one saw holes...
    assert _chain_gaps(connect, device) > 0
    # ...which healed: nothing is missing and nothing was declared lost.
    assert _gap_state(connect, device) == GapState([], [])


def test_a_gateway_that_left_its_group_takes_no_share(
    stack: Settings, hub: Hub, tmp_path: Path
) -> None:
    """Scaling down as docs/acknowledgement.md says: stop the gateway, then `--leave`."""
    env, connect = hub.env, hub.connect
    device = enrol_device(stack, "leave")
    group, removed, staying = _name("scale"), _name("removed"), _name("staying")
    removed_log, staying_log = tmp_path / "removed.log", tmp_path / "staying.log"
    first = start_gateway(removed, group, removed_log, env=env)
    try:
        wait_until(lambda: subscribed(removed_log), 60, "the member to be removed to subscribe")
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(60)
    leave_group(removed, env)
    second = start_gateway(staying, group, staying_log, env=env)
    # Production timeouts: nothing should need resending.
    agent = EdgeAgent(tmp_path, hub.broker.settings(stack), device)
    try:
        wait_until(lambda: subscribed(staying_log), 60, "the staying member to subscribe")
        agent.start()
        wait_until(lambda: _connected(agent), 30, "the agent to connect")
        agent.read_tags(range(40))
        wait_until(lambda: len(stored_seqs(connect, device)) == 40, 60, "40 stored")
        wait_until(lambda: agent.spool("depth") == 0, 30, "the agent's spool to empty")
    finally:
        agent.close()
        second.send_signal(signal.SIGTERM)
        second.wait(60)
    assert stored_seqs(connect, device) == list(range(1, 41))
    assert _chain_gaps(connect, device) == 0, "a reading went to the member that left"
    assert agent.status()["publisher"]["resent"] == 0


def test_broker_restarted_without_its_persistence_file_mid_burst(
    stack: Settings, hub: Hub, tmp_path: Path
) -> None:
    connect, broker = hub.connect, hub.broker
    device = enrol_device(stack, "wipe")
    name, group, log = _name("wipe"), _name("wipe"), tmp_path / "gateway.log"
    gateway = start_gateway(name, group, log, env=hub.env)
    agent = EdgeAgent(tmp_path, broker.settings(stack), device, acks=QUICK_ACKS)
    try:
        wait_until(lambda: subscribed(log), 60, "the gateway to subscribe")
        agent.start()
        wait_until(lambda: _connected(agent), 30, "the agent to connect")
        agent.read_tags(range(100))
        wait_until(lambda: len(stored_seqs(connect, device)) == 100, 60, "the first 100 stored")
        wait_until(lambda: agent.spool("depth") == 0, 30, "the first 100 acknowledged")
        # The gateway restarts; meanwhile the next 100 wait in its session at the broker, which
        # has PUBACKed them: the broker is the only one but the agent's spool to hold them...
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(60)
        agent.read_tags(range(100, 200))
        wait_until(lambda: agent.read_events() == 200, 30, "200 readings made")
        wait_until(lambda: agent.spool("unsent") == 0, 30, "the broker to take all 200")
        # ...when it dies with its persistence file and comes back empty; the burst goes on.
        broker.kill()
        broker.wipe()
        broker.start()
        gateway = start_gateway(name, group, log, env=hub.env)
        agent.read_tags(range(200, 300), 0.01)
        wait_until(lambda: agent.read_events() == 300, 30, "300 readings made")
        wait_until(lambda: len(set(stored_seqs(connect, device))) == 300, 120, "300 stored")
        wait_until(lambda: agent.spool("depth") == 0, 60, "the agent's spool to empty")
    finally:
        agent.close()
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(60)
    assert stored_seqs(connect, device) == list(range(1, 301)), "each reading stored once"
    assert _gap_state(connect, device) == GapState([], [])
    assert agent.status()["publisher"]["resent"] >= 100  # what the broker lost came from the spool


def test_gateway_killed_between_durable_write_and_acknowledgement(
    stack: Settings, hub: Hub, tmp_path: Path
) -> None:
    env, connect = hub.env, hub.connect
    device = enrol_device(stack, "kill")
    group, name, log = _name("kill"), _name("kill"), tmp_path / "gateway.log"
    # Acknowledgements only every 60 s: a wide window between the commit and the ack.
    gateway = start_gateway(name, group, log, "--ack-interval", "60", env=env)
    agent = EdgeAgent(tmp_path, hub.broker.settings(stack), device, acks=QUICK_ACKS)
    try:
        wait_until(lambda: subscribed(log), 60, "the gateway to subscribe")
        agent.start()
        wait_until(lambda: _connected(agent), 30, "the agent to connect")
        agent.read_tags(range(30))
        wait_until(lambda: len(stored_seqs(connect, device)) == 30, 60, "30 stored")
        # In the window: all 30 durably stored, all taken by the broker, none acknowledged.
        wait_until(lambda: agent.spool("unsent") == 0, 30, "the broker to take all 30")
        assert agent.spool("depth") == 30
        gateway.send_signal(signal.SIGKILL)
        gateway.wait(10)
        gateway = start_gateway(name, group, log, env=env)
        wait_until(lambda: agent.spool("depth") == 0, 60, "the agent's spool to empty")
    finally:
        agent.close()
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(60)
    assert stored_seqs(connect, device) == list(range(1, 31)), "each reading stored once"
    assert agent.status()["publisher"]["resent"] >= 30
