"""VerifiedRow.from_verified skips the row's own checks (the reading passed them already): it
must build exactly the row the checking constructor builds."""

from __future__ import annotations

import hashlib
from dataclasses import fields
from datetime import UTC, datetime

import pytest

from ingest.store import VerifiedRow
from tracehub.reading import Reading
from tracehub.verify import VerifiedReading

ENVELOPE = b"header.payload.signature"


def _verified(loc: str | None) -> VerifiedReading:
    reading = Reading(
        device="dev-row-1",
        seq=7,
        ts=datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        kind="environment",
        data={"temperature_c": 4.5, "humidity_pct": 55.0},
        prev=hashlib.sha256(b"prev").hexdigest(),
        loc=loc,
    )
    return VerifiedReading(
        reading, hashlib.sha256(ENVELOPE).hexdigest(), hashlib.sha256(b"cert").hexdigest()
    )


@pytest.mark.parametrize("loc", [None, "urn:epc:id:sgln:0614141.00777.0"])
def test_from_verified_builds_the_row_the_checking_constructor_builds(loc: str | None) -> None:
    verified, now = _verified(loc), datetime.now(UTC)
    row = VerifiedRow.from_verified(verified, ENVELOPE, now)
    checked = VerifiedRow(**{f.name: getattr(row, f.name) for f in fields(VerifiedRow)})
    assert row == checked
    assert (row.device_id, row.seq, row.prev_hash, row.loc) == (
        "dev-row-1",
        7,
        verified.reading.prev,
        loc,
    )
    assert row.reading_hash == verified.hash and row.certificate_sha256 == verified.fingerprint
    assert row.received_at == now and row.envelope == ENVELOPE


def test_from_verified_still_refuses_a_naive_received_at() -> None:
    with pytest.raises(ValueError, match="received_at"):
        VerifiedRow.from_verified(_verified(None), b"e", datetime(2026, 1, 1))
