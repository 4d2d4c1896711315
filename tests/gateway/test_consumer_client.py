"""The gateway's paho client: its burst reads and grouped PUBACKs lean on paho's internals, so
these pin them against the installed paho (the broker side is covered by test_pipeline and the
crash drill)."""

from __future__ import annotations

import socket
import struct

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.consumer import READ_BURST, _GatewayClient


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
