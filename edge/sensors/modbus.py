"""Modbus RTU temperature/humidity sensor (XY-MD02 class) over a serial line.

Register map, from the XY-MD02 (SHT20) datasheet: function code 0x04 (read input registers),
register 0x0001 = temperature, 0x0002 = humidity, both signed 16-bit integers in tenths
(0xFFCB = -53 = -5.3 degC); line settings 9600 baud 8N1, slave address 1. Those are the
`SensorSpec` defaults; other sensors of the class differ in register numbers, function code
(0x03 holding registers) or scale, which the spec makes configurable.

`ModbusSensor.read()` never raises for line trouble: each failure is counted in `SensorStats` by
cause and the read returns None, so one bad frame costs one sample, not the agent. Only a
configuration that can never work (`SensorConfigError`) is raised.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import serial.rs485  # type: ignore[import-untyped]
from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ConnectionException, ModbusIOException
from pymodbus.framer.rtu import FramerRTU
from pymodbus.pdu import ExceptionResponse, ModbusPDU

from edge.errors import EdgeError
from tracehub.errors import InvalidError, UnavailableError

__all__ = [
    "HUMIDITY_RANGE_PCT",
    "TEMPERATURE_RANGE_C",
    "ModbusSensor",
    "RegisterType",
    "SensorConfigError",
    "SensorFailure",
    "SensorSample",
    "SensorSpec",
    "SensorStats",
    "classify_silence",
    "decode_register",
    "is_plausible",
    "poll_forever",
    "read_plan",
]

log = logging.getLogger(__name__)

RegisterType = Literal["input", "holding"]

TEMPERATURE_RANGE_C = (-40.0, 125.0)
"""SHT20 operating range; anything outside is a wiring, scale or register-map fault."""
HUMIDITY_RANGE_PCT = (0.0, 100.0)


class SensorConfigError(EdgeError, InvalidError):
    """The sensor settings are invalid or cannot be applied to the port (retrying won't help)."""


@dataclass(frozen=True, slots=True)
class SensorSpec:
    """How to reach one sensor and where its values are.

    `port` is a device path (`/dev/ttyUSB0`, a pty) or any pyserial URL (`socket://host:port`
    for an RS485-to-TCP gateway speaking RTU). `rs485` asks the kernel to drive RTS for bus
    direction (TIOCSRS485); leave it off for USB adapters that switch direction in hardware,
    which is most of them, and for ptys, which refuse the ioctl.
    """

    port: str
    slave_id: int = 1
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: int = 1
    bytesize: int = 8
    timeout_s: float = 1.0
    temperature_register: int = 0x0001
    humidity_register: int = 0x0002
    register_type: RegisterType = "input"
    scale: float = 0.1
    signed: bool = True
    interval_s: float = 5.0
    rs485: bool = False
    rs485_delay_before_tx_s: float | None = None
    rs485_delay_before_rx_s: float | None = None

    def __post_init__(self) -> None:
        problems = []
        if not self.port:
            problems.append("port is empty")
        if not 1 <= self.slave_id <= 247:
            problems.append(f"slave_id {self.slave_id} not in 1..247")
        if self.baudrate <= 0:
            problems.append(f"baudrate {self.baudrate} must be positive")
        if self.parity not in ("N", "E", "O"):
            problems.append(f"parity {self.parity!r} not one of N, E, O")
        if self.stopbits not in (1, 2):
            problems.append(f"stopbits {self.stopbits} not 1 or 2")
        if self.bytesize not in (7, 8):
            problems.append(f"bytesize {self.bytesize} not 7 or 8")
        if self.timeout_s <= 0 or self.interval_s <= 0:
            problems.append("timeout_s and interval_s must be positive")
        for name in ("temperature_register", "humidity_register"):
            if not 0 <= getattr(self, name) <= 0xFFFF:
                problems.append(f"{name} {getattr(self, name)} not in 0..0xFFFF")
        if self.temperature_register == self.humidity_register:
            problems.append("temperature_register and humidity_register are the same")
        if self.register_type not in ("input", "holding"):
            problems.append(f"register_type {self.register_type!r} not 'input' or 'holding'")
        if self.scale == 0:
            problems.append("scale must not be 0")
        if self.rs485 and "://" in self.port:
            problems.append("rs485 needs a local serial device, not a URL port")
        if problems:
            raise SensorConfigError(f"sensor on {self.port!r}: " + "; ".join(problems))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> SensorSpec:
        """Build from a TOML table; `slave` is accepted for `slave_id`, unknown keys refused."""
        values = dict(data)
        if "slave" in values:
            values.setdefault("slave_id", values.pop("slave"))
        unknown = sorted(set(values) - set(_FIELD_TYPES))
        if unknown:
            raise SensorConfigError(f"unknown sensor settings: {', '.join(unknown)}")
        for name, value in values.items():
            kind = _FIELD_TYPES[name]
            # TOML writes 5 for 5.0; bools are ints in Python, so refuse them where numbers go.
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                values[name] = value = float(value)
            if value is None and name in _OPTIONAL_FIELDS:
                continue
            if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
                raise SensorConfigError(
                    f"sensor setting {name} must be a {kind.__name__}, got {value!r}"
                )
        if "port" not in values:
            raise SensorConfigError("sensor setting port missing")
        return cls(**values)

    @property
    def function_code(self) -> int:
        """0x04 for input registers, 0x03 for holding registers."""
        return 0x04 if self.register_type == "input" else 0x03


_FIELD_TYPES: dict[str, type] = {
    "port": str,
    "slave_id": int,
    "baudrate": int,
    "parity": str,
    "stopbits": int,
    "bytesize": int,
    "timeout_s": float,
    "temperature_register": int,
    "humidity_register": int,
    "register_type": str,
    "scale": float,
    "signed": bool,
    "interval_s": float,
    "rs485": bool,
    "rs485_delay_before_tx_s": float,
    "rs485_delay_before_rx_s": float,
}
_OPTIONAL_FIELDS = {"rs485_delay_before_tx_s", "rs485_delay_before_rx_s"}


@dataclass(frozen=True, slots=True)
class SensorSample:
    """One plausible reading; `at` is when the response arrived (UTC)."""

    temperature_c: float
    humidity_pct: float
    at: datetime


@dataclass(frozen=True, slots=True)
class SensorFailure:
    """Why the last poll gave no sample: ``kind`` is its SensorStats counter; ``value`` the
    implausible reading (degC or %) when the sensor answered with one."""

    kind: str
    message: str
    value: float | None = None


@dataclass(slots=True)
class SensorStats:
    """Counts of `read()` outcomes; `polls` equals `ok` plus every failure count.

    A response with a bad CRC, an exception response and silence are told apart; a port that
    cannot be opened or fails mid-request is a connection error (the next read reopens it).
    """

    polls: int = 0
    ok: int = 0
    timeouts: int = 0
    crc_errors: int = 0
    modbus_exceptions: int = 0
    implausible: int = 0
    connection_errors: int = 0
    other_errors: int = 0
    last_error: str | None = None


def decode_register(raw: int, *, scale: float = 0.1, signed: bool = True) -> float:
    """A 16-bit register value in engineering units, rounded to 0.1."""
    raw &= 0xFFFF
    if signed and raw & 0x8000:
        raw -= 0x10000
    return round(raw * scale, 1)


def is_plausible(temperature_c: float, humidity_pct: float) -> bool:
    """Whether both values are inside the sensor's physical range."""
    t_lo, t_hi = TEMPERATURE_RANGE_C
    h_lo, h_hi = HUMIDITY_RANGE_PCT
    return t_lo <= temperature_c <= t_hi and h_lo <= humidity_pct <= h_hi


def read_plan(spec: SensorSpec) -> list[tuple[int, int]]:
    """(address, count) requests: one request of 2 when the registers are adjacent."""
    t, h = spec.temperature_register, spec.humidity_register
    if abs(t - h) == 1:
        return [(min(t, h), 2)]
    return [(t, 1), (h, 1)]


_Failure = Literal[
    "timeouts", "crc_errors", "modbus_exceptions", "connection_errors", "other_errors"
]


_SILENCE_LABELS = {
    "timeouts": "no response",
    "crc_errors": "response with a bad CRC",
    "other_errors": "unusable response",
}


class SensorReadError(EdgeError, UnavailableError):
    """A poll got no usable answer; ``kind`` names the counter it goes to."""

    def __init__(self, kind: _Failure, message: str) -> None:
        super().__init__(message)
        self.kind: _Failure = kind


def classify_silence(received: bytes) -> Literal["timeouts", "crc_errors", "other_errors"]:
    """Why pymodbus saw no valid response, judged from the bytes that did arrive.

    pymodbus 3.16's RTU framer drops a frame whose CRC does not match (it only logs "Frame CRC
    check failed" at debug level) and keeps waiting, so a corrupted response surfaces exactly
    like silence: a ModbusIOException "No response received" after the timeout. The raw bytes
    (seen through the client's `trace_packet` hook) tell the two apart.
    """
    if not received:
        return "timeouts"
    size = _response_size(received)
    if size is None or len(received) < size:
        return "timeouts"  # a truncated answer: the device stopped talking
    crc = int.from_bytes(received[size - 2 : size], "big")
    if not FramerRTU.check_CRC(received[: size - 2], crc):
        return "crc_errors"
    return "other_errors"  # a sound frame pymodbus still refused, e.g. from another slave


def _response_size(frame: bytes) -> int | None:
    if len(frame) < 2:
        return None
    function_code = frame[1]
    if function_code & 0x80:
        return 5  # address, function | 0x80, exception code, CRC
    if function_code in (0x03, 0x04):
        return 3 + frame[2] + 2 if len(frame) >= 3 else None
    return None


class ModbusSensor:
    """An XY-MD02-class sensor on a serial line; not thread-safe (one poller per sensor)."""

    def __init__(self, spec: SensorSpec) -> None:
        self.spec = spec
        self._stats = SensorStats()
        self._received = b""
        self._bad_crc_seen = False
        self._failing = False
        #: Why the last read() gave no sample; None after a good one.
        self.last_failure: SensorFailure | None = None
        self._client = ModbusSerialClient(
            spec.port,
            framer=FramerType.RTU,
            baudrate=spec.baudrate,
            bytesize=spec.bytesize,
            parity=spec.parity,
            stopbits=spec.stopbits,
            timeout=spec.timeout_s,
            # One request per attempt keeps the counters honest and read() bounded; the poll
            # interval is the retry.
            retries=0,
            trace_packet=self._trace_packet,
        )

    @property
    def stats(self) -> SensorStats:
        """A snapshot of the counters."""
        return dataclasses.replace(self._stats)

    @property
    def connected(self) -> bool:
        """Whether the port is open."""
        return self._client.connected

    def connect(self) -> bool:
        """Open the port if needed; False when it cannot be opened (yet).

        Raises SensorConfigError when `rs485` is set and the port refuses RS485 mode.
        """
        if self._client.connected:
            return True
        if not self._client.connect():
            return False
        if self.spec.rs485:
            self._apply_rs485()
        return True

    def close(self) -> None:
        """Close the port; the next read() reopens it."""
        self._client.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> ModbusSensor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self) -> SensorSample | None:
        """Poll once: a plausible sample, or None after counting why not."""
        self._stats.polls += 1
        try:
            raw = self._read_registers()
        except SensorReadError as failure:
            self._fail(failure.kind, str(failure))
            return None
        except SensorConfigError as exc:
            self._stats.other_errors += 1
            self._stats.last_error = str(exc)
            self.last_failure = SensorFailure("other_errors", str(exc))
            raise
        at = datetime.now(UTC)
        temperature = decode_register(
            raw[self.spec.temperature_register], scale=self.spec.scale, signed=self.spec.signed
        )
        humidity = decode_register(
            raw[self.spec.humidity_register], scale=self.spec.scale, signed=self.spec.signed
        )
        if not is_plausible(temperature, humidity):
            t_lo, t_hi = TEMPERATURE_RANGE_C
            value = temperature if not t_lo <= temperature <= t_hi else humidity
            self._fail("implausible", f"implausible {temperature} degC, {humidity} %", value)
            return None
        self._stats.ok += 1
        self.last_failure = None
        if self._failing:
            log.info("sensor %s: reading again", self.spec.port)
            self._failing = False
        return SensorSample(temperature_c=temperature, humidity_pct=humidity, at=at)

    def _fail(self, kind: str, message: str, value: float | None = None) -> None:
        setattr(self._stats, kind, getattr(self._stats, kind) + 1)
        self._stats.last_error = message
        self.last_failure = SensorFailure(kind, message, value)
        # Warn on the first failure of a run only: a sensor unplugged for a day must not log
        # a warning every interval.
        log.log(
            logging.DEBUG if self._failing else logging.WARNING,
            "sensor %s: %s",
            self.spec.port,
            message,
        )
        self._failing = True

    def _read_registers(self) -> dict[int, int]:
        values: dict[int, int] = {}
        for address, count in read_plan(self.spec):
            registers = self._request(address, count)
            for offset, value in enumerate(registers):
                values[address + offset] = value
        return values

    def _request(self, address: int, count: int) -> list[int]:
        if not self.connect():
            missing = "://" not in self.spec.port and not os.path.exists(self.spec.port)
            reason = " (no such device)" if missing else ""
            raise SensorReadError("connection_errors", f"cannot open {self.spec.port}{reason}")
        self._received = b""
        self._bad_crc_seen = False
        try:
            if self.spec.register_type == "input":
                response = self._client.read_input_registers(
                    address, count=count, device_id=self.spec.slave_id
                )
            else:
                response = self._client.read_holding_registers(
                    address, count=count, device_id=self.spec.slave_id
                )
        except ConnectionException as exc:
            # pymodbus closes the port itself when a read or write fails with an OSError (the
            # device node vanished, the pty peer hung up); make sure, so the next read reopens.
            self.close()
            raise SensorReadError("connection_errors", f"port lost: {exc}") from None
        except ModbusIOException as exc:
            kind = "crc_errors" if self._bad_crc_seen else classify_silence(self._received)
            raise SensorReadError(kind, f"{_SILENCE_LABELS[kind]}: {exc}") from None
        except Exception as exc:  # pyserial raises undocumented types (termios.error, ...)
            self.close()
            raise SensorReadError("other_errors", f"{type(exc).__name__}: {exc}") from None
        return self._check_response(response, address, count)

    def _check_response(self, response: ModbusPDU, address: int, count: int) -> list[int]:
        if isinstance(response, ExceptionResponse) or response.isError():
            code = getattr(response, "exception_code", None)
            raise SensorReadError(
                "modbus_exceptions",
                f"exception response {code} to function {self.spec.function_code} "
                f"at register {address:#06x}",
            )
        registers = list(response.registers)
        if len(registers) != count:
            raise SensorReadError(
                "other_errors", f"asked for {count} registers, got {len(registers)}"
            )
        return registers

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        # Called with the whole receive buffer each time it grows. pymodbus empties that buffer
        # after dropping a bad frame, so note a bad CRC as soon as it is complete.
        if not sending:
            self._received = data
            if classify_silence(data) == "crc_errors":
                self._bad_crc_seen = True
        return data

    def _apply_rs485(self) -> None:
        settings = serial.rs485.RS485Settings(
            delay_before_tx=self.spec.rs485_delay_before_tx_s,
            delay_before_rx=self.spec.rs485_delay_before_rx_s,
        )
        try:
            self._client.socket.rs485_mode = settings  # type: ignore[union-attr]
        except (ValueError, OSError) as exc:
            self.close()
            raise SensorConfigError(
                f"{self.spec.port}: RS485 mode refused ({exc}); this port has no kernel RS485 "
                "support (a pty, or a USB adapter that switches direction itself): "
                "set rs485 = false"
            ) from exc


