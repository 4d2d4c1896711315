"""The gateway's paho client: its burst reads, grouped PUBACKs and short way for PUBLISH lean on
paho's internals, so these pin them against the installed paho (the broker side is covered by
test_pipeline and the crash drill)."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.consumer import READ_AHEAD, READ_BURST, _GatewayClient
from tests.support.mqtt_packets import publish, varint


def _client() -> _GatewayClient:
    client = _GatewayClient(CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv5)
    client.manual_ack_set(True)
    return client


def _queued(client: mqtt.Client) -> list[bytes]:
    packets = [bytes(p["packet"]) for p in client._out_packet]
    client._out_packet.clear()
    return packets


def test_ack_many_writes_the_same_pubacks_as_paho_in_one_packet() -> None:
    mids = [1, 2, 300, 65535]
    client = _client()
    for mid in mids:
        client.ack(mid, 1)
    one_by_one = _queued(client)
    client.ack_many(mids)
    grouped = _queued(client)
    assert len(one_by_one) == len(mids)
    assert grouped == [b"".join(one_by_one)]
    assert grouped[0][:4] == bytes([0x40, 2, 0, 1])  # PUBACK, length 2, mid 1


def test_ack_many_of_nothing_queues_nothing() -> None:
    client = _client()
    client.ack_many([])
    assert _queued(client) == []


def _publish_packet(topic: str, payload: bytes, mid: int) -> bytes:
    name = topic.encode()
    body = struct.pack("!H", len(name)) + name + struct.pack("!H", mid) + b"\x00" + payload
    assert len(body) < 128  # one byte of remaining length
    return bytes([0x32, len(body)]) + body  # PUBLISH, QoS 1


def test_one_read_takes_every_packet_waiting_then_stops() -> None:
    client = _client()
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    client._sock = ours  # type: ignore[assignment]
    got: list[tuple[str, bytes, int]] = []
    client.on_message = lambda c, u, m: got.append((m.topic, bytes(m.payload), m.mid))
    sent = [("tracehub/v1/devices/d/readings", f"r{i}".encode(), i + 1) for i in range(5)]
    theirs.sendall(b"".join(_publish_packet(*s) for s in sent))
    try:
        assert client.loop_read() == mqtt.MQTT_ERR_SUCCESS
        assert got == sent  # paho alone reads one packet per call
        assert client.loop_read() == mqtt.MQTT_ERR_SUCCESS  # nothing waiting: returns at once
        assert got == sent
        assert _queued(client) == []  # manual acknowledgement: nothing acked by paho
    finally:
        client._sock = None
        ours.close()
        theirs.close()
    assert len(sent) < READ_BURST


@contextmanager
def _fed(client: _GatewayClient, data: bytes) -> Iterator[None]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    client._sock = ours  # type: ignore[assignment]
    theirs.sendall(data)
    try:
        yield
    finally:
        client._sock = None
        ours.close()
        theirs.close()


Seen = list[tuple[str, str, bytes, int, int]]


def _read(data: bytes, *, short: bool) -> tuple[object, Seen]:
    """What one burst read of ``data`` returns and hands over, with or without the short way."""
    client = _client()
    seen: Seen = []
    # The raw topic: paho's ``topic`` property raises on one that is not UTF-8.
    client.on_message = lambda c, u, m: seen.append(
        ("paho", m._topic.decode(errors="replace"), bytes(m.payload), m.mid, m.qos)
    )
    if short:
        client.on_delivery = lambda t, p, mid, qos: seen.append(("short", t, p, mid, qos))
    with _fed(client, data):
        rc = client.loop_read()
    return rc, seen


COMMON = [
    (b"tracehub/v1/devices/d-1/readings", b'{"a":1}' * 40, 7, 1),  # two bytes of length
    (b"tracehub/v1/devices/d-1/readings", b"", 65535, 1),
    (b"tracehub/v1/devices/\xc3\xa9t\xc3\xa9/dropped", b"x" * 20_000, 1, 1),  # 3-byte length
    (b"tracehub/v1/devices/d-2/readings", b"qos 0", 0, 0),
]


def test_the_short_way_hands_over_what_paho_would() -> None:
    data = b"".join(publish(*packet) for packet in COMMON)
    rc_short, short = _read(data, short=True)
    rc_paho, paho = _read(data, short=False)
    assert rc_short == rc_paho == mqtt.MQTT_ERR_SUCCESS
    assert [s[0] for s in short] == ["short"] * len(COMMON)
    assert [s[1:] for s in short] == [p[1:] for p in paho]
    assert all(type(s[2]) is bytes for s in short)


@pytest.mark.parametrize(
    "packet",
    [
        # A property (payload format indicator = 1): paho parses properties.
        publish(b"tracehub/v1/devices/d/readings", b"p", 3, properties=b"\x02\x01\x01"),
        # A topic alias with an empty topic name.
        publish(b"", b"p", 3, properties=b"\x03\x23\x00\x01"),
        # QoS 2: paho's own exchange (PUBREC, PUBREL, PUBCOMP).
        publish(b"tracehub/v1/devices/d/readings", b"p", 3, qos=2),
        # A topic that is not UTF-8.
        publish(b"tracehub/v1/devices/\xff/readings", b"p", 3),
    ],
    ids=["properties", "topic-alias", "qos2", "not-utf8"],
)
def test_anything_else_takes_paho_s_way(packet: bytes) -> None:
    rc_short, short = _read(packet, short=True)
    rc_paho, paho = _read(packet, short=False)
    assert rc_short == rc_paho
    assert short == paho
    assert all(s[0] == "paho" for s in short)


def test_a_truncated_publish_is_refused_as_paho_refuses_it() -> None:
    topic = b"tracehub/v1/devices/d/readings"
    body = struct.pack("!H", len(topic) + 10) + topic  # topic length beyond the packet
    packet = bytes([0x32]) + varint(len(body)) + body
    rc_short, short = _read(packet, short=True)
    rc_paho, paho = _read(packet, short=False)
    assert rc_short == rc_paho == mqtt.MQTT_ERR_PROTOCOL
    assert short == paho == []


def test_a_packet_split_across_reads_is_delivered_once_whole() -> None:
    client = _client()
    got: list[tuple[str, bytes, int, int]] = []
    client.on_delivery = lambda t, p, mid, qos: got.append((t, p, mid, qos))
    packet = publish(b"tracehub/v1/devices/d/readings", b"p" * 3000, 9)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    client._sock = ours  # type: ignore[assignment]
    try:
        theirs.sendall(packet[:1500])
        assert client.loop_read() == mqtt.MQTT_ERR_SUCCESS
        assert got == []
        theirs.sendall(packet[1500:])
        assert client.loop_read() == mqtt.MQTT_ERR_SUCCESS
        assert got == [("tracehub/v1/devices/d/readings", b"p" * 3000, 9, 1)]
    finally:
        client._sock = None
        ours.close()
        theirs.close()


def test_one_read_leaves_nothing_in_the_read_ahead_that_select_cannot_see() -> None:
    # More packets than a burst, all in one read from the socket: the loop must not stop at
    # READ_BURST with the rest in memory, where select() would never wake it for them.
    count = READ_BURST + 50
    data = b"".join(publish(b"t/d", b"x", i + 1) for i in range(count))
    assert len(data) < READ_AHEAD
    rc, seen = _read(data, short=True)
    assert rc == mqtt.MQTT_ERR_SUCCESS
    assert [s[3] for s in seen] == list(range(1, count + 1))


def test_a_closed_connection_forgets_what_it_had_read_ahead() -> None:
    client = _client()
    client._read_ahead, client._read_at = b"stale bytes of the old connection", 3
    client._sock_close()
    assert (client._read_ahead, client._read_at) == (b"", 0)
