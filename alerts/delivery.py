"""Delivering alert changes from the outbox (alert_deliveries): MQTT, e-mail, webhooks.

Rows are claimed with FOR UPDATE SKIP LOCKED and a lease (so several gateways share the work
and a crashed one's claims come back), sent by one thread per lane (MQTT; e-mail and webhooks),
and marked delivered; a failure is retried with
exponential backoff until `max_attempts`, then marked failed with its last error. Dashboards
(SSE) are fed by the API from NOTIFY and recorded there.
"""

from __future__ import annotations

import json
import logging
import smtplib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt

from alerts.errors import AlertsError
from alerts.outbound import OutboundPolicy, TargetRefusedError, check_target
from alerts.webhook import SIGNATURE_HEADER, sign
from tracehub import db
from tracehub.config import SmtpSettings
from tracehub.errors import UpstreamError
from tracehub.mqtt import certificate_identity, tls_client

log = logging.getLogger(__name__)
Connect = Callable[[], db.Connection]


#: Delivery lanes, one thread each, so a slow SMTP server or webhook never holds up the MQTT
#: topic: lane -> (channels, rows claimed at a time). A claim's lease must outlast its batch
#: (webhook timeout 5 s, SMTP 10 s: 5 rows well within the 120 s lease).
LANES: dict[str, tuple[tuple[str, ...], int]] = {
    "mqtt": (("mqtt",), 50),
    "outbound": (("email", "webhook"), 5),
}


class DeliveryError(AlertsError, UpstreamError):
    """One attempt failed; the message is recorded as the delivery's last_error."""


@dataclass(frozen=True)
class DeliverySettings:
    """The mail relay (the settings tree's `smtp`, shared with commerce), what webhooks may
    reach (`OutboundPolicy.from_settings`; the default admits public https targets only) and
    the retry policy."""

    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    webhook_policy: OutboundPolicy = field(default_factory=OutboundPolicy)
    webhook_timeout_s: float = 5.0
    webhook_connect_timeout_s: float = 3.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 300.0
    max_attempts: int = 8
    lease_s: float = 120.0
    poll_s: float = 1.0


class MqttPublisher:
    """A persistent MQTT 5 connection (the gateway's service certificate) for the alert topics."""

    def __init__(
        self, host: str, port: int, *, ca_file: Path, cert_file: Path, key_file: Path
    ) -> None:
        self._client = tls_client(
            certificate_identity(cert_file),
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
        )
        self._client.reconnect_delay_set(1, 10)
        self._client.connect_async(host, port, keepalive=30)
        self._client.loop_start()

    def publish(self, topic: str, payload: bytes, timeout_s: float = 5.0) -> None:
        info = self._client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
            raise DeliveryError(f"MQTT publish to {topic} failed: {mqtt.error_string(info.rc)}")
        try:
            info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise DeliveryError(f"MQTT publish to {topic}: {exc}") from exc
        if not info.is_published():
            raise DeliveryError(f"MQTT publish to {topic}: no PUBACK within {timeout_s} s")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def email_message(sender: str, to: str, payload: Mapping[str, Any]) -> EmailMessage:
    alert = payload["alert"]
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = (
        f"[TraceHub {alert['severity']}] {alert['kind']} on shipment {alert['shipment_id']}"
        f" ({payload['change']})"
    )
    msg["X-TraceHub-Alert"] = str(alert["alert_id"])
    summary = alert.get("detail", {}).get("summary", "")
    lines = [
        f"Alert {alert['alert_id']} was {payload['change']}.",
        "",
        f"Kind:      {alert['kind']}",
        f"State:     {alert['state']}",
        f"Shipment:  {alert['shipment_id']}",
        f"Device:    {alert.get('device_id') or '-'}",
        f"Started:   {alert['started_at']}",
        f"Ended:     {alert.get('ended_at') or '-'}",
        f"Detail:    {summary}",
        f"EPCIS event hash: {alert.get('event_hash') or '-'}",
    ]
    msg.set_content("\n".join(lines) + "\n")
    return msg


