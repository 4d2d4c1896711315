"""What the gateway tests share: a gateway process, an enrolled signing device, a row count."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from certs.enrolment import enrol_simulated_devices
from certs.pki import PKI
from tests.support.db import Connect, connector, migrated_schema
from tests.support.mqtt import admit_gateway
from tests.support.processes import run_cli
from tracehub import db
from tracehub.config import PROJECT_DIR, Settings
from tracehub.envelope import reading_hash, sign_reading
from tracehub.reading import GENESIS_PREV, Reading


def start_gateway(
    name: str,
    group: str,
    log: Path,
    *args: str,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """A gateway process with small batches (40 readings or 1 s), logging to `log`; ``args``
    are more options, ``env`` its environment (default: this process's). Its broker identities
    are issued and admitted first, as `tracehub certs gateway NAME` does."""
    admit_gateway(Settings.from_env(os.environ if env is None else env), name)
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
            *args,
        ],
        cwd=PROJECT_DIR,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=env,
    )


def leave_group(name: str, env: dict[str, str] | None = None) -> None:
    """`python -m gateway --name NAME --leave`: end a stopped member's broker session."""
    done = subprocess.run(
        [str(PROJECT_DIR / ".venv/bin/python"), "-m", "gateway", "--name", name, "--leave"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def subscribed(log: Path, times: int = 1) -> bool:
    """The gateway(s) logging to `log` have connected and subscribed ``times`` times in all."""
    return log.exists() and log.read_text(errors="replace").count("subscribed as group") >= times


@contextmanager
def private_database(settings: Settings) -> Iterator[tuple[dict[str, str], Connect]]:
    """A migrated schema of its own: the environment that points a gateway process at it, and
    connections into it, so a test's gateway sees only that test's readings."""
    with migrated_schema(settings.postgres_dsn) as schema:
        dsn = db.with_search_path(settings.postgres_dsn, schema)
        yield {**os.environ, "TRACEHUB_POSTGRES_DSN": dsn}, connector(settings.postgres_dsn, schema)


class Device:
    """A device enrolled on the ledger that signs a hash-chained series of readings."""

    def __init__(
        self,
        settings: Settings,
        pki: PKI,
        step: timedelta = timedelta(seconds=1),
        *,
        device_id: str | None = None,
    ) -> None:
        """A new device enrolled as an operator does it (`tracehub devices enrol`); with
        ``device_id``, one already enrolled (see :meth:`many`)."""
        self.step = step  # between consecutive readings' timestamps
        if device_id is None:
            device_id = f"gw-{uuid.uuid4().hex[:10]}"
            enrolled = run_cli("devices", "enrol", device_id, timeout=60)
            assert enrolled.returncode == 0, enrolled.stderr
        self.id = device_id
        _, key_path = pki.device_paths(self.id)
        self.key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        self.cert = pki.device(self.id)[0].certificate
        self.prev = GENESIS_PREV
        self.start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
        self.topic = f"tracehub/v1/devices/{self.id}/readings"

    @classmethod
    def many(
        cls, settings: Settings, pki: PKI, count: int, step: timedelta = timedelta(seconds=1)
    ) -> list[Device]:
        """``count`` devices, enrolled on the ledger together (one block, not ``count``)."""
        ids = [f"gw-{uuid.uuid4().hex[:10]}" for _ in range(count)]
        enrol_simulated_devices(pki, settings.fabric, ids)
        return [cls(settings, pki, step, device_id=d) for d in ids]

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


def stored_seqs(connect: Connect, device_id: str) -> list[int]:
    """The sequence numbers stored for a device, one entry per stored row, ascending."""
    with connect() as conn:
        rows = conn.execute(
            "SELECT seq FROM readings WHERE device_id = %s ORDER BY seq", (device_id,)
        ).fetchall()
    return [row[0] for row in rows]
