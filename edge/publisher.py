"""Publishes spooled readings to the broker with MQTT 5 QoS 1 over mutual TLS, and takes the
hub's end-to-end acknowledgements back (edge.acks, docs/acknowledgement.md).

The spool, not the MQTT client, is the source of truth: every connection starts from a fresh
client with a clean session, makes every unacknowledged reading due again (the broker may have
lost what it held) and sends the oldest first, so after a crash or an outage the order is the
spool's order. A PUBACK with a success code marks a reading sent; it leaves the spool only when
the hub's acknowledgement covers it, and is resent when that does not come in time. Duplicates
are therefore possible (QoS 1 is at least once, resends more so); the gateway drops them by
(device, seq). Readings the spool had to drop are reported to the hub, signed.
"""

from __future__ import annotations

import logging
import math
import queue
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from edge.acks import HubAcks
from edge.spool import Drop, Spool, SpooledReading
from tracehub.acks import SeqRange, ack_topic, dropped_topic, readings_topic
from tracehub.dropped import DropReason
from tracehub.mqtt import tls_client

log = logging.getLogger(__name__)

__all__ = ["BrokerSettings", "Publisher", "PublisherStats", "readings_topic"]

#: How often the publisher looks for dropped ranges it has not reported yet.
REPORT_CHECK_S = 1.0
#: A reading the broker took is marked sent in the spool (with its resend time) only if the hub
#: has not acknowledged it within this time: normally it has, and the spool is spared a write.
MARK_SENT_AFTER_S = 1.0


@dataclass(frozen=True)
class BrokerSettings:
    host: str
    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path
    client_id: str
    keepalive_s: int = 30


@dataclass
class PublisherStats:
    published: int = 0
    resent: int = 0  # of those published, readings the broker had acknowledged before
    acknowledged: int = 0  # by the broker (PUBACK); the hub's acknowledgements: HubAcks.stats
    unmarked: int = 0  # taken by the broker less than MARK_SENT_AFTER_S ago: unsent in the spool
    reports_published: int = 0  # dropped-range reports
    refused: int = 0  # PUBACK with a failure reason code: kept in the spool, retried later
    connects: int = 0
    connection_failures: int = 0
    last_error: str = ""
    last_error_at: str = ""  # when last_error happened (UTC, ISO 8601)
    connected: bool = False
    connected_since: str = ""  # when the current connection was made; "" while disconnected
    refused_reasons: dict[str, int] = field(default_factory=dict)


