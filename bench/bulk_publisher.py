"""Simulated devices that cost the benches' two cores little: pre-encoded MQTT 5 packets.

The pipeline benches run every component on the same two cores, and the devices too. One
`mosquitto_pub -l` per device spent 16-46 µs of CPU a message in the flat-out runs of
2026-12-05 (a line read from its pipe, a TLS record and a `write` per message, the bench's
own line written down the pipe included): up to a fifth of what a reading costs the pipeline,
taken from it. Here every device's PUBLISH packets are encoded before the clock starts, then
written over the device's own mutually authenticated TLS connection from one thread: 9-13 µs a
message in the same runs, TLS, the writes and the acknowledgements read included.

The packets are written by hand (a few lines of MQTT 5, tests/support/mqtt_packets.py) because
a client library's per-message work is exactly what this avoids (decision 0043). Every PUBLISH is
QoS 1 and every PUBACK is read and its reason code checked: a message the broker refused (not
authorised, quota exceeded) fails the run instead of going missing from it.
"""

from __future__ import annotations

import random
import selectors
import socket
import ssl
import struct
import time
from dataclasses import dataclass, field

from certs.pki import PKI
from tests.support.mqtt_packets import (
    CONNACK,
    CONNECT,
    DISCONNECT,
    PUBACK,
    packet,
    parse,
    publish,
    utf8_string,
)
from tracehub.config import Settings

__all__ = ["BulkDevice", "publish_bulk"]

#: Messages each device writes in one go when flat out, by default: one, as a device publishing
#: its readings as they come does.
FLAT_OUT_SLICE = 1
#: ... and as an edge agent flushing its spool after an outage does: Mosquitto handles the
#: messages one connection's write holds one after another and deals a shared subscription's
#: messages to its members in turn, so such a burst alternates between two gateways, and every
#: chain link crosses from one to the other (the dearest case for the store).
BURST_SLICE = 50
#: At a steady rate, the shortest wait between writes: what falls due meanwhile goes out
#: together. A wake-up per message would cost tens of µs of CPU on a virtual machine; a message
#: is stamped when it is written, so the wait changes when it goes out (a few ms late at most),
#: never the latency measured for it.
RATE_WAKE_S = 0.004
#: How often the acknowledgements are read while writing: each look costs a system call per
#: connection, and they wait in the socket's buffer meanwhile.
ACK_READ_INTERVAL_S = 0.02
#: A write or read that waits longer than this fails the run instead of hanging it.
IO_TIMEOUT_S = 30.0
_MAX_PACKET_ID = 65535


@dataclass
class BulkDevice:
    """One device's MQTT 5 connection with its own certificate, and its acknowledgements."""

    device_id: str
    sock: ssl.SSLSocket
    packets: list[bytes] = field(default_factory=list)
    acked: int = 0
    _unread: bytes = b""

    @classmethod
    def connect(cls, settings: Settings, device_id: str, envelopes: list[bytes]) -> BulkDevice:
        """Connect and have the broker accept the device; its readings encoded, unsent."""
        pki = PKI(settings.pki_dir)
        context = ssl.create_default_context(cafile=str(pki.ca_bundle_path))
        context.load_cert_chain(*pki.device_paths(device_id))
        raw = socket.create_connection(
            (settings.mqtt_host, settings.mqtt_tls_port), timeout=IO_TIMEOUT_S
        )
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock = context.wrap_socket(raw, server_hostname=settings.mqtt_host)
        # Protocol "MQTT" level 5, clean start, keep-alive 60 s, no properties, client id.
        connect = utf8_string("MQTT") + struct.pack("!BBHB", 5, 0x02, 60, 0)
        sock.sendall(packet(CONNECT, connect + utf8_string(device_id)))
        device = cls(device_id, sock)
        first, body = device._read_packet()
        if first != CONNACK or len(body) < 2 or body[1] != 0:
            sock.close()
            raise ConnectionError(f"{device_id}: the broker refused the connection: {body!r}")
        topic = f"tracehub/v1/devices/{device_id}/readings".encode()
        # Identifiers 1-65535 in turn: one is reused only after 65,534 others were sent, and
        # the broker acknowledges a QoS 1 message as soon as it has it.
        device.packets = [
            publish(topic, envelope, i % _MAX_PACKET_ID + 1) for i, envelope in enumerate(envelopes)
        ]
        return device

    def read_acks(self) -> None:
        """Read the acknowledgements that have arrived, without waiting for more."""
        self.sock.settimeout(0)
        try:
            while True:
                try:
                    self._receive()
                except (ssl.SSLWantReadError, BlockingIOError):
                    break
        finally:
            self.sock.settimeout(IO_TIMEOUT_S)
        while (taken := self._take_packet()) is not None:
            self._count_ack(*taken)

    def close(self) -> None:
        """Say goodbye (a courtesy: the session is clean either way) and close."""
        try:
            self.sock.sendall(packet(DISCONNECT, b""))
        except OSError:
            pass  # the connection is already gone
        finally:
            self.sock.close()

    def _count_ack(self, first: int, body: bytes) -> None:
        if first != PUBACK:
            raise ConnectionError(f"{self.device_id}: expected a PUBACK, got packet {first:#x}")
        # Two bytes: success with the reason code left out (§3.4.2.1).
        if len(body) > 2 and body[2] >= 0x80:
            raise ConnectionError(f"{self.device_id}: the broker refused a message ({body[2]:#x})")
        self.acked += 1

    def _take_packet(self) -> tuple[int, bytes] | None:
        """The first whole packet read so far (first byte, body), taken off what is unread."""
        parsed = parse(self._unread)
        if parsed is None:
            return None
        first, body, end = parsed
        self._unread = self._unread[end:]
        return first, body

    def _read_packet(self) -> tuple[int, bytes]:
        while (taken := self._take_packet()) is None:
            self._receive()
        return taken

    def _receive(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"{self.device_id}: the broker closed the connection")
        self._unread += chunk


