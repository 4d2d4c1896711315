"""The sensor_fault rule against the real database: a device's health readings (kind `health`)
open a fault that raises one alert once it has lasted the grace period, whether a reading or the
clock shows it; the sensor working again (a health reading without a fault, or a sample from
it) ends the alert; faults of two sensors of one device are apart."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerts.engine import AlertEngine, EngineSettings
from tests.support.alert_peers import env_row, make_shipment
from tests.support.api import api_harness
from tracehub.config import Settings

pytestmark = pytest.mark.integration


def health_row(device: str, seq: int, ts: datetime, component: str, fault: str) -> dict[str, Any]:
    return {
        "device_id": device,
        "seq": seq,
        "ts": ts,
        "kind": "health",
        "data": {"component": component, "fault": fault, "detail": f"{fault} on the line"},
        "loc": None,
    }


def test_a_lasting_sensor_fault_raises_one_alert_and_recovery_ends_it(stack: Settings) -> None:
    with api_harness(stack) as h:
        now = datetime.now(UTC).replace(microsecond=0)
        with h.connect() as conn:
            s = make_shipment(conn, uuid.uuid4().hex[:10], since=now - timedelta(hours=1))
        reply = h.client.post(
            "/alerts/rules",
            headers=h.headers("logistics", org_id=s.carrier_org),  # a party of the shipment
            json={
                "rule_id": f"fault-{s.shipment_id}",
                "kind": "sensor_fault",
                "shipment_id": s.shipment_id,
                "params": {"grace_s": 120},
                "severity": "critical",
            },
        )
        assert reply.status_code == 201, reply.text
        bad = h.client.post(
            "/alerts/rules",
            headers=h.headers("logistics"),
            json={
                "rule_id": f"bad-{s.shipment_id}",
                "kind": "sensor_fault",
                "shipment_id": s.shipment_id,
                "params": {"silent_s": 5},
            },
        )
        assert bad.status_code == 422 and "grace_s" in bad.text

        engine = AlertEngine(h.connect, EngineSettings(cache_ttl_s=0))
        t0 = now - timedelta(minutes=30)
        dev = s.device_id
        # Sensor A times out and keeps failing: within the grace, no alert (reading or clock).
        assert engine.evaluate([health_row(dev, 1, t0, "probe-a", "timeout")]) == []
        assert (
            engine.evaluate([health_row(dev, 2, t0 + timedelta(seconds=60), "probe-a", "timeout")])
            == []
        )
        assert engine.tick(t0 + timedelta(seconds=119)) == []
        # Sensor B of the same device works: that ends nothing of A's.
        engine.evaluate([health_row(dev, 3, t0 + timedelta(seconds=100), "probe-b", "none")])
        # The clock runs out A's grace period: one alert, started when the fault began.
        raised = engine.tick(t0 + timedelta(seconds=121))
        assert len(raised) == 1
        assert engine.tick(t0 + timedelta(seconds=200)) == []
        # A fault reported by a reading after the grace period: no second alert.
        assert (
            engine.evaluate(
                [health_row(dev, 4, t0 + timedelta(seconds=300), "probe-a", "exception_response")]
            )
            == []
        )
        # A works again: the alert ends.
        engine.evaluate([health_row(dev, 5, t0 + timedelta(seconds=400), "probe-a", "none")])
        # A second episode, this time ended by a sample from the sensor before the grace.
        engine.evaluate(
            [health_row(dev, 6, t0 + timedelta(seconds=500), "probe-a", "out_of_range")]
        )
        sample = env_row(dev, 7, t0 + timedelta(seconds=550), 5.0)
        sample["data"]["sensor"] = "probe-a"
        engine.evaluate([sample])
        assert engine.tick(t0 + timedelta(seconds=900)) == []
        # A third, lasting past the grace by readings alone: raised by the reading itself.
        engine.evaluate([health_row(dev, 8, t0 + timedelta(seconds=1000), "probe-b", "crc_error")])
        raised_b = engine.evaluate(
            [health_row(dev, 9, t0 + timedelta(seconds=1130), "probe-b", "crc_error")]
        )
        assert len(raised_b) == 1
        engine.close()
        with h.connect() as conn:
            alerts = conn.execute(
                "SELECT kind, severity, started_at, ended_at, detail->>'component',"
                " detail->>'fault' FROM alerts WHERE shipment_id = %s ORDER BY started_at",
                (s.shipment_id,),
            ).fetchall()
    assert [a[:4] for a in alerts] == [
        ("sensor_fault", "critical", t0, t0 + timedelta(seconds=400)),
        ("sensor_fault", "critical", t0 + timedelta(seconds=1000), None),
    ]
    assert alerts[0][4] == "probe-a" and alerts[1][4:] == ("probe-b", "crc_error")
