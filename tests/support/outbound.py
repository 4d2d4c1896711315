"""An HTTP peer that plays whatever a webhook target might do (answer an error with a body,
redirect, stall), recording every request it gets and its Host header; and a delivery run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from alerts.delivery import Deliverer, DeliverySettings
from tests.support.db import Connect
from tests.support.processes import http_server


@dataclass
class Peer:
    """Answers `status` with `body` (and `location`, for a redirect) after `delay_s`."""

    status: int = 204
    body: bytes = b""
    location: str | None = None
    delay_s: float = 0.0
    hosts: list[str] = field(default_factory=list)  # the Host header of each request
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@contextmanager
def peer(**behaviour: object) -> Iterator[Peer]:
    state = Peer(**behaviour)  # type: ignore[arg-type]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.hosts.append(self.headers.get("Host", ""))
            time.sleep(state.delay_s)
            self.send_response(state.status)
            if state.location:
                self.send_header("Location", state.location)
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        do_GET = do_POST

        def log_message(self, *args: object) -> None:
            pass

    with http_server(Handler, daemon_threads=True) as server:
        state.port = server.server_address[1]
        yield state


def deliver_once(connect: Connect, settings: DeliverySettings) -> tuple[str, str | None]:
    """Run the outbound lane once over the pending webhook delivery; (state, last_error)."""
    deliverer = Deliverer(connect, settings)
    try:
        with connect() as conn:
            assert deliverer.run_once(conn, "outbound") >= 1
            row = conn.execute(
                "SELECT state, last_error FROM alert_deliveries WHERE channel = 'webhook'"
                " ORDER BY id DESC LIMIT 1"
            ).fetchone()
    finally:
        deliverer.stop()
    assert row is not None
    return str(row[0]), row[1]
