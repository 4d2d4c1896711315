"""A site broker (network/mosquitto/site-broker.sh) for tests, bridged to a private hub broker
(tests/support/broker.py), never to the shared stack's: the tests stop the hub they bridge to.

    with private_broker(tmp_path, stack) as hub, site_broker(tmp_path, stack, hub) as site:
        ...  # site.port, site.settings(stack); site.stop() / kill(); site.start()
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from certs.broker import BrokerEndpoint, admit_site
from certs.pki import PKI
from tests.support.broker import PrivateBroker, port_open
from tests.support.processes import free_port
from tracehub.config import PROJECT_DIR, Settings

SCRIPT = PROJECT_DIR / "network" / "mosquitto" / "site-broker.sh"


@dataclass
class SiteBroker:
    name: str
    run: Path
    port: int
    hub_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.run / "logs" / f"site-broker-{self.name}.log"

    @property
    def service(self) -> str:
        """The site's service name (its certificate's CN is ``service:`` + this)."""
        return f"site-{self.name}"

    def settings(self, base: Settings) -> Settings:
        """``base`` with this broker as the MQTT endpoint (what the site's devices use)."""
        return dataclasses.replace(base, mqtt_host="127.0.0.1", mqtt_tls_port=self.port)

    def start(self, timeout: float = 15) -> None:
        env = {
            **os.environ,
            "TRACEHUB_RUN": str(self.run),
            "SITE_BROKER_PORT": str(self.port),
            "SITE_HUB_PORT": str(self.hub_port),
        }
        self.process = subprocess.Popen(
            ["bash", str(SCRIPT), self.name],
            env=env,
            stdout=(self.run / f"site-{self.name}.out").open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the site broker did not start; see {self.log}")
            time.sleep(0.05)

    def bridged(self, hub: PrivateBroker, times: int = 1) -> bool:
        """The bridge has connected to ``hub`` ``times`` times (the hub's log says so)."""
        if not hub.log.exists():
            return False
        return hub.log.read_text(errors="replace").count(f" as service:{self.service} (") >= times

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its persistence file (the bridge's queue) and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None


@contextmanager
def site_broker(
    tmp_path: Path, settings: Settings, hub: PrivateBroker, devices: Sequence[str] = ()
) -> Iterator[SiteBroker]:
    """A new site with ``devices`` listed, its identity issued by the stack's PKI and admitted
    at ``hub``, and its broker bridged to ``hub``; killed at the end."""
    name = f"t{uuid.uuid4().hex[:8]}"
    admit_site(PKI(settings.pki_dir), BrokerEndpoint.of(hub.settings(settings)), name, devices)
    run = tmp_path / f"site-run-{name}"
    (run / "logs").mkdir(parents=True)
    (run / "pki").symlink_to(settings.pki_dir)
    site = SiteBroker(name, run, free_port(), hub.port)
    site.start()
    try:
        yield site
    finally:
        site.kill()
