"""A device enrolled as an operator does it, and a hash-chained series of readings it signed
(shared by the proof tests, which batch and anchor them)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import serialization

from certs.pki import PKI, DeviceCertificate
from tests.support.processes import run_cli
from tracehub.config import Settings
from tracehub.envelope import reading_hash, sign_reading
from tracehub.reading import GENESIS_PREV, Reading


def enrol_and_sign(
    stack: Settings, device_id: str, count: int, temperature: float, humidity: float
) -> tuple[DeviceCertificate, list[bytes]]:
    """Enrol ``device_id``; sign ``count`` environment readings one second apart from now
    (temperature ``temperature + seq / 10``); its certificate and the envelopes, in order."""
    assert run_cli("devices", "enrol", device_id).returncode == 0
    time.sleep(1.1)  # the certificate's notBefore is in whole seconds
    pki = PKI(stack.pki_dir)
    key = serialization.load_pem_private_key(
        pki.device_paths(device_id)[1].read_bytes(), password=None
    )
    issued = pki.device(device_id)[0]
    start = datetime.now(UTC).replace(microsecond=0)
    envelopes, prev = [], GENESIS_PREV
    for seq in range(1, count + 1):
        reading = Reading(
            device=device_id,
            seq=seq,
            ts=start + timedelta(seconds=seq),
            kind="environment",
            data={"temperature_c": temperature + seq / 10, "humidity_pct": humidity},
            prev=prev,
        )
        envelope = sign_reading(reading, key, issued.certificate)  # type: ignore[arg-type]
        envelopes.append(envelope)
        prev = reading_hash(envelope)
    return issued, envelopes