def publish_bulk(
    settings: Settings,
    signed: dict[str, list[bytes]],
    rate: float | None = None,
    *,
    burst: int = FLAT_OUT_SLICE,
) -> list[float]:
    """Publish every envelope, the devices taking turns (:func:`_rounds`), flat out or at
    ``rate`` messages/s in all; the time each message was written to its connection, in order.
    Flat out, each device writes ``burst`` messages at a time (its turn comes round after each
    write). Returns once the broker has acknowledged every one."""
    devices: list[BulkDevice] = []
    try:
        for device_id, envelopes in signed.items():
            devices.append(BulkDevice.connect(settings, device_id, envelopes))
    except BaseException:
        for device in devices:  # those connected before one was refused
            device.close()
        raise
    order = _rounds(devices, burst)
    total = len(order)
    times: list[float] = []
    watcher = selectors.DefaultSelector()
    for device in devices:
        watcher.register(device.sock, selectors.EVENT_READ, device)
    try:
        first = acks_due = time.monotonic()
        sent = 0
        while sent < total:
            if rate:
                due = min(total, int((time.monotonic() - first) * rate) + 1)
                if due <= sent:  # the next one is not due yet: wait for it, and what follows
                    wait = (sent + 1) / rate - (time.monotonic() - first)
                    time.sleep(max(RATE_WAKE_S, wait))
                    continue
            else:
                due = min(total, sent + burst * len(devices))
            # Stamped before the write: a message's time can only be early by the slice's
            # write, which can only make a latency look longer.
            times.extend([time.monotonic()] * (due - sent))
            _write(order[sent:due])
            sent = due
            if time.monotonic() >= acks_due:
                for key, _ in watcher.select(0):
                    key.data.read_acks()
                acks_due = time.monotonic() + ACK_READ_INTERVAL_S
        deadline = time.monotonic() + 120
        while any(d.acked < len(d.packets) for d in devices):
            if time.monotonic() > deadline:
                missing = {d.device_id: len(d.packets) - d.acked for d in devices}
                raise TimeoutError(f"unacknowledged after 120 s: {missing}")
            for key, _ in watcher.select(1):
                key.data.read_acks()
    finally:
        watcher.close()
        for device in devices:
            device.close()
    return times


def _rounds(devices: list[BulkDevice], burst: int) -> list[tuple[BulkDevice, bytes]]:
    """Each device's messages ``burst`` at a time in rounds, the devices in a fresh (seeded)
    order each round: independent devices keep no fixed turn, and the broker deals a shared
    subscription's messages in turn, so a fixed turn could pin each device to one gateway."""
    shuffler = random.Random(1)
    longest = max((len(d.packets) for d in devices), default=0)
    order: list[tuple[BulkDevice, bytes]] = []
    for start in range(0, longest, burst):
        turn = [d for d in devices if start < len(d.packets)]
        shuffler.shuffle(turn)
        order.extend((d, p) for d in turn for p in d.packets[start : start + burst])
    return order


def _write(messages: list[tuple[BulkDevice, bytes]]) -> None:
    """Each device's messages of this slice in one write, in the order the slice holds them."""
    by_device: dict[str, tuple[BulkDevice, list[bytes]]] = {}
    for device, encoded in messages:
        by_device.setdefault(device.device_id, (device, []))[1].append(encoded)
    for device, packets in by_device.values():
        device.sock.sendall(b"".join(packets))
