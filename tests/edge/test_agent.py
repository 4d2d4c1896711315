"""The edge agent end to end with the real broker: a simulated R2000 reader on a pseudo-terminal
and a simulated Modbus sensor on another feed the agent process; readings arrive signed, in
sequence, hash-chained. Then the resilience drill: the broker goes down, the agent is killed
with SIGKILL during the outage and restarted, the broker comes back, and every reading produced
arrives, in order, with the chain unbroken (more than once, possibly: without a gateway to
acknowledge them the agent sends them again on each new connection).

The broker is one of the test's own (tests.support.broker), so the drill stops no shared service;
the gateway's view is a plain subscriber with the gateway's certificate."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from certs.pki import PKI
from edge.rfid_reader import r2000
from tests.support.broker import PrivateBroker, private_broker
from tests.support.edge import enrol_device
from tests.support.modbus_sim import simulated_sensor
from tests.support.mqtt import gateway_client
from tests.support.processes import wait_until
from tracehub.config import PROJECT_DIR, Settings
from tracehub.envelope import reading_hash
from tracehub.reading import GENESIS_PREV
from tracehub.verify import InMemoryDirectory, TrustStore, verify_envelope

pytestmark = pytest.mark.integration

PC_96_BITS = bytes([0x30, 0x00])  # protocol control word: 6 words of EPC


def _tag_frame(epc: bytes, antenna: int = 0, rssi: int = 0x50) -> bytes:
    """An R2000 real-time inventory reply (cmd 0x89) as the reader sends it."""
    return r2000.encode_command(0x89, bytes([antenna]) + PC_96_BITS + epc + bytes([rssi]), 0x01)


def _epc(n: int) -> bytes:
    """A distinct SGTIN-96 EPC per n (the TDS example with its serial replaced)."""
    return bytes.fromhex("3074257BF7194E4000") + n.to_bytes(3, "big")


class Collector:
    """The gateway's view: every message on the device's topic, in arrival order."""

    def __init__(self, settings: Settings, device_id: str) -> None:
        self.messages: queue.Queue[bytes] = queue.Queue()
        self.arrived: list[bytes] = []
        self.client = gateway_client(settings)
        topic = f"tracehub/v1/devices/{device_id}/readings"
        self.client.on_connect = lambda c, u, f, reason, p: c.subscribe(topic, qos=1)
        self.client.on_message = lambda c, u, message: self.messages.put(message.payload)
        self.client.reconnect_delay_set(0.2, 2)
        # A persistent session, as the gateway has: the broker keeps the subscription across its
        # own restart and queues what arrives before this client is back.
        session = Properties(PacketTypes.CONNECT)
        session.SessionExpiryInterval = 600
        self.client.connect(
            settings.mqtt_host,
            settings.mqtt_tls_port,
            keepalive=10,
            clean_start=False,
            properties=session,
        )
        self.client.loop_start()

    def drain(self) -> list[bytes]:
        while True:
            try:
                self.arrived.append(self.messages.get_nowait())
            except queue.Empty:
                return self.arrived

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture()
def device(stack: Settings) -> str:
    return enrol_device(stack)


@pytest.fixture()
def broker(stack: Settings, tmp_path: Path) -> Iterator[PrivateBroker]:
    with private_broker(tmp_path, stack) as private:
        yield private


@pytest.fixture()
def reader_pty() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    os.set_blocking(master, False)
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


def _config(tmp_path: Path, settings: Settings, device_id: str, reader: str, sensor: str) -> Path:
    pki = settings.pki_dir
    config = tmp_path / "agent.toml"
    config.write_text(
        f"""
[device]
id = "{device_id}"
certificate = "{pki}/devices/{device_id}/cert.pem"
key = "{pki}/devices/{device_id}/key.pem"
location = "4006381333931"

[broker]
host = "{settings.mqtt_host}"
port = {settings.mqtt_tls_port}
ca = "{pki}/ca-bundle.pem"

[spool]
path = "{tmp_path}/spool/spool.sqlite3"

[[readers]]
name = "dock-door-1"
protocol = "r2000"
port = "{reader}"
smoothing_window_s = 0.3

