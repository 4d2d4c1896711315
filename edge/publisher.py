"""Publishes spooled readings to the broker with MQTT 5 QoS 1 over mutual TLS.

The spool, not the MQTT client, is the source of truth: every connection starts from a fresh
client with a clean session and sends the oldest unacknowledged readings first, so after a crash
or an outage the order is the spool's order. A reading is deleted from the spool only when its
PUBACK arrives with a success code. A redelivered duplicate is possible (QoS 1 is at least once);
the gateway drops it by (device, seq).
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from edge.spool import Spool, SpooledReading
from tracehub.mqtt import tls_client

log = logging.getLogger(__name__)


def readings_topic(device: str) -> str:
    return f"tracehub/v1/devices/{device}/readings"


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
    acknowledged: int = 0
    refused: int = 0  # PUBACK with a failure reason code: kept in the spool, retried later
    connects: int = 0
    connection_failures: int = 0
    last_error: str = ""
    connected: bool = False
    refused_reasons: dict[str, int] = field(default_factory=dict)


class Publisher:
    """Drains a spool into the broker; `run` blocks until ``stop`` is set."""

    def __init__(
        self,
        spool: Spool,
        broker: BrokerSettings,
        *,
        window: int = 64,
        backoff_s: tuple[float, float] = (0.5, 30.0),
        retry_refused_after_s: float = 30.0,
    ) -> None:
        self.spool = spool
        self.broker = broker
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
            log.info("connected to %s:%d", self.broker.host, self.broker.port)
            self._pump(client, events, stop)
        except queue.Empty:
            self._failed("no CONNACK within 10 s")
        finally:
            self.stats.connected = False
            client.disconnect()
            client.loop_stop()

    def _failed(self, message: str) -> None:
        self.stats.connection_failures += 1
        self.stats.last_error = message
        log.warning("publisher: %s", message)

    def _pump(
        self, client: mqtt.Client, events: queue.Queue[tuple[str, object]], stop: threading.Event
    ) -> None:
        in_flight: dict[int, SpooledReading] = {}
        held: dict[tuple[str, int], float] = {}  # refused by the broker: retry later
        while not stop.is_set():
            acknowledged: list[tuple[str, int]] = []
            try:
                while True:
                    kind, payload = events.get(timeout=0.05 if not acknowledged else 0)
                    if kind == "disconnect":
                        self.stats.last_error = f"disconnected: {payload}"
                        log.warning("publisher: disconnected (%s)", payload)
                        return
                    if kind == "puback":
                        mid, reason = cast(tuple[int, ReasonCode], payload)
                        reading = in_flight.pop(mid, None)
                        if reading is None:
                            continue
                        if reason.is_failure:
                            self._refused(reading, str(reason), held)
                        else:
                            acknowledged.append((reading.device, reading.seq))
            except queue.Empty:
                pass
            if acknowledged:
                self.stats.acknowledged += self.spool.ack(acknowledged)
            now = time.monotonic()
            for key in [k for k, until in held.items() if until <= now]:
                del held[key]
            room = self.window - len(in_flight)
            if room <= 0:
                continue
            busy = {(r.device, r.seq) for r in in_flight.values()} | held.keys()
            for reading in self.spool.pending(limit=room, exclude=busy):
                info = client.publish(readings_topic(reading.device), reading.envelope, qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    self.stats.last_error = f"publish: {mqtt.error_string(info.rc)}"
                    return
                in_flight[info.mid] = reading
                self.stats.published += 1

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
