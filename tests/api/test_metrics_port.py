"""A second API process on a host whose metrics port is taken still serves the API.

The stack's API holds the metrics port (TRACEHUB_API_METRICS_PORT, loopback); another
`python -m api` on another port (a second deployment on the machine, the browser tests'
servers) used to die binding it. It now says so and serves without metrics."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx

from tests.support.processes import free_port
from tracehub.config import PROJECT_DIR, Settings


def test_a_taken_metrics_port_leaves_the_api_serving(stack: Settings) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        port = free_port()
        env = {**os.environ, "TRACEHUB_API_METRICS_PORT": str(taken)}
        api = subprocess.Popen(
            [sys.executable, "-m", "api", "--port", str(port)],
            cwd=PROJECT_DIR,
            env=env,
            stderr=subprocess.PIPE,
        )
        try:
            deadline, healthy = time.monotonic() + 60, False
            while not healthy and time.monotonic() < deadline and api.poll() is None:
                try:
                    healthy = httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
                except httpx.TransportError:
                    time.sleep(0.2)
            assert api.poll() is None, "the API exited instead of serving without metrics"
            assert healthy
        finally:
            api.terminate()
            _, stderr = api.communicate(timeout=30)
    assert f"metrics port {taken} is in use" in stderr.decode()