[[sensors]]
name = "coldroom-1"
port = "{sensor}"
interval_s = 0.5
"""
    )
    return config


def _start_agent(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(PROJECT_DIR / ".venv/bin/python"), "-m", "edge.cli", "run", "--config", str(config)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        cwd=PROJECT_DIR,
    )


def _wait_running(tmp_path: Path, pid: int) -> None:
    """Until the agent process ``pid`` writes its status (its ports are open by then, nearly:
    a reader's port opens in its thread as the agent starts), plus a moment."""
    wait_until(lambda: _status(tmp_path).get("pid") == pid, 30, f"agent {pid} to run")
    time.sleep(0.3)


def _status_cli(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(PROJECT_DIR / ".venv/bin/python"),
            "-m",
            "edge.cli",
            "status",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        timeout=60,
        check=False,
    )


def _status(tmp_path: Path) -> dict[str, object]:
    try:
        loaded: dict[str, object] = json.loads((tmp_path / "spool" / "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return loaded


def _unsent(tmp_path: Path) -> int:
    """Readings the broker has not taken yet (the hub's acknowledgement is not tested here)."""
    spool = _status(tmp_path).get("spool")
    return int(spool["unsent"]) if isinstance(spool, dict) else -1


def _read_events(tmp_path: Path) -> int:
    readers = _status(tmp_path).get("readers")
    return int(readers["dock-door-1"]["read_events"]) if isinstance(readers, dict) else 0


def _feed(master: int, tags: range) -> None:
    for n in tags:
        frame = _tag_frame(_epc(n))
        # Fragmented, and each tag seen three times, as a real reader reports it.
        for _ in range(3):
            os.write(master, frame[:5])
            time.sleep(0.01)
            os.write(master, frame[5:])
        with contextlib.suppress(BlockingIOError):
            os.read(master, 4096)  # discard the inventory commands the agent sends


def test_readings_survive_broker_outage_and_agent_kill(
    stack: Settings,
    broker: PrivateBroker,
    device: str,
    reader_pty: tuple[int, str],
    tmp_path: Path,
) -> None:
    master, reader_port = reader_pty
    settings = broker.settings(stack)
    pki = PKI(stack.pki_dir)
    trust = TrustStore.from_pem_files(pki.ca_bundle_path, pki.crl_path)
    directory = InMemoryDirectory([pki.device(device)[0].certificate])
    log = tmp_path / "agent.log"
    collector = Collector(settings, device)
    with simulated_sensor(tmp_path, temperature_c=4.2, humidity_pct=55.6) as (sensor, port):
        config = _config(tmp_path, settings, device, reader_port, port)
        agent = _start_agent(config, log)
        try:
            # 1. Normal operation: tags and samples arrive.
            _wait_running(tmp_path, agent.pid)
            _feed(master, range(0, 5))
            wait_until(lambda: _read_events(tmp_path) >= 5, 20, "5 read events")
            wait_until(lambda: _unsent(tmp_path) == 0, 20, "the spool to be sent")

            # 2. The broker goes down; readings pile up in the spool.
            broker.stop()
            sensor.set_values(temperature_c=9.1)  # an excursion while nobody listens
            _feed(master, range(5, 10))
            wait_until(lambda: _read_events(tmp_path) >= 10, 20, "5 more read events")
            depth_before_kill = _unsent(tmp_path)
            assert depth_before_kill >= 5

            # 3. The agent dies hard during the outage and comes back.
            agent.send_signal(signal.SIGKILL)
            agent.wait(10)
            agent = _start_agent(config, log)
            _wait_running(tmp_path, agent.pid)
            _feed(master, range(10, 15))
            # The counters continue across the restart: 10 before it, 5 after.
            wait_until(lambda: _read_events(tmp_path) >= 15, 20, "read events after the restart")
            assert _unsent(tmp_path) >= depth_before_kill

            # 4. The broker returns; the spool is sent. The outage's error is history now.
            broker.start()
            wait_until(lambda: _unsent(tmp_path) == 0, 60, "the spool to be sent after the outage")
            shown = _status_cli(config)
            assert shown.returncode == 0, shown.stdout + shown.stderr
            assert "broker connected since" in shown.stdout
            assert "(resolved)" in shown.stdout and "(current)" not in shown.stdout, shown.stdout
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(20)
    last_seq = json.loads((tmp_path / "spool" / "status.json").read_text())["spool"]["last"][0]
    wait_until(
        lambda: len({m for m in collector.drain()}) >= last_seq, 20, "every reading to arrive"
    )
    collector.close()

    by_seq: dict[int, bytes] = {}
    first_arrival_order: list[int] = []
    for envelope in collector.drain():
        verified = verify_envelope(envelope, trust, directory, topic_device_id=device)
        seq = verified.reading.seq
        if seq in by_seq:
            assert by_seq[seq] == envelope, f"two different readings claim seq {seq}"
            continue
        by_seq[seq] = envelope
        first_arrival_order.append(seq)

    assert sorted(by_seq) == list(range(1, last_seq + 1)), "a sequence number is missing"
    assert first_arrival_order == sorted(first_arrival_order), "readings arrived out of order"
    prev = GENESIS_PREV
    for seq in range(1, last_seq + 1):
        reading = verify_envelope(by_seq[seq], trust, directory).reading
        assert reading.prev == prev, f"hash chain broken at seq {seq}"
        prev = reading_hash(by_seq[seq])

    readings = [verify_envelope(e, trust, directory).reading for e in by_seq.values()]
    epcs = {r.data["epc"] for r in readings if r.kind == "rfid"}
    assert epcs == {_epc(n).hex().upper() for n in range(15)}
    temperatures = {r.data["temperature_c"] for r in readings if r.kind == "environment"}
    assert {4.2, 9.1} <= temperatures
    assert all(r.loc == "4006381333931" for r in readings)
