"""A simulated XY-MD02 temperature/humidity sensor on a pseudo-terminal, for tests.

Usage::

    with simulated_sensor(tmp_path, temperature_c=4.2, humidity_pct=55.6) as (sim, port):
        sensor = ModbusSensor(SensorSpec(port=port))   # port: the host end of the pty pair
        sim.set_values(temperature_c=-5.3)             # input register 1 becomes 0xFFCB
        sim.respond_late(0.5)                          # next response arrives after 0.5 s
        sim.corrupt_next_crc()                         # next response has a wrong CRC
        sim.respond_with_exception(2)                  # next response: illegal data address
        sim.stay_silent()                              # next request gets no answer

Faults are one-shot and queue up (calling `respond_late` twice delays two responses). Late and
exception responses apply to the next request for defined registers (an undefined one already
gets "illegal data address"); CRC corruption and silence to the next response frame.
`requests` lists what the simulator received; `wait_for_responses(n)` waits until it has sent n.

How it works: `PtyPair` runs `socat pty,link=A pty,link=B`, so both ends of the line have a path.
That matters because pymodbus's serial server and the sensor's ModbusSerialClient both open
their port by name through pyserial; `os.openpty()` gives a name only for the slave side (the
master is a bare fd), so an in-process pair would need our own relay between two masters, which
is what socat already does. socat removes its links when it exits, so killing it is also how a
test makes the port vanish. `SimulatedXYMD02` is a pymodbus `ModbusSerialServer` (RTU framer)
on end A, running in its own asyncio loop in a daemon thread. Register values live in a dict
that the datastore's `action` hook copies into the response, so tests can change them at any
time; late and exception responses happen in that hook too, and CRC corruption and silence in
the server's `trace_packet` hook, i.e. on the bytes as they go onto the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

__all__ = [
    "PtyPair",
    "Request",
    "SimulatedXYMD02",
    "encode_tenths",
    "simulated_sensor",
]

RegisterType = Literal["input", "holding"]

# XY-MD02 holding registers (configuration): device address, baud rate code (0 = 9600,
# 1 = 14400, 2 = 19200), temperature and humidity correction in tenths. Read-only here.
CONFIG_REGISTERS = {0x0101: "address", 0x0102: "baud code", 0x0103: "t corr", 0x0104: "h corr"}


def encode_tenths(value: float) -> int:
    """A value as the sensor's signed-tenths register: 4.2 -> 42, -5.3 -> 0xFFCB."""
    return round(value * 10) & 0xFFFF


@dataclass(frozen=True, slots=True)
class Request:
    """One request frame the simulator received (any slave address)."""

    device_id: int
    function_code: int
    address: int
    count: int


