"""Alert rules against the real database and the real peers of every channel.

A scripted excursion gives exactly one alert (also across an engine restart and a redelivery),
delivered to a dashboard over SSE, the MQTT alert topic, an SMTP server and a webhook that fails
its first attempts; logistics staff acknowledge and resolve it through the API. Silence, wrong
location and custody gap each fire once.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb

from alerts.delivery import Deliverer, DeliverySettings, MqttPublisher
from alerts.engine import AlertEngine, EngineSettings
from alerts.outbound import OutboundPolicy
from alerts.worker import AlertWorker
from ingest.epcis import capture_events
from tests.support.alert_peers import (
    api_server,
    env_row,
    free_port,
    make_shipment,
    mqtt_alerts,
    smtp_server,
    sse_reader,
    webhook_receiver,
)
from tests.support.api import ApiHarness, api_harness
from tests.support.mqtt import admit_gateway, service_files
from tests.support.processes import wait_until
from tracehub.config import Settings, SmtpSettings

pytestmark = pytest.mark.integration


@pytest.fixture()
def harness(stack: Settings) -> Iterator[ApiHarness]:
    with api_harness(stack) as h:
        yield h


def engine_for(h: ApiHarness) -> AlertEngine:
    return AlertEngine(h.connect, EngineSettings(cache_ttl_s=0))


def alerts_of(
    h: ApiHarness, shipment_id: str
) -> list[tuple[str, str, str, datetime, datetime | None]]:
    with h.connect() as conn:
        return [
            (str(r[0]), r[1], r[2], r[3], r[4])
            for r in conn.execute(
                "SELECT alert_id, rule_id, kind, started_at, ended_at FROM alerts"
                " WHERE shipment_id = %s ORDER BY opened_at",
                (shipment_id,),
            )
        ]


def deliveries(h: ApiHarness, alert_id: str) -> list[tuple[str, str, str, int]]:
    with h.connect() as conn:
        return [
            (r[0], r[1], r[2], r[3])
            for r in conn.execute(
                "SELECT channel, change, state, attempts FROM alert_deliveries"
                " WHERE alert_id = %s ORDER BY id",
                (alert_id,),
            )
        ]


def test_excursion_one_alert_all_channels_acknowledged_and_resolved(
    stack: Settings, harness: ApiHarness
) -> None:
    h = harness
    with h.connect() as conn:
        s = make_shipment(conn, uuid.uuid4().hex[:10])
    staff = h.headers("logistics", org_id=s.carrier_org)
    reply = h.client.post(
        "/alerts/rules",
        headers=staff,
        json={
            "rule_id": f"cold-{s.shipment_id}",
            "kind": "temperature_excursion",
            "shipment_id": s.shipment_id,
            "params": {"grace_s": 600},  # band 2..8 from the product
            "severity": "critical",
        },
    )
    assert reply.status_code == 201, reply.text
    pki = stack.pki_dir
    with (
        smtp_server() as (smtp_port, inbox),
        webhook_receiver(fail_first=2) as hook,
        api_server(h.config) as base_url,
        sse_reader(base_url, staff) as sse,
        mqtt_alerts(stack) as mqtt_seen,
    ):
        for body in (
            {"channel": "webhook", "target": hook.url, "shipment_id": s.shipment_id},
            {"channel": "email", "target": "cold-chain@example.com"},
        ):
            reply = h.client.post("/alerts/subscriptions", headers=staff, json=body)
            assert reply.status_code == 201, reply.text
            if body["channel"] == "webhook":
                hook.secret = reply.json()["secret"]
        cert, key = service_files(stack, admit_gateway(stack)[1])
        publisher = MqttPublisher(
            stack.mqtt_host,
            stack.mqtt_tls_port,
            ca_file=pki / "ca-bundle.pem",
            cert_file=cert,
            key_file=key,
        )
        deliverer = Deliverer(
            h.connect,
            DeliverySettings(
                smtp=SmtpSettings(host="127.0.0.1", port=smtp_port),
                webhook_policy=OutboundPolicy.from_settings(stack),
                backoff_base_s=0.3,
            ),
            mqtt=publisher,
        )
        deliverer.start()
        try:
            # One reading a minute: in band, then 9.5 °C from minute 2 to minute 14, then back.
            t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
            temps = [5.0, 5.0] + [9.5] * 13 + [5.0, 5.0]
            rows = [
                env_row(s.device_id, i + 1, t0 + timedelta(minutes=i), t)
                for i, t in enumerate(temps)
            ]
            first = engine_for(h)
            assert first.evaluate(rows[:9]) == []  # 7 minutes out: still within the grace
            first.close()  # a restart: the breach in progress is in the database
            second = engine_for(h)
            changed = second.evaluate(rows[9:])
            assert second.evaluate(rows) == []  # a redelivery changes nothing
            assert second.tick(datetime.now(UTC)) == []
            second.close()
            alerts = alerts_of(h, s.shipment_id)
            assert len(alerts) == 1, alerts
            alert_id, rule_id, kind, started, ended = alerts[0]
            assert set(changed) == {alert_id}
            assert (rule_id, kind) == (f"cold-{s.shipment_id}", "temperature_excursion")
            assert started == t0 + timedelta(minutes=2)  # the episode's first reading out
            assert ended == t0 + timedelta(minutes=15)  # the first reading back in band
            deliverer.wake()

            def all_delivered() -> bool:
                done = {(c, ch) for c, ch, st, _ in deliveries(h, alert_id) if st == "delivered"}
                return {
                    (c, ch)
                    for c in ("mqtt", "email", "webhook", "sse")
                    for ch in ("opened", "cleared")
                } <= done

            try:
                wait_until(all_delivered, 30, "every channel to deliver opened and cleared")
            except AssertionError:
                raise AssertionError(deliveries(h, alert_id)) from None
            assert sse.of(alert_id) == ["opened", "cleared"]
            assert sorted(mqtt_seen.of(alert_id)) == ["cleared", "opened"]
            topics = {t for _, t, m in mqtt_seen.messages if m["alert"]["alert_id"] == alert_id}
            assert topics == {"tracehub/v1/alerts/temperature_excursion"}
            mails = [m for m in inbox if m["X-TraceHub-Alert"] == alert_id]
            assert len(mails) == 2 and mails[0]["To"] == "cold-chain@example.com"
            assert "temperature_excursion" in mails[0]["Subject"]
            # The webhook failed twice (503) and was retried from the outbox with backoff.
            webhook_rows = [d for d in deliveries(h, alert_id) if d[0] == "webhook"]
            assert sum(d[3] for d in webhook_rows) == 2 + len(webhook_rows)
            assert len(hook.attempts) == 4 and hook.attempts[2] - hook.attempts[0] >= 0.3
            assert not hook.rejected
            assert sorted(p["change"] for p in hook.accepted) == ["cleared", "opened"]

            # Staff acknowledge and resolve it; wrong transitions are refused with a reason.
            url = f"/alerts/{alert_id}"
            assert (
                h.client.post(f"{url}/acknowledge", headers=h.headers("buyer")).status_code == 403
            )
            ack = h.client.post(f"{url}/acknowledge", headers=staff, json={"note": "on it"})
            assert ack.status_code == 200, ack.text
            assert ack.json()["state"] == "acknowledged" and ack.json()["acknowledged_by"]
            again = h.client.post(f"{url}/acknowledge", headers=staff)
            assert again.status_code == 409 and "already acknowledged" in again.json()["detail"]
            done = h.client.post(f"{url}/resolve", headers=staff, json={"note": "reefer fixed"})
            assert done.status_code == 200 and done.json()["resolution"] == "reefer fixed"
            late = h.client.post(f"{url}/acknowledge", headers=staff)
            assert late.status_code == 409 and "cannot become acknowledged" in late.json()["detail"]
            detail = h.client.get(url, headers=staff).json()
            assert [(x["from_state"], x["to_state"]) for x in detail["history"]] == [
                (None, "open"),
                ("open", "open"),  # condition cleared
                ("open", "acknowledged"),
                ("acknowledged", "resolved"),
            ]
            assert detail["history"][2]["note"] == "on it"
            assert {d["channel"] for d in detail["deliveries"]} == {
                "mqtt",
                "email",
                "webhook",
                "sse",
            }
            wait_until(lambda: sse.of(alert_id)[-2:] == ["acknowledged", "resolved"], 10, "SSE")
            listed = h.client.get(
                "/alerts", headers=staff, params={"shipment_id": s.shipment_id, "state": "resolved"}
            ).json()
            assert [a["alert_id"] for a in listed] == [alert_id]
            # The alert is an EPCIS event with its CBV 2.0 hash.
            assert detail["event_hash"] and detail["event_hash"].startswith("ni:///sha-256;")
        finally:
            deliverer.stop()
            publisher.close()


def test_silence_location_and_custody_gap_each_fire_once(harness: ApiHarness) -> None:
    h = harness
    now = datetime.now(UTC).replace(microsecond=0)
    with h.connect() as conn:
        s = make_shipment(conn, uuid.uuid4().hex[:10], since=now - timedelta(hours=2))
    staff = h.headers("logistics", org_id=s.carrier_org)
    for rule in (
        {"rule_id": f"quiet-{s.shipment_id}", "kind": "sensor_silent", "params": {"silent_s": 900}},
        {
            "rule_id": f"where-{s.shipment_id}",
            "kind": "unexpected_location",
            "params": {"expected_locations": ["0614141000005", "0614141000012"]},
        },
        {"rule_id": f"custody-{s.shipment_id}", "kind": "custody_gap", "params": {"gap_s": 3600}},
    ):
        reply = h.client.post(
            "/alerts/rules", headers=staff, json={**rule, "gtin": s.gtin, "lot": s.lot}
        )
        assert reply.status_code == 201, reply.text
    engine = engine_for(h)
    # Nothing for two hours: the logger is silent and custody has a gap; each fires once.
    engine.tick(now)
    engine.tick(now + timedelta(seconds=5))
    kinds = sorted(a[2] for a in alerts_of(h, s.shipment_id))
    assert kinds == ["custody_gap", "sensor_silent"]
    # The logger's tag (its SSCC, EPC SSCC-96) is read at a wrong dock, twice, then where
    # expected; then a reading arrives: silence and gap are over.
    epc = sscc_epc(s.sscc)
    reads = [
        rfid_row("dock-reader", 1, now - timedelta(minutes=3), epc, "0614141000029"),
        rfid_row("dock-reader", 2, now - timedelta(minutes=2), epc, "0614141000029"),
        rfid_row("dock-reader", 3, now - timedelta(minutes=1), epc, "0614141000012"),
    ]
    engine.evaluate(reads)
    engine.evaluate([env_row(s.device_id, 1, now, 5.0)])
    engine.tick(now + timedelta(seconds=10))
    engine.close()
    alerts = alerts_of(h, s.shipment_id)
    assert sorted(a[2] for a in alerts) == ["custody_gap", "sensor_silent", "unexpected_location"]
    assert all(a[4] is not None for a in alerts), alerts
    location = next(a for a in alerts if a[2] == "unexpected_location")
    assert location[3] == now - timedelta(minutes=3) and location[4] == now - timedelta(minutes=1)
    detail = h.client.get(f"/alerts/{location[0]}", headers=staff).json()
    assert detail["detail"]["location"] == "0614141000029"
    silent = next(a for a in alerts if a[2] == "sensor_silent")
    assert silent[3] == now - timedelta(hours=2)  # silent since its assignment began


def test_grace_period_runs_out_on_the_clock_and_the_product_band_is_the_default(
    harness: ApiHarness,
) -> None:
    """A logger that goes quiet while out of band still raises once the grace period is over
    (the tick); the product's 2..8 °C band applies by default (10 minutes' grace); humidity by
    an explicit lot rule."""
    h = harness
    now = datetime.now(UTC).replace(microsecond=0)
    with h.connect() as conn:
        s = make_shipment(conn, uuid.uuid4().hex[:10], since=now - timedelta(hours=1))
        conn.execute(
            "INSERT INTO alert_rules (rule_id, kind, gtin, lot, params) VALUES"
            ' (%s, \'humidity_excursion\', %s, %s, \'{"min": 30, "max": 60, "grace_s": 60}\')',
            (f"damp-{s.shipment_id}", s.gtin, s.lot),
        )
        conn.commit()
    engine = engine_for(h)
    start = now - timedelta(minutes=20)
    engine.evaluate([env_row(s.device_id, 1, start, 1.0, humidity=75.0)])
    assert alerts_of(h, s.shipment_id) == []  # both within their grace
    assert engine.tick(start + timedelta(seconds=59)) == []
    humid = engine.tick(start + timedelta(seconds=61))
    assert len(humid) == 1
    cold = engine.tick(start + timedelta(minutes=10, seconds=1))
    assert len(cold) == 1 and engine.tick(now) == []
    engine.close()
    found = {(a[1], a[2], a[3]) for a in alerts_of(h, s.shipment_id)}
    assert found == {
        (f"damp-{s.shipment_id}", "humidity_excursion", start),
        (f"default:temp:{s.gtin}", "temperature_excursion", start),
    }
    with h.connect() as conn:
        row = conn.execute(
            "SELECT gtin, lot, detail->>'value' FROM alerts WHERE kind = 'humidity_excursion'"
            " AND shipment_id = %s",
            (s.shipment_id,),
        ).fetchone()
    assert row == (s.gtin, s.lot, "75.0")


def test_a_custody_event_closes_the_gap(harness: ApiHarness) -> None:
    """Custody EPCIS events (captured through tracehub.epcis) naming the shipment's logistic
    unit count as custody; the gap alert fires only once none came for gap_s."""
    h = harness
    now = datetime.now(UTC).replace(microsecond=0)
    with h.connect() as conn:
        s = make_shipment(conn, uuid.uuid4().hex[:10], since=now - timedelta(hours=2))
        conn.execute("DELETE FROM device_assignments WHERE shipment_id = %s", (s.shipment_id,))
        conn.execute(
            "INSERT INTO alert_rules (rule_id, kind, shipment_id, params)"
            " VALUES (%s, 'custody_gap', %s, '{\"gap_s\": 3600}')",
            (f"gap-{s.shipment_id}", s.shipment_id),
        )
        arrived = now - timedelta(minutes=30)
        capture_events(
            conn,
            [
                {
                    "type": "ObjectEvent",
                    "eventTime": arrived.isoformat(),
                    "eventTimeZoneOffset": "+00:00",
                    "epcList": [f"https://id.gs1.org/00/{s.sscc}"],
                    "action": "OBSERVE",
                    "bizStep": "arriving",
                    "readPoint": {"id": "https://id.gs1.org/414/0614141000012"},
                }
            ],
            source="test",
        )
        conn.commit()
    engine = engine_for(h)
    assert engine.tick(now) == []  # shipped 2 h ago, but custody changed 30 min ago
    assert len(engine.tick(now + timedelta(minutes=31))) == 1
    assert engine.tick(now + timedelta(minutes=45)) == []
    engine.close()
    alerts = alerts_of(h, s.shipment_id)
    assert [(a[2], a[3]) for a in alerts] == [("custody_gap", arrived)]


def sscc_epc(sscc: str) -> str:
    """SSCC-96 EPC (hex) of an SSCC with a 7-digit company prefix (partition 5)."""
    company, serial = sscc[1:8], sscc[0] + sscc[8:17]
    value = (0x31 << 88) | (0 << 85) | (5 << 82) | (int(company) << 58) | (int(serial) << 24)
    return f"{value:024X}"


def rfid_row(device: str, seq: int, ts: datetime, epc: str, loc: str) -> dict[str, object]:
    return {
        "device_id": device,
        "seq": seq,
        "ts": ts,
        "kind": "rfid",
        "data": {"epc": epc, "antenna": 1, "rssi_dbm": -50.0, "read_count": 3},
        "loc": loc,
    }


def test_rule_and_subscription_api_refuse_bad_input(harness: ApiHarness) -> None:
    h = harness
    with h.connect() as conn:
        s = make_shipment(conn, uuid.uuid4().hex[:10])
    staff = h.headers("logistics", org_id=s.carrier_org)
    bad = [
        {"rule_id": "r1", "kind": "temperature_excursion", "params": {}},  # no target
        {
            "rule_id": "r1",
            "kind": "temperature_excursion",
            "shipment_id": s.shipment_id,
            "gtin": s.gtin,
        },  # two targets
        {
            "rule_id": "r1",
            "kind": "temperature_excursion",
            "shipment_id": s.shipment_id,
            "params": {"min": 8, "max": 2},
        },
        {"rule_id": "r1", "kind": "sensor_silent", "shipment_id": s.shipment_id, "params": {}},
        {
            "rule_id": "r1",
            "kind": "unexpected_location",
            "gtin": s.gtin,
            "lot": s.lot,
            "params": {"expected_locations": []},
        },
        {"rule_id": "r 1", "kind": "custody_gap", "gtin": s.gtin, "params": {"gap_s": 5}},
    ]
    for body in bad:
        reply = h.client.post("/alerts/rules", headers=staff, json=body)
        assert reply.status_code == 422, (body, reply.text)
    # An unknown shipment answers like another company's: 404.
    unknown = {
        "rule_id": "r1",
        "kind": "custody_gap",
        "shipment_id": "nope",
        "params": {"gap_s": 5},
    }
    assert h.client.post("/alerts/rules", headers=staff, json=unknown).status_code == 404
    good = {
        "rule_id": "r1",
        "kind": "custody_gap",
        "gtin": s.gtin,
        "lot": s.lot,
        "params": {"gap_s": 60},
    }
    assert h.client.post("/alerts/rules", headers=staff, json=good).status_code == 201
    assert h.client.post("/alerts/rules", headers=staff, json=good).status_code == 409
    changed = {**good, "params": {"gap_s": 120}, "enabled": False}
    reply = h.client.put("/alerts/rules/r1", headers=staff, json=changed)
    assert reply.status_code == 200 and reply.json()["params"] == {"gap_s": 120.0}
    auditor = h.headers("auditor", org_id=s.carrier_org)
    assert h.client.get("/alerts/rules", headers=auditor).status_code == 200
    assert h.client.post("/alerts/rules", headers=h.headers("buyer"), json=good).status_code == 403
    assert h.client.delete("/alerts/rules/r1", headers=staff).status_code == 204
    assert h.client.get("/alerts/rules/r1", headers=staff).status_code == 404
    reply = h.client.post(
        "/alerts/subscriptions", headers=staff, json={"channel": "webhook", "target": "ftp://x"}
    )
    assert reply.status_code == 422
    reply = h.client.post(
        "/alerts/subscriptions", headers=staff, json={"channel": "email", "target": "a@b.c"}
    )
    assert reply.status_code == 201 and reply.json()["secret"] is None
    sub = reply.json()["subscription_id"]
    assert h.client.delete(f"/alerts/subscriptions/{sub}", headers=staff).status_code == 204
    assert h.client.get(f"/alerts/{uuid.uuid4()}", headers=staff).status_code == 404
    assert h.client.get("/alerts/not-a-uuid", headers=staff).status_code == 422
    assert h.client.post(f"/alerts/{uuid.uuid4()}/resolve", headers=staff).status_code == 404
    assert h.client.get("/alerts", headers=staff, params={"state": "closed"}).status_code == 422
    assert (
        h.client.get("/alerts", headers=staff, params={"shipment_id": "a\x00"}).status_code == 422
    )
    assert h.client.get("/alerts/rules/a%00b", headers=staff).status_code == 422
    nul = {
        "rule_id": "r2",
        "kind": "custody_gap",
        "gtin": s.gtin,
        "lot": s.lot,
        "params": {"gap_s": 1e300},
    }
    assert h.client.post("/alerts/rules", headers=staff, json=nul).status_code == 422
    reply = h.client.post(
        "/alerts/subscriptions", headers=staff, json={"channel": "email", "target": "a\x00@b.c"}
    )
    assert reply.status_code == 422
    assert h.client.get("/alerts/stream", headers=h.headers("buyer")).status_code == 403
    assert h.client.get("/alerts/stream").status_code == 401


def test_dropped_hook_rows_are_caught_up_from_the_readings_table(harness: ApiHarness) -> None:
    """A full hook queue drops rows instead of blocking ingest; the worker evaluates them from
    the readings table (its cursor says where), so the excursion is still raised, once."""
    h = harness
    with h.connect() as conn:
        s = make_shipment(conn, uuid.uuid4().hex[:10])
        conn.execute(
            "INSERT INTO alert_rules (rule_id, kind, shipment_id, params)"
            " VALUES (%s, 'temperature_excursion', %s, '{\"grace_s\": 0}')",
            (f"hot-{s.shipment_id}", s.shipment_id),
        )
        t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
        rows = [env_row(s.device_id, i + 1, t0 + timedelta(seconds=i), 12.0) for i in range(3)]
        for r in rows:  # stored as the gateway stores them (the envelope is not read here)
            conn.execute(
                "INSERT INTO readings (device_id, seq, ts, received_at, kind, data, loc,"
                " prev_hash, reading_hash, envelope, certificate_sha256)"
                " VALUES (%s, %s, %s, now(), 'environment', %s, NULL, %s, %s, '', '')",
                (r["device_id"], r["seq"], r["ts"], Jsonb(r["data"]), "0" * 64, "1" * 64),
            )
        conn.commit()
    worker = AlertWorker(engine_for(h), None, queue_size=1, tick_s=60)
    worker([rows[0]])
    worker([rows[1]])  # the queue is full: dropped, not blocking
    worker([rows[2]])
    assert worker.dropped_batches == 2
    worker.start()
    try:
        wait_until(lambda: len(alerts_of(h, s.shipment_id)) == 1, 15, "the caught-up alert")
        wait_until(lambda: worker.evaluated >= 1, 5, "the queued rows")
        with h.connect() as conn:
            cursor = conn.execute(
                "SELECT last_seq FROM alert_device_cursor WHERE device_id = %s", (s.device_id,)
            ).fetchone()
        assert cursor == (3,)
    finally:
        worker.stop()
    assert len(alerts_of(h, s.shipment_id)) == 1


def test_a_dead_webhook_is_retried_with_backoff_then_marked_failed(harness: ApiHarness) -> None:
    h = harness
    with h.connect() as conn:
        s = make_shipment(conn, uuid.uuid4().hex[:10])
    staff = h.headers("logistics", org_id=s.carrier_org)
    dead = f"http://127.0.0.1:{free_port()}/nobody-listens"
    reply = h.client.post(
        "/alerts/subscriptions", headers=staff, json={"channel": "webhook", "target": dead}
    )
    assert reply.status_code == 201
    reply = h.client.post(
        "/alerts/rules",
        headers=staff,
        json={
            "rule_id": "hot",
            "kind": "temperature_excursion",
            "shipment_id": s.shipment_id,
            "params": {"grace_s": 0},
        },
    )
    assert reply.status_code == 201
    engine = engine_for(h)
    (alert_id,) = engine.evaluate([env_row(s.device_id, 1, datetime.now(UTC), 30.0)])
    engine.close()
    deliverer = Deliverer(
        h.connect,
        DeliverySettings(
            webhook_policy=OutboundPolicy.from_settings(h.config.stack),
            backoff_base_s=0.2,
            max_attempts=3,
        ),
    )
    with h.connect() as conn:
        times = []
        for _ in range(60):
            if deliverer.run_once(conn, "outbound"):
                times.append(datetime.now(UTC))
            row = conn.execute(
                "SELECT state, attempts, last_error FROM alert_deliveries"
                " WHERE alert_id = %s AND channel = 'webhook'",
                (alert_id,),
            ).fetchone()
            conn.commit()
            if row and row[0] == "failed":
                break
            time.sleep(0.05)
    deliverer.stop()
    assert row is not None and row[0] == "failed" and row[1] == 3
    # Coarse on purpose: not the connection error (alerts/outbound.py, docs/security.md).
    assert row[2] == "DeliveryError: unreachable"
    # Backoff: 0.2 s after the first failure, 0.4 s after the second.
    assert len(times) == 3
    assert (times[1] - times[0]).total_seconds() >= 0.2
    assert (times[2] - times[1]).total_seconds() >= 0.4
    detail = h.client.get(f"/alerts/{alert_id}", headers=staff).json()
    webhook = [d for d in detail["deliveries"] if d["channel"] == "webhook"]
    assert webhook[0]["state"] == "failed" and webhook[0]["attempts"] == 3


def test_every_change_is_notified_with_the_shared_payload(harness: ApiHarness) -> None:
    """0003's contract (commerce listens): NOTIFY tracehub_alerts with alert_id, state,
    shipment_id and kind on every change, including the API's acknowledge and resolve."""
    h = harness
    with h.connect() as conn:
        s = make_shipment(conn, uuid.uuid4().hex[:10])
        conn.execute(
            "INSERT INTO alert_rules (rule_id, kind, shipment_id, params)"
            " VALUES ('hot', 'temperature_excursion', %s, '{\"grace_s\": 0}')",
            (s.shipment_id,),
        )
        conn.commit()
    staff = h.headers("logistics", org_id=s.carrier_org)
    listener = psycopg.connect(h.config.postgres_dsn, autocommit=True)
    try:
        listener.execute("LISTEN tracehub_alerts")
        engine = engine_for(h)
        now = datetime.now(UTC).replace(microsecond=0)
        (alert_id,) = engine.evaluate([env_row(s.device_id, 1, now, 9.0)])
        engine.evaluate([env_row(s.device_id, 2, now + timedelta(seconds=1), 5.0)])
        engine.close()
        for action in ("acknowledge", "resolve"):
            assert h.client.post(f"/alerts/{alert_id}/{action}", headers=staff).status_code == 200
        payloads = []
        for note in listener.notifies(timeout=5, stop_after=40):
            payload = json.loads(note.payload)
            if payload["alert_id"] == alert_id:
                payloads.append(payload)
            if len(payloads) == 4:
                break
    finally:
        listener.close()
    assert [(p["state"], p["change"]) for p in payloads] == [
        ("open", "opened"),
        ("open", "cleared"),
        ("acknowledged", "acknowledged"),
        ("resolved", "resolved"),
    ]
    for p in payloads:
        assert {"alert_id", "state", "shipment_id", "kind"} <= p.keys()
        assert (p["shipment_id"], p["kind"]) == (s.shipment_id, "temperature_excursion")
