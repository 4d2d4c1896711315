"""The Modbus RTU temperature/humidity sensor driver, against a simulated XY-MD02 on a pty."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.framer.rtu import FramerRTU

from edge.sensors.modbus import (
    ModbusSensor,
    SensorConfigError,
    SensorSample,
    SensorSpec,
    SensorStats,
    classify_silence,
    decode_register,
    is_plausible,
    poll_forever,
    read_plan,
)
from tests.support.modbus_sim import (
    PtyPair,
    Request,
    SimulatedXYMD02,
    encode_tenths,
    simulated_sensor,
)

pytestmark = pytest.mark.timeout(60)

# The sensor's response timeout in these tests. The simulator answers within milliseconds, but
# the test box is shared and small: a shorter timeout turned scheduling stalls into spurious
# timeouts.
TIMEOUT_S = 1.0


def rtu(frame_without_crc: bytes) -> bytes:
    return frame_without_crc + FramerRTU.compute_CRC(frame_without_crc).to_bytes(2, "big")


def values(sample: SensorSample | None) -> tuple[float, float] | None:
    """(temperature, humidity) of a sample, or None when the read failed."""
    return None if sample is None else (sample.temperature_c, sample.humidity_pct)


def accounted(stats: SensorStats) -> int:
    return (
        stats.ok
        + stats.timeouts
        + stats.crc_errors
        + stats.modbus_exceptions
        + stats.implausible
        + stats.connection_errors
        + stats.other_errors
    )


@pytest.fixture()
def sim(tmp_path: Path) -> Iterator[tuple[SimulatedXYMD02, str]]:
    with simulated_sensor(tmp_path, temperature_c=4.2, humidity_pct=55.6) as pair:
        yield pair


@pytest.fixture()
def sensor(sim: tuple[SimulatedXYMD02, str]) -> Iterator[ModbusSensor]:
    with ModbusSensor(SensorSpec(port=sim[1], timeout_s=TIMEOUT_S)) as sensor:
        yield sensor


# -- decoding and configuration (no port) --------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(42, 4.2), (556, 55.6), (0, 0.0), (0xFFCB, -5.3), (0xFE70, -40.0), (0x7FFF, 3276.7)],
)
def test_decode_signed_tenths(raw: int, expected: float) -> None:
    assert decode_register(raw) == expected


def test_decode_unsigned_and_other_scales() -> None:
    assert decode_register(0xFFCB, signed=False) == 6548.3
    assert decode_register(0xFFCB, scale=1.0) == -53.0
    assert decode_register(2345, scale=0.01) == 23.4  # rounded to 0.1 whatever the scale


@given(st.integers(min_value=-400, max_value=1250))
def test_decode_inverts_the_device_encoding(tenths: int) -> None:
    assert decode_register(encode_tenths(tenths / 10)) == tenths / 10


def test_plausibility_bounds() -> None:
    assert is_plausible(-40.0, 0.0)
    assert is_plausible(125.0, 100.0)
    assert not is_plausible(-40.1, 50.0)
    assert not is_plausible(125.1, 50.0)
    assert not is_plausible(20.0, -0.1)
    assert not is_plausible(20.0, 100.1)


def test_adjacent_registers_are_read_in_one_request() -> None:
    assert read_plan(SensorSpec(port="/dev/null")) == [(1, 2)]
    reversed_map = SensorSpec(port="/dev/null", temperature_register=6, humidity_register=5)
    assert read_plan(reversed_map) == [(5, 2)]
    apart = SensorSpec(port="/dev/null", temperature_register=1, humidity_register=5)
    assert read_plan(apart) == [(1, 1), (5, 1)]


def test_classify_silence_tells_crc_errors_from_timeouts() -> None:
    good = rtu(bytes([1, 4, 4, 0, 42, 2, 44]))
    bad_crc = good[:-1] + bytes([good[-1] ^ 0xFF])
    assert classify_silence(b"") == "timeouts"
    assert classify_silence(good[:5]) == "timeouts"  # truncated
    assert classify_silence(bad_crc) == "crc_errors"
    assert classify_silence(rtu(bytes([1, 0x84, 2]))[:-1] + b"\x00") == "crc_errors"
    assert classify_silence(good) == "other_errors"


def test_spec_defaults_follow_the_xy_md02_datasheet() -> None:
    spec = SensorSpec(port="/dev/ttyUSB0")
    assert (spec.slave_id, spec.baudrate, spec.bytesize, spec.parity, spec.stopbits) == (
        1,
        9600,
        8,
        "N",
        1,
    )
    assert (spec.temperature_register, spec.humidity_register) == (0x0001, 0x0002)
    assert (spec.register_type, spec.function_code, spec.scale, spec.signed) == (
        "input",
        4,
        0.1,
        True,
    )
    assert spec.timeout_s == 1.0 and spec.interval_s == 5.0 and spec.rs485 is False
    assert SensorSpec(port="x", register_type="holding").function_code == 3


@pytest.mark.parametrize(
    "bad",
    [
        {"slave_id": 0},
        {"slave_id": 248},
        {"parity": "X"},
        {"stopbits": 3},
        {"timeout_s": 0},
        {"temperature_register": 0x10000},
        {"humidity_register": 1},
        {"register_type": "coil"},
        {"scale": 0},
        {"port": "socket://gw:502", "rs485": True},
    ],
)
def test_spec_rejects_bad_settings(bad: dict[str, object]) -> None:
    settings: dict[str, object] = {"port": "/dev/ttyUSB0", **bad}
    with pytest.raises(SensorConfigError):
        SensorSpec(**settings)  # type: ignore[arg-type]


def test_spec_from_toml_table() -> None:
    spec = SensorSpec.from_mapping(
        {"port": "socket://10.0.0.9:4001", "slave": 3, "interval_s": 10, "scale": 1}
    )
    assert (spec.port, spec.slave_id, spec.interval_s, spec.scale) == (
        "socket://10.0.0.9:4001",
        3,
        10.0,
        1.0,
    )
    with pytest.raises(SensorConfigError, match="unknown sensor settings: baud"):
        SensorSpec.from_mapping({"port": "/dev/ttyUSB0", "baud": 9600})
    with pytest.raises(SensorConfigError, match="signed must be a bool"):
        SensorSpec.from_mapping({"port": "/dev/ttyUSB0", "signed": 1})
    with pytest.raises(SensorConfigError, match="slave_id must be a int"):
        SensorSpec.from_mapping({"port": "/dev/ttyUSB0", "slave": True})
    with pytest.raises(SensorConfigError, match="port missing"):
        SensorSpec.from_mapping({"slave": 1})


# -- against the simulator -----------------------------------------------------------------


def test_reads_temperature_and_humidity(
    sim: tuple[SimulatedXYMD02, str], sensor: ModbusSensor
) -> None:
    simulator, _ = sim
    before = datetime.now(UTC)
    sample = sensor.read()
    assert sample is not None
    assert (sample.temperature_c, sample.humidity_pct) == (4.2, 55.6)
    assert before <= sample.at <= datetime.now(UTC)
    assert simulator.requests == [Request(1, 4, 1, 2)]  # one FC 0x04 read of both registers
    assert sensor.stats == SensorStats(polls=1, ok=1)


def test_negative_temperature_over_the_wire(
    sim: tuple[SimulatedXYMD02, str], sensor: ModbusSensor
) -> None:
    sim[0].set_values(temperature_c=-5.3, humidity_pct=0.0)
    sample = sensor.read()
    assert sample is not None and (sample.temperature_c, sample.humidity_pct) == (-5.3, 0.0)


def test_holding_register_variant(tmp_path: Path) -> None:
    options = {"register_type": "holding", "temperature_register": 0, "humidity_register": 1}
    with simulated_sensor(tmp_path, temperature_c=-12.5, humidity_pct=80.0, **options) as (
        simulator,
        port,
    ):
        with ModbusSensor(SensorSpec(port=port, timeout_s=TIMEOUT_S, **options)) as sensor:  # type: ignore[arg-type]
            sample = sensor.read()
        assert sample is not None and (sample.temperature_c, sample.humidity_pct) == (-12.5, 80.0)
        assert simulator.requests == [Request(1, 3, 0, 2)]
        # The same map read as input registers is refused by the device.
        with ModbusSensor(SensorSpec(port=port, timeout_s=TIMEOUT_S)) as wrong:
            assert wrong.read() is None
            assert wrong.stats.modbus_exceptions == 1


def test_registers_apart_take_two_requests(tmp_path: Path) -> None:
    with simulated_sensor(tmp_path, humidity_register=5) as (simulator, port):
        spec = SensorSpec(port=port, timeout_s=TIMEOUT_S, humidity_register=5)
        with ModbusSensor(spec) as sensor:
            sample = sensor.read()
    assert sample is not None and (sample.temperature_c, sample.humidity_pct) == (21.5, 45.0)
    assert simulator.requests == [Request(1, 4, 1, 1), Request(1, 4, 5, 1)]


def test_late_response_is_a_counted_timeout_and_the_next_read_works(
    sim: tuple[SimulatedXYMD02, str], sensor: ModbusSensor
) -> None:
    simulator, _ = sim
    simulator.respond_late(TIMEOUT_S * 2)
    started = time.monotonic()
    assert sensor.read() is None
    assert TIMEOUT_S * 0.9 <= time.monotonic() - started < TIMEOUT_S + 1.0
    assert sensor.stats.timeouts == 1
    # As on a real line, the late answer lands before the next poll and the client discards
    # it before its next request. (RTU frames carry no transaction id: an answer still in
    # flight when the next request goes out would be taken for its reply, which is why the
    # values are left unchanged here: socat relays asynchronously.)
    assert simulator.wait_for_responses(1, timeout_s=5)
    time.sleep(0.1)
    sample = sensor.read()
    assert sample is not None and (sample.temperature_c, sample.humidity_pct) == (4.2, 55.6)
    stats = sensor.stats
    assert (stats.polls, stats.ok, stats.timeouts) == (2, 1, 1)


def test_silence_and_wrong_slave_are_timeouts(
    sim: tuple[SimulatedXYMD02, str], sensor: ModbusSensor
) -> None:
    simulator, port = sim
    simulator.stay_silent()
    assert sensor.read() is None
    with ModbusSensor(SensorSpec(port=port, slave_id=7, timeout_s=TIMEOUT_S)) as other:
        sensor.close()  # the port is opened exclusively
        assert other.read() is None
        assert other.stats.timeouts == 1
    assert values(sensor.read()) == (4.2, 55.6)
    assert (sensor.stats.timeouts, sensor.stats.ok) == (1, 1)


def test_crc_errors_are_counted(sim: tuple[SimulatedXYMD02, str], sensor: ModbusSensor) -> None:
    sim[0].corrupt_next_crc()
    assert sensor.read() is None
    stats = sensor.stats
    assert (stats.crc_errors, stats.timeouts) == (1, 0)
    assert stats.last_error is not None and "CRC" in stats.last_error
    assert values(sensor.read()) == (4.2, 55.6)


def test_exception_responses_are_counted(
    sim: tuple[SimulatedXYMD02, str], sensor: ModbusSensor
) -> None:
    sim[0].respond_with_exception(4)
    assert sensor.read() is None
    assert sensor.stats.modbus_exceptions == 1
    assert sensor.stats.last_error == "exception response 4 to function 4 at register 0x0001"
    assert values(sensor.read()) == (4.2, 55.6)


def test_unmapped_register_is_an_illegal_address_exception(
    sim: tuple[SimulatedXYMD02, str],
) -> None:
    spec = SensorSpec(port=sim[1], timeout_s=TIMEOUT_S, temperature_register=0x0010)
    with ModbusSensor(spec) as sensor:
        assert sensor.read() is None
        assert sensor.stats.modbus_exceptions == 1
        assert sensor.stats.last_error is not None
        assert sensor.stats.last_error.startswith("exception response 2 ")


@pytest.mark.parametrize(
    ("temperature_c", "humidity_pct"),
    [(125.1, 50.0), (-40.1, 50.0), (20.0, 100.1), (20.0, -0.1), (3276.7, 50.0)],
)
def test_implausible_values_are_rejected(
    sim: tuple[SimulatedXYMD02, str],
    sensor: ModbusSensor,
    temperature_c: float,
    humidity_pct: float,
) -> None:
    sim[0].set_values(temperature_c=temperature_c, humidity_pct=humidity_pct)
    assert sensor.read() is None
    assert sensor.stats.implausible == 1
    sim[0].set_values(temperature_c=-40.0, humidity_pct=100.0)  # the limits themselves pass
    sample = sensor.read()
    assert sample is not None and (sample.temperature_c, sample.humidity_pct) == (-40.0, 100.0)


def test_rs485_is_not_applied_by_default(sensor: ModbusSensor) -> None:
    # A pty refuses TIOCSRS485, so merely opening and reading proves it was not attempted.
    assert sensor.connect()
    assert values(sensor.read()) == (4.2, 55.6)


def test_rs485_forced_on_a_pty_is_a_clear_error(sim: tuple[SimulatedXYMD02, str]) -> None:
    spec = SensorSpec(port=sim[1], timeout_s=TIMEOUT_S, rs485=True, rs485_delay_before_tx_s=0.001)
    with ModbusSensor(spec) as sensor:
        with pytest.raises(SensorConfigError, match=r"RS485 mode refused .*set rs485 = false"):
            sensor.connect()
        assert not sensor.connected
        with pytest.raises(SensorConfigError):
            sensor.read()  # a setting that can never work is not a transient error
        assert (sensor.stats.polls, sensor.stats.other_errors) == (1, 1)


def test_reconnects_when_the_port_vanishes_and_returns(tmp_path: Path) -> None:
    pair = PtyPair(tmp_path).start()
    simulator = SimulatedXYMD02(pair.device_path, temperature_c=3.0).start()
    sensor = ModbusSensor(SensorSpec(port=pair.host_path, timeout_s=TIMEOUT_S))
    try:
        assert values(sensor.read()) == (3.0, 45.0)
        simulator.stop()
        pair.close()  # socat exits: the pty hangs up and the link disappears
        assert sensor.read() is None  # I/O error on the open port
        assert sensor.read() is None  # the path is gone
        assert sensor.stats.connection_errors == 2
        assert not sensor.connected
        pair.start()
        simulator = SimulatedXYMD02(pair.device_path, temperature_c=7.0).start()
        sample = sensor.read()
        assert sample is not None and sample.temperature_c == 7.0
        stats = sensor.stats
        assert (stats.polls, stats.ok, stats.connection_errors) == (4, 2, 2)
        assert accounted(stats) == stats.polls
    finally:
        sensor.close()
        simulator.stop()
        pair.close()


# -- polling loop --------------------------------------------------------------------------


def test_poll_forever_stops_on_the_event(sim: tuple[SimulatedXYMD02, str]) -> None:
    samples: list[SensorSample] = []
    stop = threading.Event()

    def on_sample(sample: SensorSample) -> None:
        samples.append(sample)
        if len(samples) == 3:
            stop.set()

    spec = SensorSpec(port=sim[1], timeout_s=TIMEOUT_S, interval_s=0.02)
    with ModbusSensor(spec) as sensor:
        assert poll_forever(sensor, on_sample, stop) == 3
    assert [s.temperature_c for s in samples] == [4.2, 4.2, 4.2]


def test_poll_forever_keeps_the_interval_and_wakes_on_stop(
    sim: tuple[SimulatedXYMD02, str],
) -> None:
    spec = SensorSpec(port=sim[1], timeout_s=TIMEOUT_S, interval_s=0.2)
    with ModbusSensor(spec) as sensor:
        started = time.monotonic()
        assert poll_forever(sensor, lambda _: None, threading.Event(), max_polls=3) == 3
        assert 0.35 <= time.monotonic() - started < 1.5  # three polls span two intervals

        long = ModbusSensor(SensorSpec(port=sim[1], timeout_s=TIMEOUT_S, interval_s=60))
        sensor.close()  # hand the port over
        stop = threading.Event()
        thread = threading.Thread(target=poll_forever, args=(long, lambda _: None, stop))
        thread.start()
        time.sleep(0.1)
        stop.set()
        thread.join(timeout=2)
        assert not thread.is_alive()
        long.close()


def test_poll_forever_survives_errors_and_a_failing_handler(
    sim: tuple[SimulatedXYMD02, str],
) -> None:
    sim[0].corrupt_next_crc()
    calls: list[SensorSample] = []

    def on_sample(sample: SensorSample) -> None:
        calls.append(sample)
        if len(calls) == 1:
            raise RuntimeError("downstream hiccup")

    spec = SensorSpec(port=sim[1], timeout_s=TIMEOUT_S, interval_s=0.01)
    with ModbusSensor(spec) as sensor:
        assert poll_forever(sensor, on_sample, threading.Event(), max_polls=3) == 3
        assert (sensor.stats.crc_errors, sensor.stats.ok) == (1, 2)
    assert len(calls) == 2