class PtyPair:
    """Two connected pseudo-terminals made by socat: `device_path` and `host_path`."""

    def __init__(self, directory: Path | str, *, start_timeout_s: float = 5.0) -> None:
        self.directory = Path(directory)
        self.device_path = str(self.directory / "xymd02")
        self.host_path = str(self.directory / "ttyHOST")
        self._log_path = self.directory / "socat.log"
        self._start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> PtyPair:
        """Start socat and wait until both links exist."""
        socat = shutil.which("socat")
        if socat is None:
            raise RuntimeError("socat is not installed")
        for path in (self.device_path, self.host_path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        with open(self._log_path, "ab") as log:
            self._process = subprocess.Popen(
                [
                    socat,
                    "-d",
                    "-d",
                    f"pty,raw,echo=0,link={self.device_path}",
                    f"pty,raw,echo=0,link={self.host_path}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + self._start_timeout_s
        while not (os.path.exists(self.device_path) and os.path.exists(self.host_path)):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"socat did not create the ptys:\n{self._log_path.read_text()}")
            time.sleep(0.01)
        return self

    def close(self) -> None:
        """Stop socat (the ports vanish); idempotent."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> PtyPair:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class SimulatedXYMD02:
    """An XY-MD02 answering Modbus RTU on `port` (a device path), in a background thread.

    Temperature and humidity sit in input registers 1 and 2 as signed tenths, as on the real
    device; `register_type` and the register numbers can be changed to model other sensors.
    Undefined registers answer "illegal data address"; frames for another slave id get no
    answer, as on a real bus.
    """

    def __init__(
        self,
        port: str,
        *,
        device_id: int = 1,
        baudrate: int = 9600,
        parity: str = "N",
        stopbits: int = 1,
        bytesize: int = 8,
        temperature_c: float = 21.5,
        humidity_pct: float = 45.0,
        register_type: RegisterType = "input",
        temperature_register: int = 0x0001,
        humidity_register: int = 0x0002,
    ) -> None:
        self.port = port
        self.device_id = device_id
        self.baudrate, self.parity, self.stopbits, self.bytesize = (
            baudrate,
            parity,
            stopbits,
            bytesize,
        )
        self.register_type = register_type
        self.temperature_register = temperature_register
        self.humidity_register = humidity_register
        self._lock = threading.Condition()
        self._values: dict[tuple[RegisterType, int], int] = {
            (register_type, temperature_register): encode_tenths(temperature_c),
            (register_type, humidity_register): encode_tenths(humidity_pct),
        }
        for address in CONFIG_REGISTERS:
            self._values.setdefault(("holding", address), 0)
        self._values[("holding", 0x0101)] = device_id
        self._delays: list[float] = []
        self._exceptions: list[int] = []
        self._corrupt = 0
        self._silent = 0
        self._requests: list[Request] = []
        self._responses = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: ModbusSerialServer | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- test controls ---------------------------------------------------------------------

    def set_values(
        self, *, temperature_c: float | None = None, humidity_pct: float | None = None
    ) -> None:
        """Set the measurement registers from engineering values (stored as signed tenths)."""
        if temperature_c is not None:
            self.set_register(self.temperature_register, encode_tenths(temperature_c))
        if humidity_pct is not None:
            self.set_register(self.humidity_register, encode_tenths(humidity_pct))

    def set_register(
        self, address: int, raw: int, *, register_type: RegisterType | None = None
    ) -> None:
        """Set one defined register to a raw 16-bit value."""
        key = (register_type or self.register_type, address)
        with self._lock:
            if key not in self._values:
                raise KeyError(f"{key[0]} register {address:#06x} is not defined")
            self._values[key] = raw & 0xFFFF

    def respond_late(self, delay_s: float) -> None:
        """Delay the next response by `delay_s` (the request is still answered)."""
        with self._lock:
            self._delays.append(delay_s)

    def respond_with_exception(self, code: int = ExcCodes.DEVICE_FAILURE) -> None:
        """Answer the next request with Modbus exception `code` (2 = illegal data address)."""
        with self._lock:
            self._exceptions.append(code)

    def corrupt_next_crc(self) -> None:
        """Flip the CRC of the next response frame."""
        with self._lock:
            self._corrupt += 1

    def stay_silent(self) -> None:
        """Drop the next response."""
        with self._lock:
            self._silent += 1

    @property
    def requests(self) -> list[Request]:
        """Requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def responses_sent(self) -> int:
        """Response frames written to the line so far (dropped ones not counted)."""
        with self._lock:
            return self._responses

    def wait_for_responses(self, count: int, timeout_s: float = 5.0) -> bool:
        """Wait until `count` responses have been sent; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self._responses >= count, timeout_s)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout_s: float = 5.0) -> SimulatedXYMD02:
        """Open the port and serve in a background thread."""
        self._thread = threading.Thread(target=self._run, name="xymd02-sim", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            self.stop()
            raise TimeoutError(f"simulator on {self.port} did not start in {timeout_s} s")
        if self._error is not None:
            self.stop()
            raise RuntimeError(f"simulator on {self.port} failed to start") from self._error
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close the port and end the thread; idempotent."""
        loop, server, thread = self._loop, self._server, self._thread
        if loop is not None and server is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop already ended
                asyncio.run_coroutine_threadsafe(
                    server.shutdown(),  # type: ignore[no-untyped-call]
                    loop,
                ).result(timeout_s)
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                raise TimeoutError(f"simulator on {self.port} did not stop in {timeout_s} s")
        self._loop = self._server = self._thread = None

    def __enter__(self) -> SimulatedXYMD02:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals -------------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(loop))
        finally:
            # A response still sleeping in respond_late() must not outlive the loop.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            asyncio.set_event_loop(None)
            loop.close()

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            server = ModbusSerialServer(
                self._device(),
                framer=FramerType.RTU,
                port=self.port,
                baudrate=self.baudrate,
                parity=self.parity,
                stopbits=self.stopbits,
                bytesize=self.bytesize,
                trace_packet=self._trace_packet,
                trace_pdu=self._trace_pdu,
            )
            await server.serve_forever(background=True)
        except Exception as exc:
            self._error = exc
            self._ready.set()
            return
        self._loop, self._server = loop, server
        self._ready.set()
        await server.serving

    def _device(self) -> SimDevice:
        def block(kind: RegisterType) -> list[SimData]:
            entries = [
                SimData(address, values=value, datatype=DataType.REGISTERS)
                for (k, address), value in sorted(self._values.items())
                if k == kind
            ]
            # pymodbus wants every block non-empty; a lone invalid register answers "illegal
            # data address" like any other undefined one.
            return entries or [SimData(0, datatype=DataType.INVALID)]

        bits = [SimData(0, values=False, datatype=DataType.BITS)]
        # id 0 = "any slave id": _trace_packet silences answers to other ids instead, which
        # avoids pymodbus answering them with a device-failure exception.
        return SimDevice(
            0,
            simdata=([*bits], [*bits], block("holding"), block("input")),
            action=self._action,
        )

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        kind: RegisterType = "input" if function_code == 4 else "holding"
        with self._lock:
            delay = self._delays.pop(0) if self._delays else 0.0
            exception = self._exceptions.pop(0) if self._exceptions else None
            for i in range(count):
                key = (kind, address + i)
                if set_values is not None and key in self._values:
                    self._values[key] = int(set_values[i])
                elif key in self._values:
                    registers[address + i - start_address] = self._values[key]
        if delay:
            await asyncio.sleep(delay)
        return ExcCodes(exception) if exception is not None else None

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            request = Request(pdu.dev_id, pdu.function_code, pdu.address, pdu.count)
            with self._lock:
                self._requests.append(request)
        return pdu

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending or not data:
            return data
        with self._lock:
            if data[0] != self.device_id:
                return b""
            if self._silent:
                self._silent -= 1
                return b""
            if self._corrupt:
                self._corrupt -= 1
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            self._responses += 1
            self._lock.notify_all()
        return data


@contextlib.contextmanager
def simulated_sensor(
    directory: Path | str, **sim_options: Any
) -> Iterator[tuple[SimulatedXYMD02, str]]:
    """A pty pair with a simulator on one end; yields (simulator, host port path).

    `sim_options` go to SimulatedXYMD02 (temperature_c, humidity_pct, device_id, ...).
    """
    with PtyPair(directory) as pair, SimulatedXYMD02(pair.device_path, **sim_options) as sim:
        yield sim, pair.host_path