class Publisher:
    """Drains a spool into the broker; `run` blocks until ``stop`` is set."""

    def __init__(
        self,
        spool: Spool,
        broker: BrokerSettings,
        acks: HubAcks,
        *,
        window: int = 64,
        backoff_s: tuple[float, float] = (0.5, 30.0),
        retry_refused_after_s: float = 30.0,
    ) -> None:
        self.spool = spool
        self.broker = broker
        self.acks = acks
        self.window = window
        self.backoff_s = backoff_s
        self.retry_refused_after_s = retry_refused_after_s
        self.stats = PublisherStats()

    def run(self, stop: threading.Event) -> None:
        delay = self.backoff_s[0]
        while not stop.is_set():
            started = time.monotonic()
            self._session(stop)
            if stop.is_set():
                break
            # Back off exponentially, but start over after a session that lasted a while.
            if time.monotonic() - started > 10:
                delay = self.backoff_s[0]
            stop.wait(delay)
            delay = min(delay * 2, self.backoff_s[1])

    def _client(self, events: queue.Queue[tuple[str, object]]) -> mqtt.Client:
        client = tls_client(
            self.broker.client_id,
            ca_file=self.broker.ca_file,
            cert_file=self.broker.cert_file,
            key_file=self.broker.key_file,
        )
        client.max_inflight_messages_set(self.window)
        client.on_connect = lambda c, u, f, reason, p: events.put(("connect", reason))
        client.on_disconnect = lambda c, u, f, reason, p: events.put(("disconnect", reason))
        client.on_publish = lambda c, u, mid, reason, p: events.put(("puback", (mid, reason)))
        client.on_message = lambda c, u, message: events.put(("ack", bytes(message.payload)))
        return client

    def _session(self, stop: threading.Event) -> None:
        events: queue.Queue[tuple[str, object]] = queue.Queue()
        client = self._client(events)
        try:
            client.connect(
                self.broker.host, self.broker.port, self.broker.keepalive_s, clean_start=True
            )
        except (OSError, ssl.SSLError) as exc:
            self._failed(f"connect: {exc}")
            return
        client.loop_start()
        try:
            kind, reason = events.get(timeout=10)
            if kind != "connect" or getattr(reason, "is_failure", True):
                self._failed(f"broker refused the connection: {reason}")
                return
            self.stats.connects += 1
            self.stats.connected = True
            self.stats.connected_since = _now_iso()
            log.info("connected to %s:%d", self.broker.host, self.broker.port)
            client.subscribe(ack_topic(self.acks.device), qos=1)
            # What the previous connection sent may be gone with the broker's state: send again
            # whatever the hub has not acknowledged (it drops what it already has).
            self.spool.resend_all()
            self._pump(client, events, stop)
        except queue.Empty:
            self._failed("no CONNACK within 10 s")
        finally:
            self.stats.connected = False
            self.stats.connected_since = ""
            self.stats.unmarked = 0  # unsent again: they go on the next connection
            client.disconnect()
            client.loop_stop()

    def _failed(self, message: str) -> None:
        self.stats.connection_failures += 1
        self._error(message)
        log.warning("publisher: %s", message)

    def _error(self, message: str) -> None:
        """Record an error with its time, so a status can tell an old one from a current one."""
        self.stats.last_error = message
        self.stats.last_error_at = _now_iso()

    def _pump(
        self, client: mqtt.Client, events: queue.Queue[tuple[str, object]], stop: threading.Event
    ) -> None:
        in_flight: dict[int, SpooledReading] = {}
        # Taken by the broker, not yet acknowledged by the hub nor marked sent in the spool.
        unmarked: dict[tuple[str, int], tuple[SpooledReading, float]] = {}
        reports: dict[int, Drop | None] = {}  # dropped-range reports in flight
        held: dict[tuple[str, int], float] = {}  # refused by the broker: retry later
        try:
            self._pump_until_lost(client, events, stop, in_flight, unmarked, reports, held)
        finally:
            # The broker took these: whatever happens to its state, they count as sent (and as
            # resent when they go again on the next connection).
            self._mark_sent(unmarked, math.inf)

    def _pump_until_lost(
        self,
        client: mqtt.Client,
        events: queue.Queue[tuple[str, object]],
        stop: threading.Event,
        in_flight: dict[int, SpooledReading],
        unmarked: dict[tuple[str, int], tuple[SpooledReading, float]],
        reports: dict[int, Drop | None],
        held: dict[tuple[str, int], float],
    ) -> None:
        next_report_check = 0.0
        while not stop.is_set():
            got_event = False
            try:
                while True:
                    kind, payload = events.get(timeout=0 if got_event else 0.05)
                    got_event = True
                    if kind == "disconnect":
                        self._error(f"disconnected: {payload}")
                        log.warning("publisher: disconnected (%s)", payload)
                        return
                    if kind == "ack":
                        outcome = self.acks.on_message(cast(bytes, payload))
                        _forget(unmarked, self.acks.device, outcome.accounted)
                        for report in outcome.reports:
                            if not self._publish_report(client, report, None, reports):
                                return
                    if kind == "puback":
                        mid, reason = cast(tuple[int, ReasonCode], payload)
                        if mid in reports:
                            drop = reports.pop(mid)
                            if drop is not None and not reason.is_failure:
                                self.spool.mark_reported(drop)
                            continue
                        reading = in_flight.pop(mid, None)
                        if reading is None:
                            continue
                        if reason.is_failure:
                            self._refused(reading, str(reason), held)
                        else:
                            self.stats.acknowledged += 1
                            unmarked[(reading.device, reading.seq)] = (reading, time.monotonic())
            except queue.Empty:
                pass
            now = time.monotonic()
            self._mark_sent(unmarked, now)
            self.stats.unmarked = len(unmarked)
            if now >= next_report_check:
                next_report_check = now + REPORT_CHECK_S
                if not self._report_drops(client, reports):
                    return
            for key in [k for k, until in held.items() if until <= now]:
                del held[key]
            room = self.window - len(in_flight)
            if room <= 0:
                continue
            busy = {(r.device, r.seq) for r in in_flight.values()} | held.keys() | unmarked.keys()
            for reading in self.spool.pending(limit=room, exclude=busy):
                info = client.publish(readings_topic(reading.device), reading.envelope, qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    self._error(f"publish: {mqtt.error_string(info.rc)}")
                    return
                in_flight[info.mid] = reading
                self.stats.published += 1
                self.stats.resent += reading.sent

    def _mark_sent(
        self, unmarked: dict[tuple[str, int], tuple[SpooledReading, float]], now: float
    ) -> None:
        """Mark sent, with their resend times, the readings the hub has kept waiting."""
        late = [key for key, (_, at) in unmarked.items() if now - at >= MARK_SENT_AFTER_S]
        if late:
            policy = self.acks.policy
            self.spool.mark_sent(
                [unmarked.pop(key)[0] for key in late],
                resend_after_s=policy.resend_after_s,
                max_resend_after_s=policy.max_resend_after_s,
            )

    def _report_drops(self, client: mqtt.Client, reports: dict[int, Drop | None]) -> bool:
        """Publish a signed report for each dropped range not reported yet."""
        pending = {drop for drop in reports.values() if drop is not None}
        for drop in self.spool.unreported():
            if drop in pending:
                continue
            reason = cast(DropReason, drop.reason)
            envelope = self.acks.report(drop.first, drop.last, reason, drop.at)
            if not self._publish_report(client, envelope, drop, reports):
                return False
        return True

    def _publish_report(
        self,
        client: mqtt.Client,
        envelope: bytes,
        drop: Drop | None,
        reports: dict[int, Drop | None],
    ) -> bool:
        info = client.publish(dropped_topic(self.acks.device), envelope, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self._error(f"publish: {mqtt.error_string(info.rc)}")
            return False
        reports[info.mid] = drop
        self.stats.reports_published += 1
        return True

    def _refused(
        self, reading: SpooledReading, reason: str, held: dict[tuple[str, int], float]
    ) -> None:
        self.stats.refused += 1
        self.stats.refused_reasons[reason] = self.stats.refused_reasons.get(reason, 0) + 1
        held[(reading.device, reading.seq)] = time.monotonic() + self.retry_refused_after_s
        log.error(
            "broker refused reading %s #%d: %s (kept; retried in %.0f s)",
            reading.device,
            reading.seq,
            reason,
            self.retry_refused_after_s,
        )


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _forget(
    unmarked: dict[tuple[str, int], tuple[SpooledReading, float]],
    device: str,
    ranges: list[SeqRange],
) -> None:
    """Drop what the hub has accounted for (the spool has already deleted it)."""
    if unmarked and ranges:
        done = [k for k in unmarked if k[0] == device and any(a <= k[1] <= b for a, b in ranges)]
        for key in done:
            del unmarked[key]
