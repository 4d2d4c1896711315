"""Serial and TCP transport: open a reader's port and pump its bytes through a decoder.

Ports are opened with pyserial's `serial_for_url`, so a device path (`/dev/ttyUSB0`, a pty) and a
TCP-attached reader (`socket://10.0.0.7:4001`) work the same way. `run()` is the blocking loop an
edge agent runs in a thread: it starts the reader's inventory, hands every decoded message to a
callback, re-sends commands the protocol needs (R2000 wants its inventory command again after each
round), and reopens the port with capped exponential backoff when it vanishes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import serial  # type: ignore[import-untyped]
import serial.rs485  # type: ignore[import-untyped]

from edge.rfid_reader import m100, r2000, rdm6300
from edge.rfid_reader.base import FrameDecoder, InventoryRoundEnd, Message

__all__ = [
    "Backoff",
    "PortSettings",
    "ReaderProfile",
    "Rs485",
    "SerialPort",
    "m100_profile",
    "open_port",
    "profile_for",
    "r2000_profile",
    "rdm6300_profile",
    "run",
]

log = logging.getLogger(__name__)

READ_CHUNK = 4096
WRITE_TIMEOUT_S = 1.0


class SerialPort(Protocol):
    """The part of a pyserial port the loop uses."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Rs485:
    """Kernel RS485 direction control (TIOCSRS485); only for UARTs that support it."""

    rts_level_for_tx: bool = True
    rts_level_for_rx: bool = False
    loopback: bool = False
    delay_before_tx: float | None = None
    delay_before_rx: float | None = None


@dataclass(frozen=True, slots=True)
class PortSettings:
    """Line settings; ignored by pyserial for `socket://` URLs."""

    baudrate: int
    bytesize: int = serial.EIGHTBITS
    parity: str = serial.PARITY_NONE
    stopbits: float = serial.STOPBITS_ONE
    rs485: Rs485 | None = None


