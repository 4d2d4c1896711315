"""Real peers for the alert channels: an SMTP server (aiosmtpd), a webhook receiver that fails
its first attempts, an API server (uvicorn) with an SSE reader, and an MQTT subscriber."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from aiosmtpd.controller import Controller

from alerts.webhook import SIGNATURE_HEADER, WebhookSignatureError, verify
from api.config import ApiConfig
from tests.support.browser import serve
from tests.support.mqtt import close, connect, gateway_client
from tests.support.processes import free_port, http_server
from tracehub.config import Settings

# -- SMTP -------------------------------------------------------------------------------


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        message = message_from_bytes(envelope.content)
        message["X-Rcpt"] = ",".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"


@contextmanager
def smtp_server() -> Iterator[tuple[int, list[Message]]]:
    """An aiosmtpd server on loopback; yields (port, received messages)."""
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, inbox.messages
    finally:
        controller.stop()


# -- webhook receiver -------------------------------------------------------------------


#: TRACEHUB_WEBHOOK_ALLOW of tests whose webhooks go to a `webhook_receiver`: it listens on
#: loopback, which the outbound policy refuses unless allow-listed (alerts/outbound.py).
RECEIVERS_ALLOW = "127.0.0.1"


@dataclass
class WebhookReceiver:
    """Answers 503 to the first `fail_first` requests, then checks signatures and keeps them."""

    fail_first: int
    secret: str = ""
    attempts: list[float] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    url: str = ""


@contextmanager
def webhook_receiver(fail_first: int) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(fail_first)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            receiver.attempts.append(time.monotonic())
            if len(receiver.attempts) <= receiver.fail_first:
                self.send_response(503)
                self.end_headers()
                return
            try:
                verify(receiver.secret, body, self.headers.get(SIGNATURE_HEADER))
            except WebhookSignatureError as exc:
                receiver.rejected.append(str(exc))
                self.send_response(401)
                self.end_headers()
                return
            receiver.accepted.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with http_server(Handler) as server:
        receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/alerts"
        yield receiver


# -- API server and its SSE stream ------------------------------------------------------


@contextmanager
def api_server(config: ApiConfig) -> Iterator[str]:
    """The API under uvicorn on a free loopback port; yields its base URL."""
    with serve(config) as base_url:
        yield base_url


@dataclass
class SseReader:
    """Reads `event: alert` messages from /alerts/stream on a thread."""

    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    #: Set when the stream has ended, whoever ended it; ``error`` is why, if the connection broke.
    ended: threading.Event = field(default_factory=threading.Event)
    error: httpx.HTTPError | None = None

    def of(self, alert_id: str) -> list[str]:
        return [e["change"] for _, e in self.events if e["alert"]["alert_id"] == alert_id]


@contextmanager
def sse_reader(base_url: str, headers: dict[str, str]) -> Iterator[SseReader]:
    reader = SseReader()

    def run() -> None:
        try:
            read()
        except httpx.HTTPError as exc:
            reader.error = exc
        finally:
            reader.ended.set()

    def read() -> None:
        with (
            httpx.Client(timeout=httpx.Timeout(5, read=None)) as client,
            client.stream("GET", f"{base_url}/alerts/stream", headers=headers) as reply,
        ):
            assert reply.status_code == 200, reply.read()
            event, data = "", ""
            for line in reply.iter_lines():
                if reader.stop.is_set():
                    return
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "":
                    if event == "ready":
                        reader.ready.set()
                    elif event == "alert":
                        reader.events.append((time.monotonic(), json.loads(data)))
                    event, data = "", ""

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not reader.ready.wait(15):
        raise AssertionError("the SSE stream did not become ready")
    try:
        yield reader
    finally:
        reader.stop.set()


# -- MQTT -------------------------------------------------------------------------------


@dataclass
class MqttAlerts:
    messages: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)

    def of(self, alert_id: str) -> list[str]:
        return [m["change"] for _, _, m in self.messages if m["alert"]["alert_id"] == alert_id]


@contextmanager
def mqtt_alerts(settings: Settings) -> Iterator[MqttAlerts]:
    """A subscriber to tracehub/v1/alerts/# (with the gateway's certificate, which may read)."""
    seen = MqttAlerts()
    client = gateway_client(settings)
    subscribed = threading.Event()

    def on_message(c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        seen.messages.append((time.monotonic(), msg.topic, json.loads(msg.payload)))

    client.on_message = on_message
    client.on_subscribe = lambda *a: subscribed.set()
    assert connect(client, settings), "the broker refused the alert subscriber"
    client.subscribe("tracehub/v1/alerts/#", qos=1)
    assert subscribed.wait(5), "no SUBACK for tracehub/v1/alerts/#"
    try:
        yield seen
    finally:
        close(client)


# -- the traceability model -------------------------------------------------------------


@dataclass(frozen=True)
class Shipment:
    shipment_id: str
    gtin: str
    lot: str
    device_id: str
    sscc: str
    #: the carrier organisation (its logistics staff are a party to the shipment's alerts)
    carrier_org: str = ""


def make_shipment(
    conn: Any, tag: str, *, since: datetime | None = None, device_id: str | None = None
) -> Shipment:
    """A product with a 2..8 °C band, one lot in one in-transit shipment, one logger on it;
    the shipment's carrier is a new organisation ``car-<tag>``."""
    from tracehub.gs1 import check_digit

    digits = str(abs(hash(tag)) % 10**12).zfill(12)
    gtin = "0" + digits + str(check_digit("0" + digits))
    sscc_body = "0" + str(abs(hash(tag + "s")) % 10**16).zfill(16)
    sscc = sscc_body + str(check_digit(sscc_body))
    since = since or datetime.now(UTC) - timedelta(hours=1)
    carrier = f"car-{tag}".lower()
    shipment = Shipment(
        f"shp-{tag}", gtin, f"L{tag[:8]}", device_id or f"logger-{tag}", sscc, carrier
    )
    conn.execute(
        "INSERT INTO organisations (org_id, name, kind) VALUES (%s, %s, 'logistics')",
        (carrier, f"Carrier {tag}"),
    )
    conn.execute(
        "INSERT INTO products (gtin, name, temp_min_c, temp_max_c) VALUES (%s, %s, 2, 8)"
        " ON CONFLICT DO NOTHING",
        (gtin, f"vaccine {tag}"),
    )
    conn.execute("INSERT INTO lots (gtin, lot) VALUES (%s, %s)", (gtin, shipment.lot))
    conn.execute(
        "INSERT INTO shipments (shipment_id, origin, destination, state, shipped_at,"
        " carrier_org) VALUES (%s, '0614141000005', '0614141000012', 'in_transit', %s, %s)",
        (shipment.shipment_id, since, carrier),
    )
    conn.execute(
        "INSERT INTO shipment_lots (shipment_id, gtin, lot, sscc) VALUES (%s, %s, %s, %s)",
        (shipment.shipment_id, gtin, shipment.lot, sscc),
    )
    conn.execute(
        "INSERT INTO device_assignments (device_id, shipment_id, valid_from) VALUES (%s, %s, %s)",
        (shipment.device_id, shipment.shipment_id, since),
    )
    conn.commit()
    return shipment


def env_row(
    device: str, seq: int, ts: datetime, temperature: float, humidity: float = 45.0
) -> dict[str, Any]:
    return {
        "device_id": device,
        "seq": seq,
        "ts": ts,
        "kind": "environment",
        "data": {"temperature_c": temperature, "humidity_pct": humidity},
        "loc": None,
    }
