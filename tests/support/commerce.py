"""Shared pieces of the commerce tests (this module holds no tests): parties and catalogue
seeded through SQL and the API, a misbehaving HTTP proxy in front of stripe-mock, and
Stripe-signed webhook payloads (the SMTP server is tests/support/alert_peers.py's smtp_server)."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx

from commerce.config import STRIPE_MOCK_KEY, CommerceConfig
from tests.support.api import ApiHarness, api_harness
from tests.support.processes import http_server
from tracehub.config import Settings, SmtpSettings

STRIPE_MOCK = ("127.0.0.1", 12111)
GTIN_A = "09506000134352"
GTIN_B = "09506000134369"


# -- a proxy in front of stripe-mock that can stall or fail --------------------------------


@dataclass
class Seen:
    at: float
    method: str
    path: str
    idempotency_key: str | None
    answered: str


@dataclass
class StripeProxy:
    """Forwards to stripe-mock; ``plan`` says what to do with the next requests:
    "pass", "stall" (sleep ``stall_s`` first: the client times out) or "500"."""

    port: int = 0
    plan: list[str] = field(default_factory=list)
    stall_s: float = 1.5
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def next_action(self) -> str:
        with self.lock:
            return self.plan.pop(0) if self.plan else "pass"

    def payment_intent_posts(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST" and s.path == "/v1/payment_intents"]


@contextmanager
def stripe_proxy() -> Iterator[StripeProxy]:
    proxy = StripeProxy()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            return

        def _forward(self) -> None:
            arrived = time.monotonic()
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            action = proxy.next_action()
            proxy.seen.append(
                Seen(arrived, self.command, self.path, self.headers.get("Idempotency-Key"), action)
            )
            if action == "stall":
                time.sleep(proxy.stall_s)
                self.close_connection = True
                return
            if action == "500":
                payload = b'{"error": {"type": "api_error", "message": "injected 500"}}'
                self.send_response(500)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            upstream = http.client.HTTPConnection(*STRIPE_MOCK, timeout=10)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            upstream.request(self.command, self.path, body=body, headers=headers)
            reply = upstream.getresponse()
            data = reply.read()
            self.send_response(reply.status)
            for k, v in reply.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            upstream.close()

        do_GET = do_POST = do_DELETE = _forward

    with http_server(Handler, daemon_threads=True) as server:
        proxy.port = server.server_address[1]
        yield proxy


# -- configuration, parties and catalogue ---------------------------------------------------


def commerce_config(
    api_base: str = "http://127.0.0.1:12111", smtp_port: int = 1, timeout_s: float = 0.5
) -> CommerceConfig:
    return CommerceConfig(
        stripe_api_key=STRIPE_MOCK_KEY,
        stripe_api_base=api_base,
        webhook_secret="whsec_" + secrets.token_hex(16),
        stripe_timeout_s=timeout_s,
        smtp=SmtpSettings(port=smtp_port),
    )


def seed(conn: Any) -> None:
    """Two suppliers, two buyers, a carrier; contacts with e-mail; products, lots, prices."""
    conn.execute(
        "INSERT INTO organisations (org_id, name, kind, country) VALUES"
        " ('sup-a', 'Supplier A', 'supplier', 'DE'), ('sup-b', 'Supplier B', 'supplier', 'CN'),"
        " ('buy-a', 'Buyer A', 'buyer', 'AE'), ('buy-b', 'Buyer B', 'buyer', 'SG'),"
        " ('carrier', 'Carrier', 'logistics', 'NL')"
    )
    conn.execute(
        "INSERT INTO products (gtin, name, owner_org, temp_min_c, temp_max_c) VALUES"
        " (%s, 'Vaccine', 'sup-a', 2, 8), (%s, 'Dates', 'sup-a', NULL, NULL)",
        (GTIN_A, GTIN_B),
    )
    conn.execute(
        "INSERT INTO lots (gtin, lot, supplier_org) VALUES (%s, 'L1', 'sup-a'),"
        " (%s, 'L2', 'sup-a'), (%s, 'L3', 'sup-a')",
        (GTIN_A, GTIN_A, GTIN_B),
    )
    conn.execute(
        "INSERT INTO price_lists (supplier_org, gtin, currency, unit_price_minor) VALUES"
        " ('sup-a', %s, 'USD', 1999), ('sup-a', %s, 'USD', 350), ('sup-a', %s, 'JPY', 2500),"
        " ('sup-a', %s, 'EUR', 1850)",
        (GTIN_A, GTIN_B, GTIN_A, GTIN_A),
    )
    conn.commit()


@contextmanager
def commerce_harness(stack: Settings, **config: Any) -> Iterator[ApiHarness]:
    """An API harness with the commerce router (``commerce_config(**config)``), seeded."""
    with api_harness(stack, extra={"commerce": commerce_config(**config)}) as harness:
        with harness.connect() as conn:
            seed(conn)
        yield harness


def place_order(
    h: ApiHarness,
    headers: dict[str, str],
    key: str,
    *,
    currency: str = "USD",
    incoterm: str = "FOB",
    quantity: int = 1,
    lines: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> httpx.Response:
    """POST /commerce/orders to supplier sup-a under Idempotency-Key ``key``; the raw reply.

    One line of ``quantity`` x GTIN_A unless ``lines`` is given; ``fields`` go in the body too.
    """
    return h.client.post(
        "/commerce/orders",
        headers={**headers, "Idempotency-Key": key},
        json={
            "supplier_org": "sup-a",
            "currency": currency,
            "incoterm": incoterm,
            **fields,
            "lines": lines or [{"gtin": GTIN_A, "quantity": quantity}],
        },
    )


def move_order(h: ApiHarness, headers: dict[str, str], order_id: str, to: str) -> httpx.Response:
    """POST /commerce/orders/{order_id}/transitions to state ``to``; the raw reply."""
    return h.client.post(
        f"/commerce/orders/{order_id}/transitions", headers=headers, json={"to": to}
    )


def pay_order(
    h: ApiHarness, headers: dict[str, str], order_id: str, key: str, **body: Any
) -> httpx.Response:
    """POST /commerce/orders/{order_id}/payments under Idempotency-Key ``key``; the raw reply."""
    return h.client.post(
        f"/commerce/orders/{order_id}/payments",
        headers={**headers, "Idempotency-Key": key},
        json=body,
    )


def sign_stripe(payload: bytes, secret: str, at: int | None = None) -> str:
    """A ``Stripe-Signature`` header as Stripe computes it (HMAC-SHA256 of "t.payload")."""
    t = at if at is not None else int(time.time())
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def stripe_event(event_type: str, intent_id: str, status: str) -> bytes:
    return json.dumps(
        {
            "id": f"evt_{secrets.token_hex(8)}",
            "object": "event",
            "type": event_type,
            "created": int(time.time()),
            "data": {"object": {"id": intent_id, "object": "payment_intent", "status": status}},
        }
    ).encode()


def party_headers(
    harness: Any, role: str, org_id: str | None, email: str | None = None
) -> dict[str, str]:
    """Headers of a new user of ``org_id`` with ``role`` (and a contact e-mail)."""
    from api.auth import create_user

    name, password = f"{role}-{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    with harness.connect() as conn:
        create_user(conn, name, password, [role], org_id=org_id, email=email)
    return {"Authorization": f"Bearer {harness.token(name, password)}"}