@dataclass(frozen=True, slots=True)
class ReaderProfile:
    """What a protocol needs from the transport besides bytes.

    `follow_up` may return a command to send in reaction to a message. `idle_command` is sent when
    nothing was received or sent for `idle_after_s`, to restart an inventory that ended unseen.
    """

    protocol: str
    port: PortSettings
    start_command: bytes | None = None
    stop_command: bytes | None = None
    follow_up: Callable[[Message], bytes | None] | None = None
    idle_command: bytes | None = None
    idle_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect delays: `initial_s * factor**(n-1)` capped at `max_s` for the n-th failure.

    `max_attempts` consecutive failures (no byte received in between) make `run()` give up;
    None retries for ever, which is what an unattended agent wants.
    """

    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0
    max_attempts: int | None = None

    def delay(self, attempt: int) -> float:
        exponent = min(max(attempt - 1, 0), 64)
        return min(self.max_s, self.initial_s * self.factor**exponent)


def rdm6300_profile(*, rs485: Rs485 | None = None) -> ReaderProfile:
    """RDM6300: 9600 8N1, send-only reader."""
    return ReaderProfile(rdm6300.PROTOCOL, PortSettings(rdm6300.BAUDRATE, rs485=rs485))


def r2000_profile(
    *,
    address: int = r2000.BROADCAST_ADDRESS,
    repeat: int = 0xFF,
    antenna: int | None = None,
    baudrate: int = r2000.BAUDRATE,
    idle_after_s: float = 2.0,
    rs485: Rs485 | None = None,
) -> ReaderProfile:
    """R2000: real-time inventory, re-sent after every end of round and after silence."""
    inventory = r2000.real_time_inventory(repeat, address)
    start = inventory
    if antenna is not None:
        start = r2000.set_work_antenna(antenna, address) + inventory

    def follow_up(message: Message) -> bytes | None:
        return inventory if isinstance(message, InventoryRoundEnd) else None

    return ReaderProfile(
        protocol=r2000.PROTOCOL,
        port=PortSettings(baudrate, rs485=rs485),
        start_command=start,
        follow_up=follow_up,
        # After an error frame (e.g. antenna missing) the loop waits for this instead of
        # re-sending at once, which would turn a persistent fault into a busy loop.
        idle_command=inventory,
        idle_after_s=idle_after_s,
    )


def m100_profile(
    *,
    count: int = 0xFFFF,
    baudrate: int = m100.BAUDRATE,
    idle_after_s: float = 10.0,
    rs485: Rs485 | None = None,
) -> ReaderProfile:
    """M100: multi-poll of `count` rounds; stop, then start again after silence."""
    start = m100.multi_poll(count)
    return ReaderProfile(
        protocol=m100.PROTOCOL,
        port=PortSettings(baudrate, rs485=rs485),
        start_command=start,
        stop_command=m100.stop_multi_poll(),
        # A finished multi-poll goes silent; stopping first keeps a still-running one sane.
        idle_command=m100.stop_multi_poll() + start,
        idle_after_s=idle_after_s,
    )


_PROFILES: dict[str, Callable[[], ReaderProfile]] = {
    rdm6300.PROTOCOL: rdm6300_profile,
    r2000.PROTOCOL: r2000_profile,
    m100.PROTOCOL: m100_profile,
}


def profile_for(protocol: str) -> ReaderProfile:
    """The default profile of a protocol name (`rdm6300`, `r2000`, `m100`)."""
    try:
        return _PROFILES[protocol]()
    except KeyError:
        raise ValueError(f"unknown reader protocol {protocol!r}") from None


def open_port(url: str, settings: PortSettings, *, timeout_s: float = 0.1) -> SerialPort:
    """Open a device path or pyserial URL with `settings` and a read timeout."""
    ser = serial.serial_for_url(url, do_not_open=True)
    ser.baudrate = settings.baudrate
    ser.bytesize = settings.bytesize
    ser.parity = settings.parity
    ser.stopbits = settings.stopbits
    ser.timeout = timeout_s
    ser.write_timeout = WRITE_TIMEOUT_S
    ser.open()
    if settings.rs485 is not None:
        _enable_rs485(ser, settings.rs485)
    port: SerialPort = ser
    return port


def _enable_rs485(ser: Any, options: Rs485) -> None:
    try:
        ser.rs485_mode = serial.rs485.RS485Settings(
            rts_level_for_tx=options.rts_level_for_tx,
            rts_level_for_rx=options.rts_level_for_rx,
            loopback=options.loopback,
            delay_before_tx=options.delay_before_tx,
            delay_before_rx=options.delay_before_rx,
        )
    except (ValueError, OSError) as exc:
        # Many USB-RS485 adapters switch direction in hardware and refuse the ioctl, as does a
        # pty; the line still works, so carry on without kernel direction control.
        log.warning("RS485 mode refused by %s, continuing without it: %s", ser, exc)
        ser.rs485_mode = None


def run(
    port: str,
    decoder: FrameDecoder,
    on_message: Callable[[Message], None],
    stop_event: threading.Event,
    *,
    profile: ReaderProfile | None = None,
    read_timeout_s: float = 0.1,
    partial_frame_timeout_s: float = 0.5,
    backoff: Backoff | None = None,
) -> None:
    """Read `port` until `stop_event` is set, passing each decoded message to `on_message`.

    Returns when `stop_event` is set or `backoff.max_attempts` consecutive reconnects failed.
    Exceptions from `on_message` are logged and do not stop the loop; a malformed port URL
    raises ValueError at once, since retrying cannot fix it.
    """
    profile = profile if profile is not None else profile_for(decoder.protocol)
    backoff = backoff if backoff is not None else Backoff()
    failures = 0
    while not stop_event.is_set():
        try:
            ser = open_port(port, profile.port, timeout_s=read_timeout_s)
        except OSError as exc:  # SerialException is an OSError
            failures += 1
            if not _wait_before_retry(port, "open failed", exc, failures, backoff, stop_event):
                return
            continue
        log.info("opened %s for %s", port, profile.protocol)
        decoder.reset()
        session = _Session(ser, decoder, on_message, stop_event, profile, partial_frame_timeout_s)
        try:
            session.pump()
            return  # pump() only returns once stop_event is set
        except OSError as exc:
            lost = exc
        finally:
            _close_quietly(ser)
        failures = 0 if session.received else failures + 1
        if not _wait_before_retry(port, "connection lost", lost, failures, backoff, stop_event):
            return


def _wait_before_retry(
    port: str,
    what: str,
    exc: BaseException,
    failures: int,
    backoff: Backoff,
    stop_event: threading.Event,
) -> bool:
    if backoff.max_attempts is not None and failures > backoff.max_attempts:
        log.error("%s: %s (%s); giving up after %d attempts", port, what, exc, failures - 1)
        return False
    delay = backoff.delay(max(failures, 1))
    log.warning("%s: %s (%s); retrying in %.2f s", port, what, exc, delay)
    stop_event.wait(delay)
    return True


def _close_quietly(ser: SerialPort) -> None:
    try:
        ser.close()
    except OSError as exc:
        log.debug("closing port failed: %s", exc)


class _Session:
    """One open connection: the read loop proper."""

    def __init__(
        self,
        ser: SerialPort,
        decoder: FrameDecoder,
        on_message: Callable[[Message], None],
        stop_event: threading.Event,
        profile: ReaderProfile,
        partial_frame_timeout_s: float,
    ) -> None:
        self.ser = ser
        self.decoder = decoder
        self.on_message = on_message
        self.stop_event = stop_event
        self.profile = profile
        self.partial_frame_timeout_s = partial_frame_timeout_s
        self.received = False
        self.last_rx = self.last_tx = time.monotonic()

    def pump(self) -> None:
        if self.profile.start_command:
            self._send(self.profile.start_command)
        while not self.stop_event.is_set():
            chunk = self.ser.read(min(max(self.ser.in_waiting, 1), READ_CHUNK))
            now = time.monotonic()
            if chunk:
                self.received = True
                self.last_rx = now
                messages = self.decoder.feed(chunk)
            else:
                messages = self._on_idle(now)
            for message in messages:
                self._deliver(message)
        if self.profile.stop_command:
            try:
                self._send(self.profile.stop_command)
            except OSError as exc:
                log.debug("stop command not sent: %s", exc)

    def _on_idle(self, now: float) -> list[Message]:
        messages: list[Message] = []
        if self.decoder.buffered and now - self.last_rx >= self.partial_frame_timeout_s:
            # The line went quiet mid-frame: that frame is not coming; rescan what follows it.
            messages = self.decoder.discard_partial()
        idle_after = self.profile.idle_after_s
        if (
            self.profile.idle_command
            and idle_after is not None
            and now - max(self.last_rx, self.last_tx) >= idle_after
        ):
            log.debug("no traffic for %.1f s, re-sending the inventory command", idle_after)
            self._send(self.profile.idle_command)
        return messages

    def _deliver(self, message: Message) -> None:
        try:
            self.on_message(message)
        except Exception:
            # A consumer bug must not stop the reader; the traceback goes to the log.
            log.exception("on_message failed for %r", message)
        if self.profile.follow_up is not None:
            command = self.profile.follow_up(message)
            if command:
                self._send(command)

    def _send(self, data: bytes) -> None:
        self.ser.write(data)
        self.last_tx = time.monotonic()
