"""The gateway's MQTT side: a shared subscription with manual acknowledgements.

Messages are acknowledged only after the store has committed them (or their quarantine entry),
so a gateway that dies holding messages gets them redelivered; the store's uniqueness on
(device, seq) makes the redelivery harmless. Several gateway processes with the same group
split the load (MQTT 5 shared subscription). The same client publishes the hub's end-to-end
acknowledgements to the devices (gateway.acks); `leave` ends a departed member's session.
"""

from __future__ import annotations

import logging
import queue
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import setproctitle
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as _Properties
from paho.mqtt.reasoncodes import ReasonCode

from certs.pki import PKI
from tracehub.config import Settings
from tracehub.mqtt import tls_client
from tracehub.pki_names import service_username

log = logging.getLogger(__name__)
# paho declares no types for its MQTT 5 properties class.
Properties: Any = _Properties

READINGS = "tracehub/v1/devices/+/readings"
# Packets read per wake-up of the network loop; paho's own loop reads one (then a select()).
READ_BURST = 256
# Bytes taken from the socket at once (a TLS record holds at most 16 KiB of them).
READ_AHEAD = 64 * 1024
DROPPED = "tracehub/v1/devices/+/dropped"


@dataclass(frozen=True)
class ConsumerSettings:
    host: str
    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path
    client_id: str
    group: str = "ingest"
    # How long the broker keeps this member's session (and queues its share) while it is away:
    # long enough for a restart, short enough that a member that never comes back stops taking
    # a share soon (docs/acknowledgement.md, "Scaling a gateway group down").
    session_expiry_s: int = 300
    receive_maximum: int = 4000

    @classmethod
    def for_service(cls, settings: Settings, service: str) -> ConsumerSettings:
        """Broker identity ``service`` of the PKI at ``settings``, on the settings' broker; the
        other fields at their defaults (``dataclasses.replace`` them)."""
        pki = PKI(settings.pki_dir)
        cert, key, _ = pki.service_paths(service)
        return cls(
            settings.mqtt_host,
            settings.mqtt_tls_port,
            pki.ca_bundle_path,
            cert,
            key,
            service_username(service),
        )


@dataclass(frozen=True)
class Delivery:
    """One message as the broker delivered it; `ack` once it is durably handled."""

    topic: str
    payload: bytes
    mid: int
    qos: int


