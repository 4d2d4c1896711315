"""Edge health with the real agent process.

- kill -9 in the middle of a burst of tag reads, while the read events are still open in the
  smoothing window: after a restart every tag the agent had read is in a signed reading, once,
  with all its sightings counted; `tracehub-edge status` says the killed agent is not running,
  and the counters continue where they were.
- A dead sensor (a serial line nobody answers) becomes signed health readings; through a
  private broker, a gateway process and its store, the gateway's alert engine raises a
  sensor-fault alert once the rule's grace period has passed, and not long after.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sqlite3
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certs.pki import PKI
from tests.support.alert_peers import make_shipment
from tests.support.broker import private_broker
from tests.support.edge import EdgeAgent, enrol_device, epc, tag_frame
from tests.support.gateway import private_database, start_gateway, subscribed
from tests.support.processes import free_port, wait_until
from tracehub.config import Settings
from tracehub.verify import InMemoryDirectory, TrustStore, verify_envelope

pytestmark = pytest.mark.integration

SIGHTINGS_PER_TAG = 3


def _verifier(stack: Settings, device: str) -> tuple[TrustStore, InMemoryDirectory]:
    pki = PKI(stack.pki_dir)
    trust = TrustStore.from_pem_files(pki.ca_bundle_path, pki.crl_path)
    return trust, InMemoryDirectory([pki.device(device)[0].certificate])


def _spool_rows(agent: EdgeAgent, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(agent.dir / "spool.sqlite3") as db:
        return db.execute(sql).fetchall()


def _tag_reads(agent: EdgeAgent) -> int:
    readers = agent.status().get("readers")
    return int(readers["dock-door-1"]["tag_reads"]) if isinstance(readers, dict) else -1


def _sight(agent: EdgeAgent, tags: range, pause_s: float = 0.0) -> None:
    """Each tag seen SIGHTINGS_PER_TAG times in a row, as a reader repeats a tag in its field."""
    for n in tags:
        for _ in range(SIGHTINGS_PER_TAG):
            os.write(agent.master, tag_frame(epc(n)))
        with contextlib.suppress(BlockingIOError):
            os.read(agent.master, 4096)  # the inventory commands the agent sends
        if pause_s:
            time.sleep(pause_s)


def test_kill_during_a_burst_loses_no_read_and_status_says_not_running(
    stack: Settings, tmp_path: Path
) -> None:
    device = enrol_device(stack, "burst")
    broker_port = free_port()  # no broker: nothing leaves the spool, so the spool is the record
    settings = dataclasses.replace(stack, mqtt_host="127.0.0.1", mqtt_tls_port=broker_port)
    # A 15-second window: the burst's read events are all still open when the agent dies,
    # however slow the shared test machine is.
    agent = EdgeAgent(tmp_path, settings, device, window_s=15.0)
    try:
        agent.start()
        wait_until(lambda: agent.status().get("running") is True, 30, "the agent to run")
        assert agent.status_cli().returncode == 0
        # 1. A first burst, wholly read (the status counts every sighting) ...
        _sight(agent, range(0, 30))
        wait_until(lambda: _tag_reads(agent) == 30 * SIGHTINGS_PER_TAG, 20, "30 tags read")
        # 2. ... and a second one in progress when the agent is killed.
        second = threading.Thread(target=_sight, args=(agent, range(30, 60), 0.02))
        second.start()
        time.sleep(0.3)
        assert agent.process is not None
        agent.process.send_signal(signal.SIGKILL)
        agent.process.wait(10)
        second.join()
        killed_counted = _tag_reads(agent)

        # The sightings were in the journal, not in readings: without it they were lost.
        journaled = {str(e) for (e,) in _spool_rows(agent, "select epc from sightings")}
        outbox_before = _spool_rows(agent, "select count(*) from outbox")[0][0]
        first_burst = {epc(n).hex().upper() for n in range(30)}
        assert first_burst <= journaled and outbox_before == 0

        # Status: the killed agent is not running, whatever its last status file said.
        done = agent.status_cli()
        assert done.returncode == 3, done.stdout + done.stderr
        assert "not running (did not stop cleanly; last alive at" in done.stdout
        assert agent.status()["running"] is True  # the file the killed agent left behind

        # 3. Restart: the journal is replayed; a clean stop closes every event into the spool.
        agent.start()
        wait_until(lambda: agent.status_cli().returncode == 0, 30, "the restarted agent")
        wait_until(lambda: _tag_reads(agent) >= killed_counted, 10, "counters carried over")
        # No broker: the last error is the connection's, with its time, and current.
        wait_until(lambda: "(current): connect" in agent.status_cli().stdout, 30, "the error")
        agent.stop()
        done = agent.status_cli()
        assert done.returncode == 3 and "stopped cleanly at" in done.stdout, done.stdout
    finally:
        agent.close()

    trust, directory = _verifier(stack, device)
    readings = [
        verify_envelope(bytes(e), trust, directory).reading  # type: ignore[arg-type]
        for (e,) in _spool_rows(agent, "select envelope from outbox order by seq")
    ]
    tags = [r.data["epc"] for r in readings if r.kind == "rfid"]
    # Every tag read before the kill is in a reading (nothing journaled was lost) ...
    assert journaled <= set(tags)
    assert first_burst <= set(tags)
    # ... and the first burst once each, with every sighting counted: the replayed sightings
    # and any after the restart fall in one smoothing window, as without the crash.
    for r in readings:
        if r.kind == "rfid" and r.data["epc"] in first_burst:
            assert r.data["read_count"] == SIGHTINGS_PER_TAG, r.data
            assert r.data["antenna"] == 1  # wire id 0 is the port labelled "Antenna 1"
    assert sorted(t for t in tags if t in first_burst) == sorted(first_burst)
    assert _spool_rows(agent, "select count(*) from sightings") == [(0,)]
    assert [r.seq for r in readings] == list(range(1, len(readings) + 1))


def test_a_dead_sensor_raises_a_sensor_fault_alert_within_its_grace_period(
    stack: Settings, tmp_path: Path
) -> None:
    device = enrol_device(stack, "dead")
    grace_s = 6.0
    tick_s = 5.0  # the gateway's alert worker ticks every 5 s
    master, slave = os.openpty()  # a serial line with nothing at the other end
    with private_broker(tmp_path, stack) as broker, private_database(stack) as (env, connect):
        env = {**env, "TRACEHUB_MQTT_TLS_PORT": str(broker.port)}
        with connect() as conn:
            shipment = make_shipment(
                conn,
                uuid.uuid4().hex[:10],
                since=datetime.now(UTC) - timedelta(minutes=1),
                device_id=device,
            )
            conn.execute(
                "INSERT INTO alert_rules (rule_id, kind, shipment_id, params)"
                " VALUES (%s, 'sensor_fault', %s, %s)",
                (
                    f"fault-{shipment.shipment_id}",
                    shipment.shipment_id,
                    f'{{"grace_s": {grace_s}}}',
                ),
            )
            conn.commit()
        name = f"health{uuid.uuid4().hex[:8]}"
        gateway_log = tmp_path / "gateway.log"
        gateway = start_gateway(name, name, gateway_log, env=env)
        agent = EdgeAgent(
            tmp_path,
            broker.settings(stack),
            device,
            extra=f"""
