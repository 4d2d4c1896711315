"""MQTT 5 control packets as bytes, by hand (OASIS MQTT Version 5.0): what a test feeds a
client's parser, and what the benches' simulated devices write (bench/bulk_publisher.py)."""

from __future__ import annotations

import struct

CONNECT, CONNACK, PUBACK, DISCONNECT = 0x10, 0x20, 0x40, 0xE0


def varint(value: int) -> bytes:
    """A Variable Byte Integer (§1.5.5): 7 bits a byte, least significant first."""
    out = bytearray()
    while True:
        value, digit = divmod(value, 128)
        out.append(digit | (0x80 if value else 0))
        if not value:
            return bytes(out)


def utf8_string(text: str) -> bytes:
    """A UTF-8 Encoded String (§1.5.4): two bytes of length, then the bytes."""
    raw = text.encode("utf-8")
    return struct.pack("!H", len(raw)) + raw


def packet(first_byte: int, body: bytes) -> bytes:
    """A control packet: its first byte, the remaining length, the rest (§2.1)."""
    return bytes([first_byte]) + varint(len(body)) + body


def publish(
    topic: bytes, payload: bytes, mid: int, qos: int = 1, properties: bytes = b"\x00"
) -> bytes:
    """A PUBLISH of any size (§3.3): ``topic`` as raw bytes (any bytes, for a test of a
    refused name), ``properties`` the property section, its length included."""
    body = struct.pack("!H", len(topic)) + topic
    body += struct.pack("!H", mid) if qos else b""
    return packet(0x30 | qos << 1, body + properties + payload)


def parse(data: bytes, at: int = 0) -> tuple[int, bytes, int] | None:
    """The packet at ``data[at:]``: its first byte, its body and where the next one starts;
    None if it has not all arrived."""
    if len(data) - at < 2:
        return None
    length, multiplier, i = 0, 1, at + 1
    while True:
        if i >= len(data):
            return None
        digit = data[i]
        length += (digit & 0x7F) * multiplier
        multiplier *= 128
        i += 1
        if not digit & 0x80:
            break
    if len(data) - i < length:
        return None
    return data[at], data[i : i + length], i + length