class Deliverer:
    """Works the outbox on a thread (or call `run_once()` directly)."""

    def __init__(
        self,
        connect: Connect,
        settings: DeliverySettings | None = None,
        *,
        mqtt: MqttPublisher | None = None,
    ) -> None:
        self._connect = connect
        self.settings = settings or DeliverySettings()
        self.mqtt = mqtt
        self._http = webhook_client(self.settings)
        self._wakes = {lane: threading.Event() for lane in LANES}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for lane in LANES:
            thread = threading.Thread(
                target=self._loop, args=(lane,), name=f"alert-{lane}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        for event in self._wakes.values():
            event.set()

    def stop(self) -> None:
        self._stop.set()
        self.wake()
        for thread in self._threads:
            thread.join(30)
        self._http.close()

    def _loop(self, lane: str) -> None:
        conn: db.Connection | None = None
        wake = self._wakes[lane]
        while not self._stop.is_set():
            wake.wait(self.settings.poll_s)
            wake.clear()
            try:
                if conn is None or conn.closed or conn.broken:
                    conn = self._connect()
                while self.run_once(conn, lane) and not self._stop.is_set():
                    pass
            except Exception:
                log.exception("alert delivery pass failed; retried")
                self._stop.wait(1)
        if conn is not None:
            conn.close()

    def backoff_s(self, attempts: int) -> float:
        """Seconds before attempt `attempts + 1`: base * 2^(attempts-1), capped."""
        return float(
            min(self.settings.backoff_max_s, self.settings.backoff_base_s * 2 ** (attempts - 1))
        )

    def run_once(self, conn: db.Connection, lane: str = "mqtt") -> int:
        """Claim and attempt a lane's due deliveries; returns how many were attempted."""
        channels, batch = LANES[lane]
        claimed = conn.execute(
            "UPDATE alert_deliveries d SET attempts = attempts + 1,"
            " next_attempt_at = now() + make_interval(secs => %s)"
            " FROM (SELECT id FROM alert_deliveries WHERE state = 'pending'"
            "  AND channel = ANY(%s) AND next_attempt_at <= now()"
            "  ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) due"
            " WHERE d.id = due.id"
            " RETURNING d.id, d.channel, d.target, d.subscription_id::text, d.payload, d.attempts",
            (self.settings.lease_s, list(channels), batch),
        ).fetchall()
        conn.commit()
        for delivery_id, channel, target, subscription_id, payload, attempts in claimed:
            try:
                self._send(conn, delivery_id, channel, target, subscription_id, payload)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:1000]
                final = attempts >= self.settings.max_attempts
                conn.execute(
                    "UPDATE alert_deliveries SET last_error = %s, state = %s,"
                    " next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s",
                    (
                        error,
                        "failed" if final else "pending",
                        self.backoff_s(attempts),
                        delivery_id,
                    ),
                )
                log.warning(
                    "alert delivery %s (%s %s) attempt %d: %s",
                    delivery_id,
                    channel,
                    target,
                    attempts,
                    error,
                )
            else:
                conn.execute(
                    "UPDATE alert_deliveries SET state = 'delivered', delivered_at = now(),"
                    " last_error = NULL WHERE id = %s",
                    (delivery_id,),
                )
            conn.commit()
        return len(claimed)

    def _send(
        self,
        conn: db.Connection,
        delivery_id: int,
        channel: str,
        target: str,
        subscription_id: str | None,
        payload: Mapping[str, Any],
    ) -> None:
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        if channel == "mqtt":
            if self.mqtt is None:
                raise DeliveryError("no MQTT publisher in this process")
            self.mqtt.publish(target, body)
        elif channel == "email":
            self._email(target, payload)
        elif channel == "webhook":
            row = conn.execute(
                "SELECT secret FROM alert_subscriptions WHERE subscription_id = %s",
                (subscription_id,),
            ).fetchone()
            conn.commit()
            if row is None:
                raise DeliveryError("the webhook subscription was deleted")
            self._webhook(delivery_id, target, row[0], body, str(payload["change"]))
        else:
            raise DeliveryError(f"unknown channel {channel}")

    def _email(self, to: str, payload: Mapping[str, Any]) -> None:
        relay = self.settings.smtp
        if not relay.host:
            raise DeliveryError("no SMTP server configured (TRACEHUB_SMTP_HOST)")
        message = email_message(relay.sender, to, payload)
        with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
            smtp.send_message(message)

    def _webhook(self, delivery_id: int, url: str, secret: str, body: bytes, change: str) -> None:
        post_webhook(
            self._http,
            self.settings.webhook_policy,
            url,
            secret,
            body,
            delivery=str(delivery_id),
            event=f"alert.{change}",
        )


def webhook_client(settings: DeliverySettings) -> httpx.Client:
    """The HTTP client of webhook deliveries: no redirects (a 30x could point inside), no proxy
    variables from the environment (the connection must go to the checked address), short
    timeouts."""
    return httpx.Client(
        timeout=httpx.Timeout(
            settings.webhook_timeout_s, connect=settings.webhook_connect_timeout_s
        ),
        follow_redirects=False,
        trust_env=False,
    )


def post_webhook(
    http: httpx.Client,
    policy: OutboundPolicy,
    url: str,
    secret: str,
    body: bytes,
    *,
    delivery: str,
    event: str,
) -> None:
    """POST a signed body to the checked address; the stored error never carries the remote's
    answer.

    The target is checked again here (DNS may have changed since the subscription). Errors
    are coarse on purpose ("unreachable", "HTTP error status"): the exact status or the
    connection error would make the delivery log a scanner of whatever the URL points at.
    The response body is never read.
    """
    try:
        target = check_target(url, policy)
    except TargetRefusedError as exc:
        raise DeliveryError(str(exc)) from None
    extensions = {"sni_hostname": target.host} if url.startswith("https:") else {}
    try:
        with http.stream(
            "POST",
            target.request_url,
            content=body,
            headers={
                "Host": target.host_header,
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(secret, body),
                "TraceHub-Delivery": delivery,
                "TraceHub-Event": event,
            },
            extensions=extensions,
        ) as reply:
            status = reply.status_code
    except httpx.TimeoutException:
        raise DeliveryError("timeout") from None
    except httpx.HTTPError as exc:
        log.info("webhook delivery %s: %s", delivery, exc)  # the operator's log only
        raise DeliveryError("unreachable") from None
    if not 200 <= status < 300:
        log.info("webhook delivery %s: HTTP %s", delivery, status)
        raise DeliveryError("HTTP error status")