[[sensors]]
name = "coldroom-1"
port = "{os.ttyname(slave)}"
timeout_s = 0.3
interval_s = 0.5
""",
        )
        try:
            # The hub is up before the sensor dies, so the time measured is the engine's.
            wait_until(lambda: subscribed(gateway_log), 90, "the gateway to subscribe")
            agent.start()

            def alert() -> tuple[object, ...] | None:
                with connect() as conn:
                    return conn.execute(
                        "SELECT kind, started_at, opened_at, detail, device_id FROM alerts"
                        " WHERE shipment_id = %s",
                        (shipment.shipment_id,),
                    ).fetchone()

            wait_until(lambda: alert() is not None, 90, "a sensor-fault alert")
            status = agent.status()
        finally:
            agent.close()
            gateway.send_signal(signal.SIGTERM)
            gateway.wait(60)
            os.close(master)
            os.close(slave)
        found = alert()
        with connect() as conn:
            health = conn.execute(
                "SELECT ts, data, envelope FROM readings WHERE device_id = %s AND kind = 'health'"
                " ORDER BY seq",
                (device,),
            ).fetchall()
    assert found is not None
    kind, started_at, opened_at, detail, alert_device = found
    assert (kind, alert_device) == ("sensor_fault", device)
    assert isinstance(detail, dict) and detail["fault"] == "timeout"
    assert detail["component"] == "coldroom-1"
    assert "epcis_event_id" in detail and "epcis_error" not in detail  # recorded as EPCIS too
    # The fault started with the first health reading; the alert waited out the grace period
    # and came within one tick of the worker (plus a little) after it.
    assert health, "no health reading stored"
    assert started_at == health[0][0]
    assert isinstance(opened_at, datetime) and isinstance(started_at, datetime)
    waited = (opened_at - started_at).total_seconds()
    assert grace_s <= waited <= grace_s + tick_s + 5, waited
    # The health reading is the device's signed statement.
    trust, directory = _verifier(stack, device)
    verified = verify_envelope(bytes(health[0][2]), trust, directory, topic_device_id=device)
    assert verified.reading.kind == "health"
    assert verified.reading.data["fault"] == "timeout"
    assert verified.reading.data["component"] == "coldroom-1"
    sensor = status["sensors"]["coldroom-1"]
    assert sensor["fault"] == "timeout" and sensor["health_readings"] >= 1
