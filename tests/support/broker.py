"""A private Mosquitto for tests that kill or wipe the broker, so the shared stack broker is never
touched. It is started by network/mosquitto/mosquitto.sh itself (same options and ACL), with a
run directory of its own whose pki/ links to the stack's PKI, on another loopback port.

    with private_broker(tmp_path, settings) as broker:
        ...  # broker.port, broker.settings(...); broker.stop() / kill(); wipe(); start()
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import free_port
from tracehub.config import PROJECT_DIR, Settings

SCRIPT = PROJECT_DIR / "network" / "mosquitto" / "mosquitto.sh"


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class PrivateBroker:
    run: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def log(self) -> Path:
        return self.run / "logs" / "mosquitto.log"

    def settings(self, base: Settings) -> Settings:
        """``base`` with this broker's port."""
        return dataclasses.replace(base, mqtt_host="127.0.0.1", mqtt_tls_port=self.port)

    def start(self, timeout: float = 15) -> None:
        env = {
            **os.environ,
            **self.env,
            "TRACEHUB_RUN": str(self.run),
            "MQTT_TLS_PORT": str(self.port),
        }
        self.process = subprocess.Popen(
            ["bash", str(SCRIPT)],
            env=env,
            stdout=(self.run / "mosquitto.out").open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the private mosquitto did not start; see {self.log}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL (the script execs mosquitto): no chance to save its persistence file."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its persistence file (sessions, queues) and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)
        self.process = None

    def wipe(self) -> None:
        """Delete the persistence file: every session, subscription and queued message."""
        for path in (self.run / "mosquitto" / "data").glob("*"):
            path.unlink()


@contextmanager
def private_broker(
    tmp_path: Path, settings: Settings, env: dict[str, str] | None = None
) -> Iterator[PrivateBroker]:
    """`env`: more variables for network/mosquitto/mosquitto.sh (e.g. its queue limits)."""
    run = tmp_path / "broker-run"
    (run / "logs").mkdir(parents=True)
    (run / "pki").symlink_to(settings.pki_dir)
    broker = PrivateBroker(run, free_port(), env=dict(env or {}))
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()
