"""What the gateway tests share: a gateway process, an enrolled signing device, a row count."""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from certs.pki import PKI
from tests.support.processes import run_cli
from tracehub import db
from tracehub.config import PROJECT_DIR, Settings
from tracehub.envelope import reading_hash, sign_reading
from tracehub.reading import GENESIS_PREV, Reading


def start_gateway(name: str, group: str, log: Path) -> subprocess.Popen[bytes]:
    """A gateway process with small batches (40 readings or 1 s), logging to `log`."""
    return subprocess.Popen(
        [
            str(PROJECT_DIR / ".venv/bin/python"),
            "-m",
            "gateway",
            "--name",
            name,
            "--group",
            group,
            "--batch-readings",
            "40",
            "--batch-seconds",
            "1",
            # A test's group is used once: the broker need not queue for it after the test.
            "--session-expiry",
            "120",
        ],
        cwd=PROJECT_DIR,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


class Device:
    """An enrolled device that signs a hash-chained series of readings."""

    def __init__(
        self, settings: Settings, pki: PKI, step: timedelta = timedelta(seconds=1)
    ) -> None:
        self.step = step  # between consecutive readings' timestamps
        self.id = f"gw-{uuid.uuid4().hex[:10]}"
        # Enrolled as an operator does it, so the certificate is on the ledger for auditors.
        enrolled = run_cli("devices", "enrol", self.id, timeout=60)
        assert enrolled.returncode == 0, enrolled.stderr
        _, key_path = pki.device_paths(self.id)
        self.key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        self.cert = pki.device(self.id)[0].certificate
        self.prev = GENESIS_PREV
        self.start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
        self.topic = f"tracehub/v1/devices/{self.id}/readings"

    def sign(self, seq: int, temperature: float, prev: str | None = None) -> bytes:
        reading = Reading(
            device=self.id,
            seq=seq,
            ts=self.start + seq * self.step,
            kind="environment",
            data={"temperature_c": temperature, "humidity_pct": 45.0},
            prev=self.prev if prev is None else prev,
        )
        envelope = sign_reading(reading, self.key, self.cert)  # type: ignore[arg-type]
        if prev is None:
            self.prev = reading_hash(envelope)
        return envelope


def count_rows(settings: Settings, sql: str, *params: object) -> int:
    """The single number a counting query returns."""
    with db.connect(settings.postgres_dsn) as conn:
        row = conn.execute(sql, params).fetchone()
    return int(row[0]) if row else 0
