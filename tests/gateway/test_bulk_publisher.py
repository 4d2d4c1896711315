"""The benches' simulated devices (bench/bulk_publisher.py): the hand-written MQTT 5 packets
they write (tests/support/mqtt_packets.py) against the spec's figures, and the devices against
the real broker: every message arrives as it was given, in each device's order, and a message
the broker refuses fails the run."""

from __future__ import annotations

import itertools
import queue
import time
import uuid
from typing import Any, cast

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.bulk_publisher import BulkDevice, _rounds, publish_bulk
from certs.pki import PKI
from tests.support.mqtt import close, connect, gateway_client
from tests.support.mqtt_packets import parse, publish, utf8_string, varint
from tracehub.config import Settings


@pytest.mark.parametrize(
    ("value", "encoded"),
    [  # the boundaries of OASIS MQTT Version 5.0 §1.5.5, Table 1-1
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
        (268_435_455, b"\xff\xff\xff\x7f"),
    ],
)
def test_remaining_lengths_are_encoded_as_the_spec_gives_them(value: int, encoded: bytes) -> None:
    assert varint(value) == encoded


@given(
    topic=st.text(min_size=1, max_size=80),
    packet_id=st.integers(1, 65535),
    payload=st.binary(max_size=20_000),
    cut=st.integers(0, 40),
)
def test_a_publish_packet_parses_back_and_not_before_it_is_whole(
    topic: str, packet_id: int, payload: bytes, cut: int
) -> None:
    name = topic.encode()
    packet = publish(name, payload, packet_id)
    following = b"\x40\x02\x00\x01"
    parsed = parse(packet + following)
    assert parsed is not None
    first, body, end = parsed
    assert first == 0x32 and end == len(packet)
    assert body == utf8_string(topic) + packet_id.to_bytes(2, "big") + b"\x00" + payload
    assert parse(packet + following, end) == (0x40, b"\x00\x01", len(packet) + 4)
    assert parse(packet[: max(0, len(packet) - 1 - cut)]) is None


@given(lengths=st.lists(st.integers(0, 30), min_size=1, max_size=6), burst=st.integers(1, 8))
def test_rounds_keep_each_devices_order_and_write_at_most_a_burst_in_a_turn(
    lengths: list[int], burst: int
) -> None:
    devices = [
        BulkDevice(f"d{i}", cast(Any, None), [f"d{i}.{n}".encode() for n in range(length)])
        for i, length in enumerate(lengths)
    ]
    order = _rounds(devices, burst)
    for device in devices:
        assert [p for d, p in order if d is device] == device.packets
    # Round r holds each device's messages r*burst .. (r+1)*burst - 1, the rounds in turn,
    # and in a round each device's messages together (one write).
    position = {p: n for device in devices for n, p in enumerate(device.packets)}
    rounds = [position[p] // burst for _, p in order]
    assert rounds == sorted(rounds)
    for _, in_round in itertools.groupby(order, key=lambda item: position[item[1]] // burst):
        turns = [d for d, _ in itertools.groupby(in_round, key=lambda item: item[0])]
        assert len(turns) == len(set(map(id, turns)))


def _listening(settings: Settings) -> tuple[mqtt.Client, queue.Queue[mqtt.MQTTMessage]]:
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    subscribed: queue.Queue[object] = queue.Queue()
    gateway = gateway_client(settings)
    gateway.on_message = lambda c, u, message: received.put(message)
    gateway.on_subscribe = lambda *args: subscribed.put(args)
    assert connect(gateway, settings), "gateway could not connect"
    gateway.subscribe(f"$share/bulk{uuid.uuid4().hex[:6]}/tracehub/v1/devices/+/readings", qos=1)
    subscribed.get(timeout=5)
    return gateway, received


@pytest.mark.integration
@pytest.mark.parametrize(("rate", "burst"), [(None, 1), (None, 7), (600.0, 1)])
def test_every_message_arrives_as_given_in_each_devices_order(
    stack: Settings, rate: float | None, burst: int
) -> None:
    pki = PKI(stack.pki_dir)
    devices = [f"test-{uuid.uuid4().hex[:12]}" for _ in range(3)]
    for device_id in devices:
        pki.enrol_simulated_device(device_id)
    signed = {d: [f"{d}.{i}.".encode() + bytes(range(256)) * 2 for i in range(40)] for d in devices}
    gateway, received = _listening(stack)
    try:
        times = publish_bulk(stack, signed, rate, burst=burst)
        got: dict[str, list[bytes]] = {d: [] for d in devices}
        deadline = time.monotonic() + 20
        while sum(map(len, got.values())) < 120 and time.monotonic() < deadline:
            message = received.get(timeout=max(0.1, deadline - time.monotonic()))
            got[message.topic.split("/")[3]].append(message.payload)
    finally:
        close(gateway)
    assert got == signed
    assert len(times) == 120 and times == sorted(times)
    if rate:  # the k-th message is not written before k / rate
        assert all(t - times[0] >= k / rate - 0.005 for k, t in enumerate(times))
        assert times[-1] - times[0] < 119 / rate + 1.0


@pytest.mark.integration
def test_a_message_the_broker_refuses_fails_the_run(stack: Settings) -> None:
    pki = PKI(stack.pki_dir)
    device_id, other_id = (f"test-{uuid.uuid4().hex[:12]}" for _ in range(2))
    pki.enrol_simulated_device(device_id)
    device = BulkDevice.connect(stack, device_id, [])
    try:
        elsewhere = f"tracehub/v1/devices/{other_id}/readings".encode()
        device.sock.sendall(publish(elsewhere, b"not mine", 1))
        deadline = time.monotonic() + 5
        with pytest.raises(ConnectionError, match=r"refused a message \(0x87\)"):
            while time.monotonic() < deadline:
                device.read_acks()
                time.sleep(0.05)
    finally:
        device.close()
    assert device.acked == 0