class _GatewayClient(mqtt.Client):
    """paho's client, with the two per-message costs of a busy consumer taken out.

    - Reading: paho's loop reads one packet per ``select()`` when it has nothing in flight, so a
      flood of PUBLISH packets costs a system call and a pass of the loop each. This reads up to
      ``READ_BURST`` packets per wake-up, stopping as soon as the socket has nothing more; each
      packet is handled by paho exactly as before. paho reads a packet in three or more reads
      of the socket; these are served from one read of up to ``READ_AHEAD`` bytes, which the
      loop always empties before it waits in ``select()`` again.
    - Acknowledging: paho queues each PUBACK as a packet of its own, so a group of 2,000 costs
      2,000 wake-ups of the loop and 2,000 TLS records. ``ack_many`` queues the group's PUBACKs
      as one write: the same packets (MQTT control packets may share a TCP segment), in order.

    - Handing over: for each PUBLISH paho builds a message object and its MQTT 5 properties,
      logs it and walks its topic-filter tree for callbacks, all in Python: about as much CPU
      as verifying the reading's signature. A QoS 0 or 1 PUBLISH without properties (what
      devices send) goes straight to ``on_delivery`` instead; anything else (QoS 2,
      properties, a malformed or non-UTF-8 topic, no ``on_delivery``) takes paho's way.

    All three lean on paho's internals (``_packet_read``, ``_sock_recv``, ``_sock_close``,
    ``_packet_queue``, ``_in_packet``, ``_handle_publish``), which
    tests/gateway/test_consumer_client.py pins against the installed paho.
    """

    #: Called with (topic, payload, mid, qos) for each PUBLISH taken the short way.
    on_delivery: Callable[[str, bytes, int, int], None] | None = None
    # What the last read from the socket brought that paho's reader has not taken yet.
    _read_ahead: bytes = b""
    _read_at: int = 0

    def _handle_publish(self) -> MQTTErrorCode:
        deliver = self.on_delivery
        header: int = self._in_packet["command"]
        packet: bytes | bytearray = self._in_packet["packet"]  # paho reads into a bytearray
        qos = (header & 0x06) >> 1
        if deliver is None or qos == 2 or self._protocol != mqtt.MQTTv5:
            return super()._handle_publish()
        topic_end = 2 + int.from_bytes(packet[:2], "big")
        mid, properties_at = 0, topic_end
        if qos:
            mid, properties_at = (
                int.from_bytes(packet[topic_end : topic_end + 2], "big"),
                topic_end + 2,
            )
        # One zero byte: an empty property list. Anything else (properties, a topic alias, a
        # packet too short) is paho's to parse and, if malformed, to refuse.
        if topic_end == 2 or packet[properties_at : properties_at + 1] != b"\x00":
            return super()._handle_publish()
        try:
            topic = packet[2:topic_end].decode("utf-8")
        except UnicodeDecodeError:
            return super()._handle_publish()
        deliver(topic, bytes(memoryview(packet)[properties_at + 1 :]), mid, qos)
        if qos == 1 and not self._manual_ack:
            return self._send_puback(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        packets = 0
        while True:
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            packets += 1
            # Never leave bytes in the read-ahead: the loop's select() cannot see them.
            if self._read_at < len(self._read_ahead):
                continue
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN or packets >= max(max_packets, READ_BURST):
                break
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _sock_recv(self, bufsize: int) -> bytes:
        # paho asks for a packet's first byte, then each byte of its length, then the rest: three
        # or more reads of the TLS socket a message, each releasing and taking back the GIL.
        # One read of up to READ_AHEAD bytes serves them all from memory.
        if self._read_at >= len(self._read_ahead):
            self._read_ahead, self._read_at = super()._sock_recv(READ_AHEAD), 0
        start = self._read_at
        self._read_at = min(start + bufsize, len(self._read_ahead))
        return self._read_ahead[start : self._read_at]

    def _sock_close(self) -> None:
        self._read_ahead, self._read_at = b"", 0  # a new connection starts with nothing read
        super()._sock_close()

    def ack_many(self, mids: Sequence[int]) -> None:
        """PUBACK (success) for each QoS 1 message id in ``mids``, as one write."""
        if mids:
            packet = b"".join(struct.pack("!BBH", mqtt.PUBACK, 2, mid) for mid in mids)
            self._packet_queue(mqtt.PUBACK, packet, mids[-1], 1)


class Consumer:
    """Receives deliveries into a queue; the caller acks them when stored."""

    def __init__(self, settings: ConsumerSettings) -> None:
        self.settings = settings
        # SimpleQueue: a C queue, some 2 µs per message cheaper than queue.Queue's locks.
        self.deliveries: queue.SimpleQueue[Delivery] = queue.SimpleQueue()
        self.connected = threading.Event()
        client = tls_client(
            settings.client_id,
            ca_file=settings.ca_file,
            cert_file=settings.cert_file,
            key_file=settings.key_file,
            client_class=_GatewayClient,
        )
        assert isinstance(client, _GatewayClient)
        self._client = client
        self._client.manual_ack_set(True)
        self._client.reconnect_delay_set(1, 10)
        # Acknowledgements to devices: one per device per interval, so many at once.
        self._client.max_inflight_messages_set(1000)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_delivery = self._on_delivery

    def start(self) -> None:
        # A persistent session: the subscription and every unacknowledged message outlive a
        # gateway crash or a broker restart.
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.settings.session_expiry_s
        properties.ReceiveMaximum = self.settings.receive_maximum
        self._client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=30,
            clean_start=False,
            properties=properties,
        )
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        self._client.ack_many([d.mid for d in deliveries if d.qos == 1])
        for delivery in deliveries:
            if delivery.qos == 2:  # the subscriptions are QoS 1: only a broker's mistake
                self._client.ack(delivery.mid, delivery.qos)

    def publish(self, topic: str, payload: bytes) -> bool:
        """Publish with QoS 1 (queued by the client while disconnected); False if refused."""
        info = self._client.publish(topic, payload, qos=1)
        return info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN)

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: object,
        reason: object,
        properties: object,
    ) -> None:
        setproctitle.setthreadtitle("mqtt")  # paho's network thread, for the OS (top -H)
        if getattr(reason, "is_failure", True):
            log.error("gateway: broker refused the connection: %s", reason)
            return
        group = self.settings.group
        client.subscribe([(f"$share/{group}/{READINGS}", 1), (f"$share/{group}/{DROPPED}", 1)])
        self.connected.set()
        log.info("gateway: connected, subscribing as group %s", self.settings.group)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reasons: list[ReasonCode],
        properties: object,
    ) -> None:
        # Logged on the broker's SUBACK: from here on the broker holds readings for the group
        # (operators and tests wait for this line before publishing into a fresh group).
        refused = [str(reason) for reason in reasons if reason.is_failure]
        if refused:
            log.error("gateway: the broker refused the subscription: %s", ", ".join(refused))
            return
        log.info("gateway: subscribed as group %s", self.settings.group)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: object,
        reason: object,
        properties: object,
    ) -> None:
        self.connected.clear()
        log.warning("gateway: disconnected (%s)", reason)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        payload = bytes(message.payload)
        self.deliveries.put(Delivery(message.topic, payload, message.mid, message.qos))

    def _on_delivery(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        self.deliveries.put(Delivery(topic, payload, mid, qos))


def leave(settings: ConsumerSettings, timeout: float = 10) -> bool:
    """End the broker session of the group member ``settings.client_id``, which must not be
    running: connect with its client id, a clean start and no session expiry, and disconnect.
    The broker stops giving it a share; what it had queued there is discarded (the devices hold
    it until the hub acknowledges it, and send it again). True if the broker accepted."""
    client = tls_client(
        settings.client_id,
        ca_file=settings.ca_file,
        cert_file=settings.cert_file,
        key_file=settings.key_file,
    )
    accepted = threading.Event()

    def on_connect(
        c: mqtt.Client, userdata: object, flags: object, reason: Any, props: object
    ) -> None:
        if not reason.is_failure:
            accepted.set()

    client.on_connect = on_connect
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 0
    client.connect(
        settings.host, settings.port, keepalive=30, clean_start=True, properties=properties
    )
    client.loop_start()
    try:
        return accepted.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()


def drain(
    deliveries: queue.Queue[Delivery] | queue.SimpleQueue[Delivery],
    limit: int,
    wait_s: float,
    linger_s: float = 0.0,
) -> list[Delivery]:
    """Up to `limit` deliveries: waits up to `wait_s` for the first, then gathers more for up
    to `linger_s` after it (0: only what is already there).

    Lingering trades a little latency for bigger groups at moderate rates: a group costs one
    transaction and one commit whatever its size, so many small groups cost more CPU per
    reading than a few large ones, and a gateway that falls behind never catches up.
    """
    try:
        batch = [deliveries.get(timeout=wait_s)]
    except queue.Empty:
        return []
    linger_until = time.monotonic() + linger_s
    while len(batch) < limit:
        try:
            batch.append(deliveries.get_nowait())
        except queue.Empty:
            remaining = linger_until - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(deliveries.get(timeout=remaining))
            except queue.Empty:
                break
    return batch


AlertHook = Callable[[Sequence[dict[str, object]]], None]
"""Offered every batch of newly stored readings (rows as dicts); must be cheap and not raise."""
