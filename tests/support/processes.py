"""Small helpers several integration tests share: the operator CLI, a project process serving
HTTP, waiting for a condition."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from tracehub.config import PROJECT_DIR

_HANDED_OUT: set[int] = set()
_HANDED_OUT_LOCK = threading.Lock()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now, and that no earlier call in
    this process returned: the kernel may give the same free port to two calls in a row (two
    API servers of one test were once given one port, and the second's page was the first's)."""
    with _HANDED_OUT_LOCK:
        for _ in range(1000):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in _HANDED_OUT:
                _HANDED_OUT.add(port)
                return port
    raise RuntimeError("no loopback port this process has not handed out already")


@contextmanager
def http_server(
    handler: type[BaseHTTPRequestHandler], *, daemon_threads: bool = False
) -> Iterator[ThreadingHTTPServer]:
    """A threading HTTP server on a free loopback port, serving from a daemon thread until the
    block ends (its port: ``server.server_address[1]``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = daemon_threads
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def run_cli(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `tracehub ARGS` as an operator would, with the project's interpreter (and `env`,
    the whole environment, when given)."""
    return subprocess.run(
        [str(PROJECT_DIR / ".venv/bin/python"), "-m", "tracehub.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env=env,
    )


def serve_process(
    argv: list[str], env: dict[str, str], log: Path, health: str, *, append_log: bool = False
) -> subprocess.Popen[bytes]:
    """``python ARGV`` from the project (e.g. ``["-m", "api", "--port", ...]``), its output in
    ``log`` (added to its end with ``append_log``, as a bench does over rounds); returned once
    ``health`` answers 200 (30 s at most; its log if it exits first). Something already
    answering at ``health`` is an error: its answer would pass for ours."""
    try:
        httpx.get(health, timeout=1)
    except httpx.TransportError:
        pass
    else:
        raise AssertionError(f"something already answers at {health}")
    process = subprocess.Popen(
        [sys.executable, *argv],
        cwd=PROJECT_DIR,
        env=env,
        stdout=log.open("ab" if append_log else "wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(health, timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        assert process.poll() is None, log.read_text()
        if time.monotonic() >= deadline:
            # Not handed to the caller, so no fixture's teardown would stop it.
            process.kill()
            process.wait(10)
            raise AssertionError(f"{argv} did not answer at {health} in 30 s")
        time.sleep(0.2)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)
