"""The agent's own state without a broker: the liveness lock, the sighting journal and how the
spool lets sightings go, counters saved across runs, what status says about the last error, and
sensor faults turned into signed health readings (against the simulated Modbus sensor)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge import cli
from edge import config as edge_config
from edge.agent import Agent
from edge.journal import Journal, Sighting
from edge.liveness import AgentLock, AlreadyRunningError, probe
from edge.sensors import poll_forever
from edge.spool import Spool
from tests.support.modbus_sim import SimulatedXYMD02, simulated_sensor
from tests.support.processes import free_port, wait_until
from tracehub.envelope import parse_envelope

pytestmark = pytest.mark.timeout(120)


# -- liveness -------------------------------------------------------------------------------


def test_the_lock_tells_a_running_agent_from_a_dead_one(tmp_path: Path) -> None:
    path = tmp_path / "agent.lock"
    assert not probe(path).running  # never ran
    lock = AgentLock(path)
    assert probe(path).running and probe(path).pid == os.getpid()
    with pytest.raises(AlreadyRunningError, match=f"pid {os.getpid()}"):
        AgentLock(path)  # a second agent on the same spool
    lock.release()
    assert probe(path) == probe(path) and not probe(path).running

    # A process holding it, killed with SIGKILL: the kernel lets go of the lock.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from edge.liveness import AgentLock;"
            f" AgentLock(Path({str(path)!r})); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        assert probe(path).running and probe(path).pid == holder.pid
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        assert not probe(path).running and probe(path).pid == holder.pid
    finally:
        holder.kill()
        holder.wait(10)


# -- journal and spool ----------------------------------------------------------------------


def test_sightings_leave_the_journal_only_with_the_reading_that_holds_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "spool.sqlite3"
    spool = Spool(path)
    journal = Journal(path)
    for tag, antenna, at in [
        ("AAAA", 1, 1.0),
        ("AAAA", 1, 2.0),
        ("AAAA", 1, 3.0),  # later than the event below: still open
        ("AAAA", 2, 2.0),  # same tag, other antenna: another event
        ("BBBB", 1, 2.0),
        ("62E3086CED", None, 2.0),  # a card: no antenna
    ]:
        journal.record(Sighting("r", tag, antenna, None, at))
    assert journal.count() == 6

    def build(seq: int, prev: str) -> bytes:
        return f"reading {seq}".encode()

    spool.append_many(
        [("dev", build), ("dev", build)],
        consumed=[("r", "AAAA", 1, 2.0), ("r", "62E3086CED", None, 2.0)],
    )
    left = [(s.epc, s.antenna, s.at) for s in journal.pending("r")]
    assert left == [("AAAA", 2, 2.0), ("BBBB", 1, 2.0), ("AAAA", 1, 3.0)]
    assert spool.depth() == 2
    journal.discard([("r", "BBBB", 1, 2.0)])  # a refused reading's sightings
    assert [s.epc for s in journal.pending("r")] == ["AAAA", "AAAA"]
    assert journal.pending("other") == []
    journal.close()
    spool.close()


def test_counters_are_saved_whole_and_read_back(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite3")
    assert spool.load_totals() == {}
    spool.save_totals({"reader.a.tag_reads": 5, "publisher.published": 2})
    spool.save_totals({"reader.a.tag_reads": 7})
    spool.sync()
    spool.close()
    again = Spool(tmp_path / "spool.sqlite3")
    assert again.load_totals() == {"reader.a.tag_reads": 7, "publisher.published": 2}
    again.close()


# -- status: the last error -----------------------------------------------------------------


def test_last_error_says_when_and_whether_it_is_current() -> None:
    error = {"last_error": "connect: refused", "last_error_at": "2026-12-03T08:00:00+00:00"}
    connected = {**error, "connected": True, "connected_since": "2026-12-03T08:00:05+00:00"}
    text = cli._last_error(connected, running=True)
    assert "2026-12-03T08:00:00+00:00" in text and "(resolved)" in text and "(current)" not in text
    # An error after the connection was made, or while disconnected, is current.
    later = {**connected, "last_error_at": "2026-12-03T08:00:09+00:00"}
    assert "(current)" in cli._last_error(later, running=True)
    down = {**error, "connected": False, "connected_since": ""}
    assert "(current)" in cli._last_error(down, running=True)
    # A dead agent's last error is history, not a current state.
    assert "(current)" not in cli._last_error(down, running=False)
    assert cli._last_error({"last_error": ""}, running=True) == "no error"


# -- sensor faults as health readings -------------------------------------------------------


def _device_identity(directory: Path) -> tuple[Path, Path]:
    """A self-signed P-256 certificate and key: the agent signs with it (nobody verifies)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "health-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture()
def sim(tmp_path: Path) -> Iterator[tuple[SimulatedXYMD02, str]]:
    with simulated_sensor(tmp_path, temperature_c=4.2, humidity_pct=55.6) as pair:
        yield pair


