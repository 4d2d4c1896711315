"""An edge agent process (`tracehub-edge run`) with a simulated R2000 reader on a pseudo-terminal,
for tests that need the real agent: its spool, publisher and the hub's acknowledgements."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from certs.enrolment import enrol_simulated_devices
from certs.pki import PKI
from edge.rfid_reader import r2000
from tracehub.config import PROJECT_DIR, Settings

PC_96_BITS = bytes([0x30, 0x00])  # protocol control word: 6 words of EPC


def tag_frame(epc: bytes, antenna: int = 0, rssi: int = 0x50) -> bytes:
    """An R2000 real-time inventory reply (cmd 0x89) as the reader sends it."""
    return r2000.encode_command(0x89, bytes([antenna]) + PC_96_BITS + epc + bytes([rssi]), 0x01)


def epc(n: int) -> bytes:
    """A distinct SGTIN-96 EPC per n (the TDS example with its serial replaced)."""
    return bytes.fromhex("3074257BF7194E4000") + n.to_bytes(3, "big")


def enrol_device(settings: Settings, prefix: str = "edge") -> str:
    """A new device, issued by the PKI and enrolled on the ledger (so gateways accept it)."""
    device_id = f"{prefix}-{uuid.uuid4().hex[:10]}"
    enrol_simulated_devices(PKI(settings.pki_dir), settings.fabric, [device_id])
    time.sleep(1.1)  # the certificate's validity starts at a whole second
    return device_id


class EdgeAgent:
    """The agent process and its simulated reader; readings are made by `read_tags`."""

    def __init__(
        self,
        tmp_path: Path,
        settings: Settings,
        device_id: str,
        *,
        spool: str = "",
        acks: str = "",
        reader: str = "",
        extra: str = "",
        window_s: float = 0.2,
    ) -> None:
        """``spool``, ``acks`` and ``reader`` are extra TOML lines for those sections;
        ``extra`` more sections (e.g. ``[[sensors]]``)."""
        self.dir = tmp_path / f"agent-{device_id}"
        self.dir.mkdir()
        self.device_id = device_id
        self.master, self._slave = os.openpty()
        os.set_blocking(self.master, False)
        pki = settings.pki_dir
        self.config = self.dir / "agent.toml"
        self.config.write_text(
            f"""
[device]
id = "{device_id}"
certificate = "{pki}/devices/{device_id}/cert.pem"
key = "{pki}/devices/{device_id}/key.pem"

[broker]
host = "{settings.mqtt_host}"
port = {settings.mqtt_tls_port}
ca = "{pki}/ca-bundle.pem"

[spool]
path = "{self.dir}/spool.sqlite3"
{spool}

[acks]
{acks}

[[readers]]
name = "dock-door-1"
protocol = "r2000"
port = "{os.ttyname(self._slave)}"
smoothing_window_s = {window_s}
{reader}
{extra}
"""
        )
        self.log = self.dir / "agent.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                str(PROJECT_DIR / ".venv/bin/python"),
                "-m",
                "edge.cli",
                "run",
                "--config",
                str(self.config),
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            cwd=PROJECT_DIR,
        )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)

    def close(self) -> None:
        self.stop()
        os.close(self.master)
        os.close(self._slave)

    def read_tags(self, tags: range, pause_s: float = 0.0) -> None:
        """Tags pass the antenna, each seen once: one read event (one reading) per tag."""
        for n in tags:
            os.write(self.master, tag_frame(epc(n)))
            with contextlib.suppress(BlockingIOError):
                os.read(self.master, 4096)  # discard the inventory commands the agent sends
            if pause_s:
                time.sleep(pause_s)

    def status_cli(self) -> subprocess.CompletedProcess[str]:
        """`tracehub-edge status` as an operator runs it."""
        return subprocess.run(
            [
                str(PROJECT_DIR / ".venv/bin/python"),
                "-m",
                "edge.cli",
                "status",
                "--config",
                str(self.config),
            ],
            capture_output=True,
            text=True,
            cwd=PROJECT_DIR,
            timeout=60,
            check=False,
        )

    def status(self) -> dict[str, Any]:
        try:
            loaded: dict[str, Any] = json.loads((self.dir / "status.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return loaded

    def spool(self, key: str) -> int:
        """A number from the status's spool section (-1 before the first status)."""
        spool = self.status().get("spool")
        return int(spool[key]) if isinstance(spool, dict) else -1

    def read_events(self) -> int:
        readers = self.status().get("readers")
        return int(readers["dock-door-1"]["read_events"]) if isinstance(readers, dict) else 0
