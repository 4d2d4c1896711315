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
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.auth import create_user
from tests.support.alert_peers import sse_reader
from tests.support.db import connector, migrated_schema
from tests.support.processes import free_port, serve_process
from tracehub.config import Settings

pytestmark = pytest.mark.integration

GRACE_S = 3


@contextlib.contextmanager
def api_server(stack: Settings, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, str]]:
    """`python -m api --shutdown-grace 3` on a schema of its own; (process, base URL, token)."""
    with migrated_schema(stack.postgres_dsn) as schema:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "TRACEHUB_API_SEARCH_PATH": schema, "TRACEHUB_API_METRICS_PORT": "0"}
        server = serve_process(
            ["-m", "api", "--port", str(port), "--shutdown-grace", str(GRACE_S)],
            env,
            log,
            f"{base}/healthz",
        )
        try:
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
        headers = {"Authorization": f"Bearer {token}"}
        # sse_reader returns once each stream is ready (the alert stream did open).
        with sse_reader(base, headers) as first, sse_reader(base, headers) as second:
            took = _seconds_to_exit(server)
            assert server.returncode in (0, -signal.SIGTERM), (tmp_path / "api.log").read_text()
            # The grace is waited out (streams never finish by themselves), then no more than
            # the cancellation and the lifespan's shutdown.
            assert GRACE_S <= took < GRACE_S + 5, took
            streams = (first, second)
            assert all(s.ended.wait(5) for s in streams), "a client's stream stayed open"


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