def _agent_with(tmp_path: Path, device_id: str, inputs: str) -> Agent:
    """An agent of ``device_id`` (self-signed, its broker a closed port) with ``inputs``: the
    configuration's sensor or reader tables."""
    cert, key = _device_identity(tmp_path)
    config = tmp_path / "agent.toml"
    config.write_text(
        f"""
[device]
id = "{device_id}"
certificate = "{cert}"
key = "{key}"

[broker]
port = {free_port()}
ca = "{cert}"

[spool]
path = "{tmp_path}/spool/spool.sqlite3"
{inputs}"""
    )
    return Agent(edge_config.load(config))


def _agent(tmp_path: Path, sensor_port: str) -> Agent:
    sensor = f"""
[[sensors]]
name = "coldroom-1"
port = "{sensor_port}"
timeout_s = 0.5
interval_s = 0.01
"""
    return _agent_with(tmp_path, "health-test", sensor)


def test_sensor_faults_become_signed_health_readings(
    tmp_path: Path, sim: tuple[SimulatedXYMD02, str]
) -> None:
    simulator, port = sim
    agent = _agent(tmp_path, port)
    worker = agent.sensors[0]

    def poll(times: int) -> None:
        poll_forever(
            worker.sensor,
            worker.on_sample,
            threading.Event(),
            max_polls=times,
            on_failure=worker.on_failure,
        )

    try:
        simulator.stay_silent()
        simulator.stay_silent()
        poll(2)  # two timeouts: one fault, reported once
        simulator.respond_with_exception(4)
        poll(1)  # another fault: reported
        poll(1)  # the sensor answers: the fault is over, then the sample
        simulator.set_values(temperature_c=3276.7)  # 0x7FFF: a sensor that lost its probe
        poll(1)
        status = worker.status()
    finally:
        agent.stop()
    spool = Spool(tmp_path / "spool" / "spool.sqlite3")
    try:
        readings = [parse_envelope(r.envelope).reading for r in spool.pending(limit=100)]
    finally:
        spool.close()
    assert [(r.kind, r.data.get("fault")) for r in readings] == [
        ("health", "timeout"),
        ("health", "exception_response"),
        ("health", "none"),
        ("environment", None),
        ("health", "out_of_range"),
    ]
    timeout, exception, recovered, sample, out_of_range = readings
    assert timeout.data["component"] == "coldroom-1" and timeout.data["failures"] == 1
    assert exception.data["failures"] == 3 and exception.data["since"] == timeout.data["since"]
    assert "exception response 4" in exception.data["detail"]
    assert recovered.data["since"] == timeout.data["since"]
    assert sample.data == {"temperature_c": 4.2, "humidity_pct": 55.6, "sensor": "coldroom-1"}
    assert out_of_range.data["value"] == 3276.7 and "since" in out_of_range.data
    assert status["fault"] == "out_of_range" and status["health_readings"] == 4


def test_a_lasting_fault_is_reported_again_after_the_repeat_interval(
    tmp_path: Path, sim: tuple[SimulatedXYMD02, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    simulator, port = sim
    monkeypatch.setattr("edge.agent.HEALTH_REPEAT_S", 0.3)
    agent = _agent(tmp_path, port)
    worker = agent.sensors[0]
    try:
        for _ in range(3):
            simulator.respond_with_exception(4)
        stop = threading.Event()
        thread = threading.Thread(
            target=poll_forever,
            args=(worker.sensor, worker.on_sample, stop),
            kwargs={"max_polls": 3, "on_failure": worker.on_failure},
        )
        thread.start()
        thread.join(30)
        assert worker.health_readings == 1  # three failures within the interval: one report
        time.sleep(0.35)
        simulator.respond_with_exception(4)
        poll_forever(
            worker.sensor,
            worker.on_sample,
            threading.Event(),
            max_polls=1,
            on_failure=worker.on_failure,
        )
        wait_until(lambda: worker.health_readings == 2, 5, "the repeated report")
    finally:
        agent.stop()


def test_card_reads_become_card_id_readings_without_antenna_or_rssi(tmp_path: Path) -> None:
    """An RDM6300 card through the agent: a reading naming a card id, not an EPC, and neither
    an antenna nor a signal strength it never measured."""
    from edge.rfid_reader.rdm6300 import Rdm6300Decoder, encode_frame

    master, slave = os.openpty()
    try:
        reader = f"""
[[readers]]
name = "gate-125k"
protocol = "rdm6300"
port = "{os.ttyname(slave)}"
"""
        agent = _agent_with(tmp_path, "card-test", reader)
        worker = agent.readers[0]
        [read] = Rdm6300Decoder().feed(encode_frame(bytes.fromhex("62E3086CED")))
        worker.on_message(read)
        worker.on_message(read)
        assert agent.journal.count() == 2
        worker.flush(float("inf"))
        assert agent.journal.count() == 0  # gone with the reading that holds them
        [spooled] = agent.spool.pending()
        agent.stop()
    finally:
        os.close(master)
        os.close(slave)
    reading = parse_envelope(spooled.envelope).reading
    assert reading.kind == "rfid" and reading.data["card_id"] == "62E3086CED"
    assert reading.data["read_count"] == 2
    assert not {"epc", "antenna", "rssi_dbm"} & reading.data.keys()
