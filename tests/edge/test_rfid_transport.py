"""Transport over a real pseudo-terminal and a real TCP socket; every wait is bounded."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import socket
import threading
import time
import tty
from collections.abc import Iterator
from typing import Any

import pytest

from edge.rfid_reader import (
    FrameDecoder,
    InventoryRoundEnd,
    M100Decoder,
    Message,
    R2000Decoder,
    Rdm6300Decoder,
    ReaderError,
    TagRead,
    m100,
    r2000,
)
from edge.rfid_reader.transport import (
    Backoff,
    ReaderProfile,
    Rs485,
    m100_profile,
    profile_for,
    r2000_profile,
    rdm6300_profile,
    run,
)
from tests.support.rfid_frames import (
    M100_NO_TAG,
    M100_NOTICE,
    M100_STOP,
    R2K_ANTENNA_MISSING_YATTA,
    R2K_INVENTORY_ADR1,
    R2K_ROUND_END_YATTA,
    R2K_TAG_YATTA,
    RDM_GOLDEN,
)

pytestmark = pytest.mark.timeout(60)

WAIT_S = 5.0
FAST_BACKOFF = Backoff(initial_s=0.05, factor=2.0, max_s=0.2)


class Runner:
    """`run()` in a thread, its messages in a queue."""

    def __init__(
        self,
        port: str,
        decoder: FrameDecoder,
        profile: ReaderProfile,
        *,
        on_message: Any = None,
        **kwargs: Any,
    ) -> None:
        self.messages: queue.Queue[Message] = queue.Queue()
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=run,
            args=(port, decoder, on_message or self.messages.put, self.stop),
            kwargs={"profile": profile, "backoff": FAST_BACKOFF, **kwargs},
            daemon=True,
        )
        self.thread.start()

    def next(self, timeout: float = WAIT_S) -> Message:
        return self.messages.get(timeout=timeout)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(WAIT_S)
        assert not self.thread.is_alive(), "run() did not return after stop"


def read_exactly(fd: int, size: int, timeout: float = WAIT_S) -> bytes:
    deadline = time.monotonic() + timeout
    out = b""
    while len(out) < size:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out after {out!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            out += os.read(fd, size - len(out))
    return out


def recv_exactly(conn: socket.socket, size: int) -> bytes:
    conn.settimeout(WAIT_S)
    out = b""
    while len(out) < size:
        chunk = conn.recv(size - len(out))
        assert chunk, "peer closed"
        out += chunk
    return out


def wait_for_log(caplog: pytest.LogCaptureFixture, text: str) -> None:
    """Wait for a transport log line; pyserial flushes input on open, so senders must wait."""
    deadline = time.monotonic() + WAIT_S
    while not any(text in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, f"no log line containing {text!r}"
        time.sleep(0.01)


def write_fragmented(write: Any, data: bytes, size: int = 3) -> None:
    for i in range(0, len(data), size):
        write(data[i : i + size])
        time.sleep(0.002)


@pytest.fixture()
def pty_pair() -> Iterator[tuple[int, int, str]]:
    master, slave = os.openpty()
    # Raw from the start, so nothing written before pyserial configures the port gets echoed.
    tty.setraw(slave)
    yield master, slave, os.ttyname(slave)
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


@pytest.fixture()
def tcp_server() -> Iterator[socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(WAIT_S)
    yield server
    server.close()


def socket_url(server: socket.socket) -> str:
    return f"socket://127.0.0.1:{server.getsockname()[1]}"


# --- pseudo-terminal ----------------------------------------------------------------------------


def test_pty_r2000_round_trip(pty_pair: tuple[int, int, str]) -> None:
    master, _slave, path = pty_pair
    runner = Runner(path, R2000Decoder(), r2000_profile(address=1, repeat=1))
    try:
        assert read_exactly(master, len(R2K_INVENTORY_ADR1)) == R2K_INVENTORY_ADR1
        write_fragmented(lambda b: os.write(master, b), b"\x00junk" + R2K_TAG_YATTA)
        tag = runner.next()
        assert isinstance(tag, TagRead)
        assert tag.epc == bytes.fromhex("300833B2DDD9014000000001")
        # A corrupted frame in between is dropped; the round end behind it arrives.
        bad = R2K_TAG_YATTA[:-1] + b"\x00"
        write_fragmented(lambda b: os.write(master, b), bad + R2K_ROUND_END_YATTA, size=5)
        assert isinstance(runner.next(), InventoryRoundEnd)
        # R2000 needs its inventory command again after every round.
        assert read_exactly(master, len(R2K_INVENTORY_ADR1)) == R2K_INVENTORY_ADR1
    finally:
        runner.close()


def test_pty_rdm6300_byte_by_byte_with_rs485_refused(
    pty_pair: tuple[int, int, str], caplog: pytest.LogCaptureFixture
) -> None:
    master, _slave, path = pty_pair
    caplog.set_level(logging.INFO, logger="edge.rfid_reader.transport")
    runner = Runner(path, Rdm6300Decoder(), rdm6300_profile(rs485=Rs485()))
    try:
        wait_for_log(caplog, "opened")
        write_fragmented(lambda b: os.write(master, b), RDM_GOLDEN * 2, size=1)
        first, second = runner.next(), runner.next()
        assert first == second
        assert isinstance(first, TagRead) and first.epc == bytes.fromhex("62E3086CED")
        assert any("RS485 mode refused" in r.getMessage() for r in caplog.records)
    finally:
        runner.close()


def test_pty_vanishing_gives_up_after_bounded_retries(
    pty_pair: tuple[int, int, str], caplog: pytest.LogCaptureFixture
) -> None:
    master, slave, path = pty_pair
    caplog.set_level(logging.INFO, logger="edge.rfid_reader.transport")
    stop = threading.Event()
    thread = threading.Thread(
        target=run,
        args=(path, Rdm6300Decoder(), lambda m: None, stop),
        kwargs={"backoff": Backoff(initial_s=0.05, max_s=0.1, max_attempts=2)},
        daemon=True,
    )
    thread.start()
    try:
        wait_for_log(caplog, "opened")
        os.write(master, RDM_GOLDEN)
        time.sleep(0.2)
        os.close(master)
        os.close(slave)
        thread.join(WAIT_S)
        assert not thread.is_alive(), "run() should give up once the device is gone"
        messages = [r.getMessage() for r in caplog.records]
        assert any("connection lost" in m for m in messages)
        assert any("giving up" in m for m in messages)
    finally:
        stop.set()
        thread.join(WAIT_S)


def test_missing_device_respects_stop_event() -> None:
    stop = threading.Event()
    thread = threading.Thread(
        target=run,
        args=("/dev/does-not-exist-rfid", Rdm6300Decoder(), lambda m: None, stop),
        kwargs={"backoff": Backoff(initial_s=10.0)},
        daemon=True,
    )
    thread.start()
    time.sleep(0.1)
    stop.set()
    thread.join(WAIT_S)
    assert not thread.is_alive()


# --- TCP (socket://) ----------------------------------------------------------------------------


def test_socket_m100_start_notices_and_stop(tcp_server: socket.socket) -> None:
    runner = Runner(socket_url(tcp_server), M100Decoder(), m100_profile())
    conn, _ = tcp_server.accept()
    with conn:
        start = m100.multi_poll(0xFFFF)
        assert recv_exactly(conn, len(start)) == bytes.fromhex("BB 00 27 00 03 22 FF FF 4A 7E")
        write_fragmented(conn.sendall, M100_NOTICE + b"\x7e\xbb\x00" + M100_NO_TAG, size=4)
        tag, error = runner.next(), runner.next()
        assert isinstance(tag, TagRead) and tag.rssi_dbm == -55.0
        assert isinstance(error, ReaderError) and error.code == 0x15
        runner.close()
        assert recv_exactly(conn, len(M100_STOP)) == M100_STOP


def test_socket_reconnects_after_peer_closes(tcp_server: socket.socket) -> None:
    runner = Runner(socket_url(tcp_server), M100Decoder(), m100_profile())
    try:
        start = m100.multi_poll(0xFFFF)
        first, _ = tcp_server.accept()
        with first:
            assert recv_exactly(first, len(start)) == start
            # Half a frame, then the connection drops: the fragment must not leak into the next.
            first.sendall(M100_NOTICE + M100_NOTICE[:9])
            epc = bytes.fromhex("30751FEB705C5904E3D50D70")
            assert runner.next() == TagRead("m100", epc, None, -55.0, 0x3400, M100_NOTICE)
        second, _ = tcp_server.accept()
        with second:
            assert recv_exactly(second, len(start)) == start  # inventory restarts on reconnect
            second.sendall(M100_NO_TAG)
            no_tag = ReaderError("m100", 0xFF, 0x15, "no_tag_in_inventory_round", M100_NO_TAG)
            assert runner.next() == no_tag
            assert runner.messages.empty()
    finally:
        runner.close()


def test_socket_r2000_idle_resend_and_partial_frame_timeout(tcp_server: socket.socket) -> None:
    profile = r2000_profile(address=1, repeat=1, idle_after_s=0.3)
    runner = Runner(socket_url(tcp_server), R2000Decoder(), profile, partial_frame_timeout_s=0.2)
    try:
        conn, _ = tcp_server.accept()
        with conn:
            assert recv_exactly(conn, 6) == R2K_INVENTORY_ADR1
            # An error frame does not trigger an immediate re-send; silence does.
            conn.sendall(R2K_ANTENNA_MISSING_YATTA)
            assert isinstance(runner.next(), ReaderError)
            assert recv_exactly(conn, 6) == R2K_INVENTORY_ADR1
            # A false header announcing 32 bytes holds the real frame until the line idles.
            conn.sendall(b"\xa0\x20\x01" + R2K_ROUND_END_YATTA)
            assert isinstance(runner.next(timeout=2.0), InventoryRoundEnd)
    finally:
        runner.close()


def test_on_message_exception_does_not_stop_the_loop(
    tcp_server: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge.rfid_reader.transport")
    seen: list[Message] = []

    def flaky(message: Message) -> None:
        seen.append(message)
        if len(seen) == 1:
            raise RuntimeError("consumer bug")

    runner = Runner(socket_url(tcp_server), Rdm6300Decoder(), rdm6300_profile(), on_message=flaky)
    try:
        conn, _ = tcp_server.accept()
        with conn:
            wait_for_log(caplog, "opened")
            conn.sendall(RDM_GOLDEN)
            time.sleep(0.2)
            conn.sendall(RDM_GOLDEN)
            deadline = time.monotonic() + WAIT_S
            while len(seen) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(seen) == 2
            assert any("on_message failed" in r.getMessage() for r in caplog.records)
    finally:
        runner.close()


# --- profiles and backoff -----------------------------------------------------------------------


def test_profiles() -> None:
    assert profile_for("rdm6300").port.baudrate == 9600
    r2k = profile_for("r2000")
    assert r2k.port.baudrate == 115200 and r2k.start_command == r2000.real_time_inventory()
    assert r2k.follow_up is not None
    assert r2k.follow_up(InventoryRoundEnd("r2000", 0, 1, 1, b"")) == r2k.start_command
    assert r2k.follow_up(TagRead("r2000", b"", 0, None, None, b"")) is None
    with_antenna = r2000_profile(antenna=2, address=1)
    assert with_antenna.start_command == r2000.set_work_antenna(2, 1) + r2000.real_time_inventory(
        address=1
    )
    assert profile_for("m100").stop_command == M100_STOP
    for profile in (profile_for(p) for p in ("rdm6300", "r2000", "m100")):
        port = profile.port
        assert (port.bytesize, port.parity, port.stopbits, port.rs485) == (8, "N", 1, None)
    with pytest.raises(ValueError):
        profile_for("nope")


def test_backoff_is_capped() -> None:
    b = Backoff(initial_s=0.5, factor=2.0, max_s=30.0)
    assert [b.delay(n) for n in (1, 2, 3, 6, 7, 10_000)] == [0.5, 1.0, 2.0, 16.0, 30.0, 30.0]
