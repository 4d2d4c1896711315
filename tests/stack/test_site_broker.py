"""Site brokers: devices publish to a warehouse's broker, bridged to the hub broker. The hub broker
is down for 60 s during a steady stream of signed readings; afterwards every reading the site
broker acknowledged is stored exactly once and anchored. The pause (readings stop reaching the
store until they reach it again) and the drain time are printed.

Both brokers are private (the stack's hub broker on 18883 is never touched): a hub started by
network/mosquitto/mosquitto.sh on a free port, and a site broker by site-broker.sh bridged to
it. The gateway, PostgreSQL, Kubo and Fabric are the stack's.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from certs.pki import PKI
from ingest.store import ReadingStore
from tests.support.broker import PrivateBroker, private_broker
from tests.support.edge import EdgeAgent, enrol_device
from tests.support.gateway import Device, count_rows, start_gateway, subscribed
from tests.support.mqtt import close, connect, device_client
from tests.support.processes import wait_until
from tests.support.site_broker import SiteBroker, site_broker
from tracehub import db
from tracehub.config import Settings
from tracehub.ledger.local import connect_org

pytestmark = pytest.mark.integration

AGENTS = 3
RATE_PER_DEVICE = 5  # readings per second: 15 a second from the site
BEFORE_S, OUTAGE_S, AFTER_S = 8.0, 60.0, 12.0
#: the pause may exceed the outage by the gateway's and the bridge's reconnect back-off (10 s
#: and 5 s caps), a batch (1 s) and the store's polling; more means something waited too long
MAX_EXTRA_PAUSE_S = 25.0
#: what the gateway had taken before the hub stopped is stored within a batch window (1 s);
#: 5 s leaves room for a loaded machine
IN_FLIGHT_S = 5.0


@dataclass
class Publisher:
    """Devices publishing signed readings at QoS 1 to the site broker, at a steady rate; which
    readings the site broker acknowledged (PUBACK, success), per device."""

    devices: list[Device]
    clients: list[mqtt.Client]
    sent: dict[str, dict[int, int]] = field(default_factory=dict)  # device -> mid -> seq
    pubacks: dict[str, list[tuple[int, bool]]] = field(default_factory=dict)  # (mid, ok)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        for device, client in zip(self.devices, self.clients, strict=True):
            self.sent[device.id] = {}
            answers: list[tuple[int, bool]] = []
            self.pubacks[device.id] = answers
            # list.append is atomic: the network thread records, the test reads afterwards.
            client.on_publish = lambda c, u, mid, reason, p, a=answers: a.append(
                (mid, not reason.is_failure)
            )

    def run(self) -> None:
        seq, started = 0, time.monotonic()
        while not self.stop.is_set():
            seq += 1
            for device, client in zip(self.devices, self.clients, strict=True):
                info = client.publish(device.topic, device.sign(seq, 4.0 + seq / 1000), qos=1)
                self.sent[device.id][info.mid] = seq
            # Paced against the clock, so signing time does not slow the rate down.
            delay = started + seq / RATE_PER_DEVICE - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def acknowledged(self) -> dict[str, set[int]]:
        """Per device, the sequence numbers the site broker acknowledged."""
        return {
            device: {self.sent[device][mid] for mid, ok in list(answers) if ok}
            for device, answers in self.pubacks.items()
        }

    def acknowledged_count(self) -> int:
        return sum(len(answers) for answers in self.pubacks.values())


class StoreWatch:
    """Samples how many of the devices' readings the store holds, every 0.2 s."""

    def __init__(self, stack: Settings, device_ids: list[str]) -> None:
        self.samples: list[tuple[float, int]] = []
        self._stack, self._ids = stack, device_ids
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with db.connect(self._stack.postgres_dsn) as conn:
            while not self._stop.is_set():
                row = conn.execute(
                    "select count(*) from readings where device_id = any(%s)", (self._ids,)
                ).fetchone()
                self.samples.append((time.monotonic(), int(row[0]) if row else 0))
                time.sleep(0.2)

    def __enter__(self) -> StoreWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def count(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    def pause(self, around: float) -> tuple[float, float]:
        """The stretch without a new stored reading that contains ``around``: (its start, the
        first sample after it with more readings)."""
        last_growth = first_after = None
        previous = None
        for at, count in self.samples:
            if previous is not None and count > previous:
                if at <= around:
                    last_growth = at
                elif first_after is None:
                    first_after = at
            previous = count
        assert last_growth is not None and first_after is not None, self.samples[-5:]
        return last_growth, first_after

    def count_at(self, moment: float) -> int:
        """How many readings the store held at the first sample taken at or after ``moment``."""
        return next(held for at, held in self.samples if at >= moment)

    def reached(self, count: int) -> float:
        """When the store first held ``count`` readings."""
        return next(at for at, held in self.samples if held >= count)


@pytest.fixture
def brokers(stack: Settings, tmp_path: Path) -> Iterator[tuple[PrivateBroker, SiteBroker]]:
    with private_broker(tmp_path, stack) as hub, site_broker(tmp_path, stack, hub) as site:
        wait_until(lambda: site.bridged(hub), 30, "the site broker's bridge to the hub")
        yield hub, site


def test_hub_broker_down_60_s_loses_nothing(stack: Settings, tmp_path: Path) -> None:
    """Edge agents (the real ones) publish through the site broker at a steady rate; the hub
    broker is stopped for 60 s and started again. The site broker's queue reaches a restarted
    hub before the gateway has subscribed again, and Debian's Mosquitto 2.0.11 keeps no
    subscription across its restart, so the hub drops that backlog (decision 0034); the hub's
    acknowledgements, carried back by the bridge, list the readings as missing and the agents
    resend them. Every reading made is stored exactly once and anchored."""
    devices = [enrol_device(stack, "site") for _ in range(AGENTS)]
    with (
        private_broker(tmp_path, stack) as hub,
        site_broker(tmp_path, stack, hub, devices) as site,
    ):
        wait_until(lambda: site.bridged(hub), 30, "the site broker's bridge to the hub")
        log = tmp_path / "gateway.log"
        name = f"site{uuid.uuid4().hex[:6]}"
        gateway = start_gateway(
            name, name, log, env={**os.environ, "TRACEHUB_MQTT_TLS_PORT": str(hub.port)}
        )
        agents = [EdgeAgent(tmp_path, site.settings(stack), device) for device in devices]
        stop_reading = threading.Event()
        shown = dict.fromkeys(devices, 0)  # tags shown to each agent's reader: one reading each

        def read(agent: EdgeAgent) -> None:
            started = time.monotonic()
            while not stop_reading.is_set():
                agent.read_tags(range(shown[agent.device_id], shown[agent.device_id] + 1))
                shown[agent.device_id] += 1
                # Paced against the clock, so the rate does not drift.
                due = started + shown[agent.device_id] / RATE_PER_DEVICE
                time.sleep(max(0.0, due - time.monotonic()))

        readers = [threading.Thread(target=read, args=(a,), daemon=True) for a in agents]
        try:
            wait_until(lambda: subscribed(log), 60, "the gateway's subscription at the hub")
            for agent in agents:
                agent.start()
            wait_until(lambda: all(_connected(a) for a in agents), 30, "the agents connected")
            with StoreWatch(stack, devices) as store:
                for reader in readers:
                    reader.start()
                wait_until(lambda: store.count() > 0, 30, "readings flowing to the store")
                time.sleep(BEFORE_S)

                down_at = time.monotonic()
                hub.stop()
                made_at_down = _made(agents)  # the agents' status lags by up to its interval
                time.sleep(OUTAGE_S)
                taken_during = _taken(agents) - made_at_down
                stored_during = store.count()
                up_at = time.monotonic()
                hub.start()
                backlog = _made(agents)  # made before the hub came back

                time.sleep(AFTER_S)
                stop_reading.set()
                for reader in readers:
                    reader.join(10)
                wait_until(
                    lambda: all(a.read_events() == shown[a.device_id] for a in agents),
                    10,
                    "every tag shown made into a reading",
                )
                made = {a.device_id: a.read_events() for a in agents}
                total = sum(made.values())
                wait_until(lambda: store.count() >= total, 150, "every reading stored")
                drained_at = store.reached(backlog)
                stopped_at, resumed_at = store.pause(around=down_at + OUTAGE_S / 2)
            wait_until(lambda: all(a.spool("depth") == 0 for a in agents), 60, "spools empty")
            resent = sum(int(a.status()["publisher"]["resent"]) for a in agents)
        finally:
            stop_reading.set()
            for agent in agents:
                agent.close()
            gateway.terminate()
            gateway.wait(30)

    pause, drain = resumed_at - stopped_at, drained_at - up_at
    print(
        f"\nsite broker: hub broker down {up_at - down_at:.1f} s; {total} readings made by"
        f" {AGENTS} agents; the site broker took {taken_during} while the hub was down; pause"
        f" {pause:.1f} s (store stopped {stopped_at - down_at:+.1f} s after the hub stopped,"
        f" resumed {resumed_at - up_at:+.1f} s after it started); the {backlog} readings made"
        f" before the hub came back were all stored {drain:.1f} s after it started;"
        f" {resent} resent by the agents"
    )
    # The site broker went on taking readings while the hub was down ...
    assert taken_during >= 0.8 * OUTAGE_S * RATE_PER_DEVICE * AGENTS
    # ... none of which reached the store then: once what the gateway held when the hub stopped
    # is stored (a batch, well within IN_FLIGHT_S), the count does not move until the hub is back.
    assert stored_during == store.count_at(down_at + IN_FLIGHT_S)
    assert pause < OUTAGE_S + MAX_EXTRA_PAUSE_S
    with db.connect(stack.postgres_dsn) as conn:
        for device, count in made.items():
            rows = conn.execute(
                "select seq from readings where device_id = %s order by seq", (device,)
            ).fetchall()
            assert [row[0] for row in rows] == list(range(1, count + 1)), device
    _assert_anchored_once(stack, devices, total)


def _connected(agent: EdgeAgent) -> bool:
    publisher = agent.status().get("publisher")
    return isinstance(publisher, dict) and bool(publisher.get("connected"))


def _made(agents: list[EdgeAgent]) -> int:
    """Readings the agents have made (each is in its spool from then on)."""
    return sum(a.read_events() for a in agents)


def _taken(agents: list[EdgeAgent]) -> int:
    """Readings the broker the agents publish to (the site broker) has acknowledged."""
    return sum(int(a.status().get("publisher", {}).get("acknowledged", 0)) for a in agents)


def _assert_anchored_once(stack: Settings, ours: list[str], total: int) -> None:
    """Every reading in an anchored batch, and each batch's anchor on the ledger (read at Org2)
    is the one the store recorded: one transaction per batch."""
    wait_until(
        lambda: (
            count_rows(
                stack,
                "select count(*) from readings r join batches b using (batch_id)"
                " where r.device_id = any(%s) and b.state = 'anchored'",
                ours,
            )
            >= total
        ),
        180,
        "every reading anchored",
    )
    with db.connect(stack.postgres_dsn) as conn:
        batches = [
            row[0]
            for row in conn.execute(
                "select distinct batch_id from readings where device_id = any(%s)", (ours,)
            )
        ]
    store = ReadingStore(lambda: db.connect(stack.postgres_dsn))
    try:
        with connect_org(stack.fabric, 2) as org2:
            contract = org2.get_network(stack.fabric.channel).get_contract(stack.fabric.chaincode)
            for batch_id in batches:
                record = store.batch(batch_id)
                assert record is not None and record.state == "anchored"
                anchor = json.loads(contract.evaluate("GetAnchor", batch_id))
                assert anchor["root"] == record.root and anchor["tx_id"] == record.tx_id
    finally:
        store.close()


def test_site_broker_restart_keeps_the_queue_for_the_hub(
    stack: Settings, tmp_path: Path, brokers: tuple[PrivateBroker, SiteBroker]
) -> None:
    """Readings queued for an unreachable hub survive a site broker restart (its persistence
    file): stopped while the hub is down, started again, then the hub; all of them arrive."""
    hub, site = brokers
    count = 50
    device = Device(stack, PKI(stack.pki_dir), timedelta(milliseconds=100))
    log = tmp_path / "gateway.log"
    name = f"site{uuid.uuid4().hex[:6]}"
    gateway = start_gateway(
        name, name, log, env={**os.environ, "TRACEHUB_MQTT_TLS_PORT": str(hub.port)}
    )
    try:
        wait_until(lambda: subscribed(log), 60, "the gateway's subscription at the hub")
        hub.stop()
        client = device_client(stack, device.id)
        publisher = Publisher([device], [client])
        assert connect(client, site.settings(stack))
        for seq in range(1, count + 1):
            info = client.publish(device.topic, device.sign(seq, 3.0), qos=1)
            publisher.sent[device.id][info.mid] = seq
        wait_until(
            lambda: len(publisher.acknowledged()[device.id]) == count, 10, "the site's PUBACKs"
        )
        close(client)
        site.stop()
        # The hub first, and its gateway subscribed again: a restarted hub broker keeps no
        # subscription until its client renews it (decision 0034), and this test is about the
        # site's queue, not that.
        hub.start()
        wait_until(lambda: subscribed(log, times=2), 60, "the gateway subscribed again")
        site.start()
        wait_until(lambda: site.bridged(hub, times=2), 30, "the bridge connected again")
        wait_until(
            lambda: (
                count_rows(stack, "select count(*) from readings where device_id = %s", device.id)
                >= count
            ),
            60,
            "the queued readings stored",
        )
    finally:
        gateway.terminate()
        gateway.wait(30)
    assert count_rows(
        stack, "select count(distinct seq) from readings where device_id = %s", device.id
    ) == count_rows(stack, "select count(*) from readings where device_id = %s", device.id)


def test_the_edge_agent_behind_a_site_gets_the_hubs_acknowledgements(
    stack: Settings, tmp_path: Path
) -> None:
    """The real agent publishes to the site broker; the hub's end-to-end acknowledgements come
    back over the bridge (the device is listed at the site), so its spool empties with the
    production timeouts and nothing is resent."""
    device = enrol_device(stack, "site")
    with (
        private_broker(tmp_path, stack) as hub,
        site_broker(tmp_path, stack, hub, [device]) as site,
    ):
        wait_until(lambda: site.bridged(hub), 30, "the site broker's bridge to the hub")
        log = tmp_path / "gateway.log"
        name = f"site{uuid.uuid4().hex[:6]}"
        gateway = start_gateway(
            name, name, log, env={**os.environ, "TRACEHUB_MQTT_TLS_PORT": str(hub.port)}
        )
        agent = EdgeAgent(tmp_path, site.settings(stack), device)
        try:
            wait_until(lambda: subscribed(log), 60, "the gateway's subscription at the hub")
            agent.start()
            wait_until(
                lambda: bool(agent.status().get("publisher", {}).get("connected")),
                30,
                "the agent connected to the site broker",
            )
            agent.read_tags(range(40))
            wait_until(
                lambda: (
                    count_rows(stack, "select count(*) from readings where device_id = %s", device)
                    == 40
                ),
                60,
                "40 readings stored",
            )
            wait_until(lambda: agent.spool("depth") == 0, 30, "the agent's spool to empty")
        finally:
            agent.close()
            gateway.terminate()
            gateway.wait(30)
    assert agent.status()["publisher"]["resent"] == 0
    assert agent.status()["hub_acks"]["settled"] == 40
