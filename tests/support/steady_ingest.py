"""A steady ingest of signed readings, for the kill tests of the replicated stack (tests/ha).

Devices enrolled on the ledger sign hash-chained readings stamped with the time they are taken
and publish them at a steady total rate (QoS 1). Like the edge agent (docs/acknowledgement.md),
each device keeps a reading until the hub's end-to-end acknowledgement accounts for it and
resends what the hub has not accounted for after `RESEND_AFTER_S`, what it lists as missing after
`MISSING_GRACE_S`, and everything unsettled on a new broker connection. A poller samples how many
of the run's readings are stored and how many anchored, so the pause a fault causes can be read
off (`SteadyIngest.pauses`); `verify` then checks every acknowledged reading in PostgreSQL (on
every server of the connection string), its batch object on every Kubo node and its anchor on
the ledger.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.support.gateway import Device, start_gateway, subscribed
from tests.support.mqtt import device_client
from tests.support.processes import wait_until
from tracehub import db
from tracehub.acks import AckError, HubAck, ack_topic
from tracehub.config import Settings
from tracehub.envelope import reading_hash, sign_reading
from tracehub.ipfs import KuboClient
from tracehub.ledger import LedgerError
from tracehub.ledger.local import connect_org
from tracehub.reading import GENESIS_PREV, Reading

#: The agent's `resend_after_s` (30 s by default), shortened so a run ends in seconds.
RESEND_AFTER_S = 5.0
#: The agent's `max_resend_after_s` (600 s): each resend of a reading waits twice as long as the
#: one before, up to this, so a hub that is away for a minute is not sent the backlog ten times.
MAX_RESEND_AFTER_S = 30.0
#: The agent's `missing_grace_s`: a hole is often another gateway that has not committed yet.
MISSING_GRACE_S = 2.0
#: How often the poller counts the run's stored and anchored readings.
SAMPLE_S = 0.5


@dataclass
class _Pending:
    envelope: bytes
    first_sent: float
    last_sent: float
    resend_after: float = RESEND_AFTER_S


class Feed:
    """One device of the run: signs, publishes and keeps its readings until acknowledged."""

    def __init__(self, settings: Settings, device: Device) -> None:
        self.id, self.topic = device.id, device.topic
        self._key, self._cert = device.key, device.cert
        self._prev = GENESIS_PREV
        self._ts = datetime.now(UTC).replace(microsecond=0)
        self.published = 0  # the last sequence number signed
        self.unsettled: dict[int, _Pending] = {}
        self.acked: dict[int, float] = {}  # seq -> seconds from first publish to its ack
        self.resent = 0
        self.connections = 0
        self._lock = threading.Lock()
        self.client = device_client(settings, device.id)
        self.client.max_inflight_messages_set(1000)
        # The broker may be down for a while (a fault); come back within a second or two.
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    def connect(self, settings: Settings) -> None:
        self.client.connect(settings.mqtt_host, settings.mqtt_tls_port, keepalive=10)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _send(self, seqs: list[tuple[int, bytes]]) -> None:
        # Outside the lock: paho's network thread takes it in _on_message.
        for _, envelope in seqs:
            self.client.publish(self.topic, envelope, qos=1)

    def publish_next(self) -> None:
        """Take, sign and publish the next reading."""
        now = datetime.now(UTC)
        ts = max(
            now.replace(microsecond=now.microsecond // 1000 * 1000),
            self._ts + timedelta(milliseconds=1),
        )
        self._ts = ts
        seq = self.published + 1
        reading = Reading(
            device=self.id,
            seq=seq,
            ts=ts,
            kind="environment",
            data={"temperature_c": 4.0 + seq % 40 / 10, "humidity_pct": 55.0},
            prev=self._prev,
        )
        envelope = sign_reading(reading, self._key, self._cert)  # type: ignore[arg-type]
        self._prev = reading_hash(envelope)
        moment = time.monotonic()
        with self._lock:
            self.published = seq
            self.unsettled[seq] = _Pending(envelope, moment, moment)
        self._send([(seq, envelope)])

    def _due(
        self, now: float, older_than: float, seqs: set[int] | None = None
    ) -> list[tuple[int, bytes]]:
        """Unsettled readings (of ``seqs``, default all) last sent ``older_than`` s ago, marked
        sent now. Called with the lock held."""
        due = []
        for seq, pending in self.unsettled.items():
            if seqs is not None and seq not in seqs:
                continue
            if now - pending.last_sent >= older_than:
                pending.last_sent = now
                due.append((seq, pending.envelope))
        self.resent += len(due)
        return due

    def resend_due(self) -> None:
        """Resend what the hub has not accounted for after RESEND_AFTER_S, doubling the wait
        for each resend up to MAX_RESEND_AFTER_S, as the agent does."""
        now = time.monotonic()
        with self._lock:
            seqs = {
                seq
                for seq, pending in self.unsettled.items()
                if now - pending.last_sent >= pending.resend_after
            }
            for seq in seqs:
                pending = self.unsettled[seq]
                pending.resend_after = min(2 * pending.resend_after, MAX_RESEND_AFTER_S)
            due = self._due(now, 0.0, seqs) if seqs else []
        self._send(due)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            return
        client.subscribe(ack_topic(self.id), qos=1)
        with self._lock:
            self.connections += 1
            # A new connection: the broker may have lost what it held, send everything again.
            due = self._due(time.monotonic(), 0.0) if self.connections > 1 else []
        self._send(due)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            ack = HubAck.from_json_bytes(bytes(message.payload))
        except AckError:
            return
        if ack.device != self.id:
            return
        now = time.monotonic()
        with self._lock:
            for first, last in ack.accounted():
                for seq in [s for s in self.unsettled if first <= s <= last]:
                    self.acked[seq] = now - self.unsettled.pop(seq).first_sent
            missing = {s for first, last in ack.missing for s in range(first, last + 1)}
            due = self._due(now, MISSING_GRACE_S, missing) if missing else []
        self._send(due)

    def settled(self) -> bool:
        with self._lock:
            return not self.unsettled


@dataclass
class Outcome:
    """What a run left behind, checked after it drained (the results table's row)."""

    fault: str
    store_pause_s: float
    anchor_pause_s: float
    published: int
    acked: int
    stored: int
    duplicates: int  # rows beyond one per (device, seq)
    lost: int  # acknowledged, not stored
    batches: int
    pinned_on_both: int  # batches whose object every Kubo node has pinned
    anchored_once: int  # batches whose one ledger anchor is the store's (root, CID, tx, count)
    anchored_readings: int  # the ledger anchors' counts, summed
    on_every_server: int  # the run's readings on the PostgreSQL server that holds fewest
    resent: int
    max_ack_wait_s: float
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def pause_s(self) -> float:
        return max(self.store_pause_s, self.anchor_pause_s)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pause_s": self.pause_s}


def longest_stall(samples: list[tuple[float, int]], since: float) -> float:
    """The longest time after ``since`` between one increase of the count and the next."""
    before = [n for t, n in samples if t <= since]
    last = before[-1] if before else 0
    ends = [since]
    for t, n in samples:
        if t > since and n > last:
            ends.append(t)
            last = n
    return max((b - a for a, b in itertools.pairwise(ends)), default=0.0)


class SteadyIngest:
    """Devices publishing at ``rate`` readings/s in all, round-robin, and a poller."""

    def __init__(self, settings: Settings, devices: list[Device], rate: float) -> None:
        self.settings = settings
        self.rate = rate
        self.feeds = [Feed(settings, d) for d in devices]
        self.ids = [d.id for d in devices]
        self.samples: list[tuple[float, int, int]] = []  # (time, stored, anchored)
        self._publishing = threading.Event()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._publish, daemon=True),
            threading.Thread(target=self._poll, daemon=True),
        ]

    def start(self) -> SteadyIngest:
        for feed in self.feeds:
            feed.connect(self.settings)
        wait_until(lambda: all(f.connections for f in self.feeds), 30, "the devices connected")
        self._publishing.set()
        for thread in self._threads:
            thread.start()
        return self

    def _publish(self) -> None:
        first, sent, scanned = time.monotonic(), 0, 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now - scanned >= 0.5:
                for feed in self.feeds:
                    feed.resend_due()
                scanned = now
            if not self._publishing.is_set():
                time.sleep(0.05)
                continue
            due = first + sent / self.rate
            if now < due:
                time.sleep(min(due - now, 0.05))
                continue
            if now - due > 1.0:  # this process stalled: keep the rate, do not burst
                first = now - sent / self.rate
            self.feeds[sent % len(self.feeds)].publish_next()
            sent += 1

    def _poll(self) -> None:
        sql = (
            "SELECT count(*), count(*) FILTER (WHERE b.state = 'anchored') FROM readings r "
            "LEFT JOIN batches b USING (batch_id) WHERE r.device_id = ANY(%s)"
        )
        conn = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = db.connect(
                        self.settings.postgres_dsn, autocommit=True, connect_timeout=3
                    )
                row = conn.execute(sql, (self.ids,)).fetchone()
                assert row is not None
                self.samples.append((time.monotonic(), int(row[0]), int(row[1])))
            except psycopg.Error:
                # The database failing over or restarting is a fault under test: count on.
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(SAMPLE_S)
        if conn is not None:
            conn.close()

    @property
    def published(self) -> int:
        return sum(f.published for f in self.feeds)

    def stored(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    def anchored(self) -> int:
        return self.samples[-1][2] if self.samples else 0

    def stop_publishing(self) -> None:
        self._publishing.clear()

    def drain(self, timeout: float = 120) -> None:
        """After publishing stopped: every reading acknowledged, then every one anchored."""
        wait_until(
            lambda: all(f.settled() for f in self.feeds), timeout, "every reading acknowledged"
        )
        total = self.published
        wait_until(lambda: self.anchored() >= total, timeout, "every reading anchored")

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(10)
        for feed in self.feeds:
            feed.close()

    def pauses(self, since: float) -> tuple[float, float]:
        """The longest stall after ``since`` of readings reaching the store, and of anchors."""
        stored = [(t, s) for t, s, _ in self.samples]
        anchored = [(t, a) for t, _, a in self.samples]
        return longest_stall(stored, since), longest_stall(anchored, since)

    def _on_every_server(self, rows: int, patience_s: float = 30.0) -> int:
        """The run's readings on the PostgreSQL server holding fewest, each server of the
        multi-host connection string asked directly. A standby that has just rejoined may still
        be catching up: waited for up to ``patience_s`` to hold ``rows``."""
        params = conninfo_to_dict(self.settings.postgres_dsn)
        servers = list(
            zip(str(params["host"]).split(","), str(params["port"]).split(","), strict=True)
        )
        deadline = time.monotonic() + patience_s
        while True:
            counts = []
            for host, port in servers:
                dsn = make_conninfo(
                    self.settings.postgres_dsn,
                    host=host,
                    port=port,
                    target_session_attrs="any",
                    connect_timeout=3,
                )
                try:
                    with db.connect(dsn) as conn:
                        row = conn.execute(
                            "SELECT count(*) FROM readings WHERE device_id = ANY(%s)", (self.ids,)
                        ).fetchone()
                    counts.append(int(row[0]) if row else 0)
                except psycopg.OperationalError:
                    counts.append(0)  # a server that is not there holds nothing
            if min(counts) >= rows or time.monotonic() > deadline:
                return min(counts)
            time.sleep(1)

    def verify(self, fault: str, since: float) -> Outcome:
        """Check what the run left in PostgreSQL, on every Kubo node and on the ledger."""
        settings = self.settings
        with db.connect(settings.postgres_dsn) as conn:
            rows = conn.execute(
                "SELECT device_id, seq FROM readings WHERE device_id = ANY(%s)", (self.ids,)
            ).fetchall()
            batches = conn.execute(
                "SELECT b.batch_id, b.root, b.ipfs_cid, b.tx_id, b.state, b.count, "
                "(SELECT count(*) FROM readings m WHERE m.batch_id = b.batch_id) "
                "FROM batches b WHERE b.batch_id IN "
                "(SELECT DISTINCT batch_id FROM readings WHERE device_id = ANY(%s))",
                (self.ids,),
            ).fetchall()
        stored = {(device, seq) for device, seq in rows}
        lost = sum(1 for f in self.feeds for seq in f.acked if (f.id, seq) not in stored)
        cids = {row[0]: row[2] for row in batches}
        pins = []
        for url in settings.ipfs_endpoints:
            with KuboClient(url) as kubo:
                pins.append(kubo.pinned())
        pinned_on_both = sum(1 for cid in cids.values() if cid and all(cid in p for p in pins))
        anchored_once = anchored_readings = 0
        fabric = settings.fabric
        with connect_org(fabric, 2) as org2:
            contract = org2.get_network(fabric.channel).get_contract(fabric.chaincode)
            for batch_id, root, cid, tx_id, state, count, members in batches:
                try:
                    anchor = json.loads(contract.evaluate("GetAnchor", batch_id))
                except LedgerError:  # not anchored
                    continue
                anchored_readings += int(anchor["count"])
                if (
                    state == "anchored"
                    and (anchor["root"], anchor["ipfs_cid"], anchor["tx_id"]) == (root, cid, tx_id)
                    and anchor["count"] == count == members
                ):
                    anchored_once += 1
        store_pause, anchor_pause = self.pauses(since)
        return Outcome(
            fault=fault,
            store_pause_s=round(store_pause, 1),
            anchor_pause_s=round(anchor_pause, 1),
            published=self.published,
            acked=sum(len(f.acked) for f in self.feeds),
            stored=len(stored),
            duplicates=len(rows) - len(stored),
            lost=lost,
            batches=len(batches),
            pinned_on_both=pinned_on_both,
            anchored_once=anchored_once,
            anchored_readings=anchored_readings,
            on_every_server=self._on_every_server(len(rows)),
            resent=sum(f.resent for f in self.feeds),
            max_ack_wait_s=round(
                max((w for f in self.feeds for w in f.acked.values()), default=0), 1
            ),
        )


def table(outcomes: list[Outcome]) -> str:
    """The results table printed at the end of the kill tests."""
    head = (
        f"{'fault':<32} {'pause s':>8} {'(store':>7} {'anchor)':>8} {'acked':>7} {'stored':>7} "
        f"{'dupl.':>6} {'lost':>5} {'batches':>8} {'pinned on both':>15} {'anchored once':>14} "
        f"{'on all PG':>10} {'resent':>7} {'max ack wait s':>15}"
    )
    lines = [head, "-" * len(head)]
    for o in outcomes:
        lines.append(
            f"{o.fault:<32} {o.pause_s:>8.1f} {o.store_pause_s:>7.1f} {o.anchor_pause_s:>8.1f} "
            f"{o.acked:>7} {o.stored:>7} {o.duplicates:>6} {o.lost:>5} {o.batches:>8} "
            f"{o.pinned_on_both:>15} {o.anchored_once:>14} {o.on_every_server:>10} {o.resent:>7} "
            f"{o.max_ack_wait_s:>15.1f}"
        )
    return "\n".join(lines)


class GatewayGroup:
    """Gateway processes sharing one subscription group, each killed and started by name.

    They run with the production batch limits (5,000 readings or 2 s), so anchoring takes one
    ledger transaction per gateway every two seconds, as it would in service.
    """

    ARGS = ("--batch-readings", "5000", "--batch-seconds", "2", "--session-expiry", "600")

    def __init__(self, settings: Settings, count: int, log_dir: Path) -> None:
        tag = uuid.uuid4().hex[:6]
        self.group = f"ha{tag}"
        self.names = [f"ha{tag}-{n}" for n in range(1, count + 1)]
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._starts: dict[str, int] = {}

    def log(self, name: str) -> Path:
        return self.log_dir / f"gateway-{name}.log"

    def start(self, name: str) -> None:
        """Start gateway ``name`` (again) and wait until it has subscribed."""
        self.processes[name] = start_gateway(name, self.group, self.log(name), *self.ARGS)
        self._starts[name] = self._starts.get(name, 0) + 1
        times = self._starts[name]
        wait_until(lambda: subscribed(self.log(name), times), 60, f"gateway {name} subscribed")

    def start_all(self) -> GatewayGroup:
        for name in self.names:
            self.start(name)
        return self

    def kill(self, name: str) -> None:
        """SIGKILL: a crash, between any two instructions."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(30)

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()
