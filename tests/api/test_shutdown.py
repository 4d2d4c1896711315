"""SIGTERM stops `python -m api` within its grace even while dashboards follow the alert stream.

The stream is a request that never ends by itself, and uvicorn waits for requests in flight: one
open stream kept the server up for good. A browser test's teardown failed in CI on it (its
stream's httpx client, closed from another thread, had left the socket open)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.auth import create_user
from tests.support.db import connector, migrated_schema
from tests.support.processes import free_port
from tracehub.config import PROJECT_DIR, Settings

pytestmark = pytest.mark.integration

GRACE_S = 3


class Stream:
    """/alerts/stream read on a thread, as the dashboard does."""

    def __init__(self, base: str, token: str) -> None:
        self.ready, self.ended = threading.Event(), threading.Event()
        self.client = httpx.Client(timeout=httpx.Timeout(10, read=None))
        self._args = (f"{base}/alerts/stream", {"Authorization": f"Bearer {token}"})
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        url, headers = self._args
        try:
            with (
                contextlib.suppress(httpx.HTTPError, RuntimeError),
                self.client.stream("GET", url, headers=headers) as reply,
            ):
                for line in reply.iter_lines():
                    if line.startswith("event: ready"):
                        self.ready.set()
        finally:
            self.ended.set()


@contextlib.contextmanager
def api_server(stack: Settings, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, str]]:
    """`python -m api --shutdown-grace 3` on a schema of its own; (process, base URL, token)."""
    with migrated_schema(stack.postgres_dsn) as schema:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "TRACEHUB_API_SEARCH_PATH": schema, "TRACEHUB_API_METRICS_PORT": "0"}
        command = [sys.executable, "-m", "api", "--port", str(port)]
        server = subprocess.Popen(
            [*command, "--shutdown-grace", str(GRACE_S)],
            cwd=PROJECT_DIR,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "API server did not start"
                time.sleep(0.2)
            with connector(stack.postgres_dsn, schema)() as conn:
                conn.execute(
                    "INSERT INTO organisations (org_id, name, kind, country)"
                    " VALUES ('reefer-co', 'Reefer Co', 'logistics', 'SG')"
                )
                create_user(conn, "watch", "watch-password", ["logistics"], org_id="reefer-co")
            token = httpx.post(
                f"{base}/auth/token",
                data={"username": "watch", "password": "watch-password"},
                timeout=10,
            ).json()["access_token"]
            yield server, base, token
        finally:
            if server.poll() is None:
                server.kill()
                server.wait(10)


def _seconds_to_exit(server: subprocess.Popen[bytes]) -> float:
    started = time.monotonic()
    server.terminate()
    try:
        server.wait(GRACE_S + 20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the API was still running {GRACE_S + 20} s after SIGTERM")
    return time.monotonic() - started


def test_sigterm_ends_open_streams_after_the_grace(stack: Settings, tmp_path: Path) -> None:
    with api_server(stack, tmp_path / "api.log") as (server, base, token):
        streams = [Stream(base, token) for _ in range(2)]
        assert all(stream.ready.wait(15) for stream in streams), "the alert stream did not open"
        took = _seconds_to_exit(server)
        assert server.returncode in (0, -signal.SIGTERM), (tmp_path / "api.log").read_text()
        # The grace is waited out (streams never finish by themselves), then no more than the
        # cancellation and the lifespan's shutdown.
        assert GRACE_S <= took < GRACE_S + 5, took
        assert all(stream.ended.wait(5) for stream in streams), "a client's stream stayed open"


def test_sigterm_after_a_dashboard_left_does_not_wait_for_the_keepalive(
    stack: Settings, tmp_path: Path
) -> None:
    with api_server(stack, tmp_path / "api.log") as (server, base, token):
        # On a socket of the test's own, so that leaving is closing it, deterministically.
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as dashboard:
            dashboard.sendall(
                f"GET /alerts/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {token}\r\n\r\n".encode()
            )
            received = b""
            while b"event: ready" not in received:
                chunk = dashboard.recv(4096)
                assert chunk, f"the stream closed before it was ready: {received!r}"
                received += chunk
            assert received.startswith(b"HTTP/1.1 200 "), received
        took = _seconds_to_exit(server)
        assert server.returncode in (0, -signal.SIGTERM), (tmp_path / "api.log").read_text()
        # The departed client's stream ended when it closed: nothing left to wait the grace for.
        assert took < GRACE_S, took


def test_idle_server_exits_at_once(stack: Settings, tmp_path: Path) -> None:
    with api_server(stack, tmp_path / "api.log") as (server, _, _):
        took = _seconds_to_exit(server)
        assert server.returncode in (0, -signal.SIGTERM), (tmp_path / "api.log").read_text()
        assert took < GRACE_S, took
