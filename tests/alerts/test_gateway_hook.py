"""End to end through a real gateway process: signed readings over MQTT, verified and stored
by `python -m gateway`, evaluated by its alert worker, published on the MQTT alert topic,
streamed to a dashboard over SSE, e-mailed and posted to a signed webhook; a gateway killed
mid-excursion does not raise it twice."""

from __future__ import annotations

import secrets
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import httpx
import pytest

from api.auth import create_user
from api.config import ApiConfig
from certs.pki import PKI
from tests.support.alert_peers import (
    RECEIVERS_ALLOW,
    WebhookReceiver,
    api_server,
    make_shipment,
    mqtt_alerts,
    smtp_server,
    sse_reader,
    webhook_receiver,
)
from tests.support.db import migrated_schema
from tests.support.gateway import Device, start_gateway
from tests.support.mqtt import close, connect, device_client
from tests.support.processes import wait_until
from tracehub import db
from tracehub.config import Settings

pytestmark = pytest.mark.integration


def _subscribed(log: Path, count: int) -> bool:
    return log.exists() and log.read_text(errors="replace").count("subscribed as group") >= count


def _alerts(dsn: str, shipment_id: str) -> list[tuple[str, object]]:
    with db.connect(dsn) as conn:
        return [
            (str(r[0]), r[1])
            for r in conn.execute(
                "SELECT alert_id, ended_at FROM alerts WHERE shipment_id = %s", (shipment_id,)
            )
        ]


def _stop(gateway: subprocess.Popen[bytes]) -> None:
    if gateway.poll() is None:
        gateway.send_signal(signal.SIGTERM)
        try:
            gateway.wait(30)
        except subprocess.TimeoutExpired:
            gateway.kill()
            gateway.wait(10)


@pytest.fixture()
def schema(stack: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated schema of the test's own; the gateway process is pointed at it."""
    with migrated_schema(stack.postgres_dsn) as name:
        monkeypatch.setenv("TRACEHUB_POSTGRES_DSN", schema_dsn(stack, name))
        # The gateway is killed mid-excursion: a delivery it had claimed is another worker's
        # again after this lease (120 s by default, longer than the test waits for it).
        monkeypatch.setenv("TRACEHUB_ALERT_DELIVERY_LEASE_S", "10")
        yield name


def schema_dsn(stack: Settings, schema: str) -> str:
    return db.with_search_path(stack.postgres_dsn, schema)


def test_excursion_through_a_real_gateway_reaches_every_channel_once(
    stack: Settings, schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with smtp_server() as (smtp_port, inbox), webhook_receiver(fail_first=1) as hook:
        monkeypatch.setenv("TRACEHUB_SMTP_HOST", "127.0.0.1")
        # The gateway's webhook deliveries may reach the loopback receiver (conftest.py).
        monkeypatch.setenv("TRACEHUB_WEBHOOK_ALLOW", RECEIVERS_ALLOW)
        monkeypatch.setenv("TRACEHUB_SMTP_PORT", str(smtp_port))
        _through_a_gateway(stack, schema, tmp_path, inbox, hook)


def _through_a_gateway(
    stack: Settings, schema: str, tmp_path: Path, inbox: list[Message], hook: WebhookReceiver
) -> None:
    device = Device(stack, PKI(stack.pki_dir))
    tag = uuid.uuid4().hex[:10]
    dsn = schema_dsn(stack, schema)
    with db.connect(dsn) as conn:
        s = make_shipment(conn, tag, device_id=device.id)
        conn.execute(
            "INSERT INTO alert_rules (rule_id, kind, shipment_id, params)"
            " VALUES (%s, 'temperature_excursion', %s, '{\"grace_s\": 0}')",
            (f"e2e-{tag}", s.shipment_id),
        )
        hook.secret = secrets.token_urlsafe(16)
        conn.execute(
            "INSERT INTO alert_subscriptions (channel, target, secret) VALUES"
            " ('webhook', %s, %s), ('email', 'night-shift@example.com', NULL)",
            (hook.url, hook.secret),
        )
        username, password = f"ops-{tag}", secrets.token_urlsafe(12)
        create_user(conn, username, password, ["logistics"], org_id=s.carrier_org)
    config = ApiConfig(stack=stack, token_key=secrets.token_bytes(32), search_path=schema)
    log = tmp_path / "gateway.log"
    group, name = f"a{uuid.uuid4().hex[:8]}", f"a{uuid.uuid4().hex[:8]}"
    gateway = start_gateway(name, group, log)
    client = device_client(stack, device.id)
    try:
        with api_server(config) as base_url:
            token = httpx.post(
                f"{base_url}/auth/token", data={"username": username, "password": password}
            ).json()["access_token"]
            with (
                sse_reader(base_url, {"Authorization": f"Bearer {token}"}) as sse,
                mqtt_alerts(stack) as seen,
            ):
                wait_until(lambda: _subscribed(log, 1), 60, "the gateway's subscription")
                time.sleep(max(0.0, device.start.timestamp() - time.time() - 1.5))
                assert connect(client, stack)
                temps = [5.0, 5.0, 12.0, 12.5]
                for seq, t in enumerate(temps, 1):
                    client.publish(device.topic, device.sign(seq, t), qos=1).wait_for_publish(5)
                wait_until(lambda: len(_alerts(dsn, s.shipment_id)) == 1, 30, "the alert")
                alert_id = _alerts(dsn, s.shipment_id)[0][0]
                wait_until(lambda: "opened" in seen.of(alert_id), 15, "the MQTT alert")
                wait_until(lambda: "opened" in sse.of(alert_id), 15, "the SSE alert")

                # Kill the gateway mid-excursion; its successor must not raise it again.
                gateway.send_signal(signal.SIGKILL)
                gateway.wait(10)
                gateway = start_gateway(name, group, log)
                wait_until(lambda: _subscribed(log, 2), 60, "the restarted gateway")
                for seq, t in enumerate([13.0, 12.0, 5.0], len(temps) + 1):
                    client.publish(device.topic, device.sign(seq, t), qos=1).wait_for_publish(5)
                wait_until(
                    lambda: all(e is not None for _, e in _alerts(dsn, s.shipment_id)),
                    30,
                    "the excursion to end",
                )
                assert len(_alerts(dsn, s.shipment_id)) == 1
                wait_until(lambda: "cleared" in seen.of(alert_id), 15, "MQTT 'cleared'")
                wait_until(lambda: "cleared" in sse.of(alert_id), 15, "SSE 'cleared'")
                assert seen.of(alert_id).count("opened") == 1
                assert sse.of(alert_id).count("opened") == 1
                # E-mail and the webhook (which failed once: retried) from the gateway's outbox.
                wait_until(
                    lambda: sorted(p["change"] for p in hook.accepted) == ["cleared", "opened"],
                    60,
                    "both webhook deliveries",
                )
                wait_until(
                    lambda: len([m for m in inbox if m["X-TraceHub-Alert"] == alert_id]) == 2,
                    # a failed first attempt backs off 1, 2, 4, 8 s (alerts/delivery.py)
                    60,
                    "both e-mails",
                )
                assert len(hook.attempts) == 3 and not hook.rejected
    finally:
        close(client)
        _stop(gateway)
    with db.connect(dsn) as conn:
        cursor = conn.execute(
            "SELECT last_seq FROM alert_device_cursor WHERE device_id = %s", (device.id,)
        ).fetchone()
    assert cursor == (7,)