def poll_forever(
    sensor: ModbusSensor,
    on_sample: Callable[[SensorSample], None],
    stop_event: threading.Event,
    *,
    max_polls: int | None = None,
    on_failure: Callable[[SensorFailure], None] | None = None,
) -> int:
    """Read every `sensor.spec.interval_s` until `stop_event` is set; returns the poll count.

    Polls keep a fixed rate (a slow poll shortens the next wait; overruns skip ticks rather than
    bunching). Stopping takes at most one read, i.e. `timeout_s` per register request.
    A poll without a sample calls `on_failure` with the reason, if given.
    Exceptions from the callbacks are logged and do not stop the loop; SensorConfigError does.
    `max_polls` bounds the loop for tests and one-shot tools.
    """
    interval = sensor.spec.interval_s
    polls = 0
    next_at = time.monotonic()
    while not stop_event.is_set() and (max_polls is None or polls < max_polls):
        sample = sensor.read()
        polls += 1
        try:
            if sample is not None:
                on_sample(sample)
            elif on_failure is not None and sensor.last_failure is not None:
                on_failure(sensor.last_failure)
        except Exception:
            log.exception("sensor %s: sample handler failed", sensor.spec.port)
        now = time.monotonic()
        next_at += interval
        if next_at < now:
            next_at = now + interval - (now - next_at) % interval
        if max_polls is not None and polls >= max_polls:
            break
        stop_event.wait(next_at - now)
    return polls
