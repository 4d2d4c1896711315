"""Property tests: no input makes a decoder raise, grow without bound or lose count of bytes."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.rfid_reader import (
    FrameDecoder,
    M100Decoder,
    Message,
    R2000Decoder,
    Rdm6300Decoder,
)
from tests.support import rfid_frames as golden

DECODERS: dict[str, Callable[[], FrameDecoder]] = {
    "rdm6300": Rdm6300Decoder,
    "r2000": R2000Decoder,
    "m100": M100Decoder,
}

GOLDEN_FRAMES: dict[str, list[bytes]] = {
    "rdm6300": [golden.RDM_GOLDEN],
    "r2000": [
        golden.R2K_TAG_ACTIVIOTY,
        golden.R2K_TAG_YATTA,
        golden.R2K_ROUND_END_YATTA,
        golden.R2K_ANTENNA_MISSING_YATTA,
        golden.R2K_FIRMWARE_REPLY,
        golden.R2K_SET_ANTENNA_REPLY,
        golden.R2K_SESSION_TAG,
        golden.R2K_SESSION_ROUND_END,
    ],
    "m100": [
        golden.M100_NOTICE,
        golden.M100_NO_TAG,
        golden.M100_STOP_OK,
        golden.M100_HW_VERSION,
    ],
}

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

protocols = st.sampled_from(sorted(DECODERS))
chunk_sizes = st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=16)


def feed_in_chunks(decoder: FrameDecoder, data: bytes, sizes: list[int]) -> list[Message]:
    """Feed `data` in chunks of the given sizes (cycled), checking invariants after each feed."""
    out: list[Message] = []
    pos, i = 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        out.extend(decoder.feed(data[pos : pos + size]))
        pos += size
        i += 1
        check_invariants(decoder, out)
    return out


def check_invariants(decoder: FrameDecoder, messages: list[Message]) -> None:
    s = decoder.stats
    assert s.bytes_in == s.junk_bytes + s.bytes_framed + decoder.buffered
    assert s.frames_ok == len(messages)
    assert decoder.buffered < decoder.max_frame
    counters = (s.bad_checksum, s.bad_length, s.unknown_type, s.bad_crc, s.junk_bytes)
    assert all(c >= 0 for c in counters)


@st.composite
def mutated_stream(draw: st.DrawFn, protocol: str) -> bytes:
    """Golden frames, some damaged (bit flip, deletion, insertion, truncation), glued with junk."""
    frames = draw(st.lists(st.sampled_from(GOLDEN_FRAMES[protocol]), min_size=1, max_size=8))
    parts: list[bytes] = []
    for frame in frames:
        buf = bytearray(frame)
        action = draw(st.sampled_from(["keep", "flip", "delete", "insert", "truncate"]))
        index = draw(st.integers(min_value=0, max_value=len(buf) - 1))
        if action == "flip":
            buf[index] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif action == "delete":
            del buf[index]
        elif action == "insert":
            buf.insert(index, draw(st.integers(min_value=0, max_value=255)))
        elif action == "truncate":
            del buf[index:]
        parts.append(draw(st.binary(max_size=12)))
        parts.append(bytes(buf))
    return b"".join(parts)


@FUZZ
@given(protocol=protocols, data=st.binary(max_size=4096), sizes=chunk_sizes)
def test_random_bytes_never_raise(protocol: str, data: bytes, sizes: list[int]) -> None:
    decoder = DECODERS[protocol]()
    messages = feed_in_chunks(decoder, data, sizes)
    while decoder.buffered:
        messages.extend(decoder.discard_partial())
        check_invariants(decoder, messages)


@FUZZ
@given(st.data(), protocols, chunk_sizes)
def test_mutated_golden_frames_never_raise(
    data: st.DataObject, protocol: str, sizes: list[int]
) -> None:
    stream = data.draw(mutated_stream(protocol))
    decoder = DECODERS[protocol]()
    messages = feed_in_chunks(decoder, stream, sizes)
    while decoder.buffered:
        messages.extend(decoder.discard_partial())
        check_invariants(decoder, messages)
    assert decoder.stats.bytes_in == len(stream)
    assert decoder.stats.junk_bytes + decoder.stats.bytes_framed == len(stream)


@FUZZ
@given(st.data(), protocols, chunk_sizes)
def test_chunking_does_not_change_the_outcome(
    data: st.DataObject, protocol: str, sizes: list[int]
) -> None:
    stream = data.draw(mutated_stream(protocol))
    whole = DECODERS[protocol]()
    expected = whole.feed(stream)
    chunked = DECODERS[protocol]()
    assert feed_in_chunks(chunked, stream, sizes) == expected
    assert chunked.stats == whole.stats


@FUZZ
@given(st.data(), protocols, chunk_sizes)
def test_golden_frames_survive_header_free_junk(
    data: st.DataObject, protocol: str, sizes: list[int]
) -> None:
    header = DECODERS[protocol]().header
    junk = st.binary(max_size=40).map(lambda b: b.replace(bytes([header]), b""))
    frames = data.draw(st.lists(st.sampled_from(GOLDEN_FRAMES[protocol]), max_size=10))
    stream = b"".join(data.draw(junk) + frame for frame in frames) + data.draw(junk)
    expected = [m for frame in frames for m in DECODERS[protocol]().feed(frame)]
    decoder = DECODERS[protocol]()
    assert feed_in_chunks(decoder, stream, sizes) == expected
    assert decoder.stats.frames_ok == len(frames)
    assert decoder.buffered == 0


@settings(max_examples=10, deadline=None)
@given(protocol=protocols, seed=st.binary(min_size=64, max_size=64))
def test_large_noise_keeps_buffer_bounded(protocol: str, seed: bytes) -> None:
    decoder = DECODERS[protocol]()
    # 256 KiB of noise built from the seed; fed in 4 KiB reads like a busy serial port.
    noise = bytes(b ^ (i * 131 & 0xFF) for i, b in enumerate(seed * 4096))
    for pos in range(0, len(noise), 4096):
        decoder.feed(noise[pos : pos + 4096])
        assert decoder.buffered < decoder.max_frame
    s = decoder.stats
    assert s.bytes_in == len(noise) == s.junk_bytes + s.bytes_framed + decoder.buffered
