"""The two messages of the end-to-end acknowledgement: the hub's acknowledgement (exact about
what is stored, bounded in size) and the device's signed dropped-range report (verified like a
reading, and never mistaken for one)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.support.pki import T0, TestPKI
from tracehub.acks import MAX_MISSING_RANGES, AckError, HubAck
from tracehub.dropped import DroppedRange, parse_dropped, sign_dropped, verify_dropped
from tracehub.envelope import EnvelopeError, parse_envelope, sign_reading
from tracehub.reading import Reading
from tracehub.verify import InMemoryDirectory, Reason, TrustStore, VerificationError


def test_an_acknowledgement_round_trips_and_says_what_is_accounted_for() -> None:
    ack = HubAck("dev-1", 20, ((3, 4), (10, 10)))
    raw = ack.to_json_bytes()
    assert json.loads(raw) == {
        "v": 1,
        "device": "dev-1",
        "through": 20,
        "missing": [[3, 4], [10, 10]],
    }
    assert HubAck.from_json_bytes(raw) == ack
    assert ack.accounted() == [(1, 2), (5, 9), (11, 20)]
    assert HubAck("dev-1", 0).accounted() == []
    assert HubAck("dev-1", 5, ((1, 5),)).accounted() == []


@pytest.mark.parametrize(
    "missing",
    [((4, 3),), ((0, 1),), ((3, 4), (2, 2)), ((3, 4), (5, 6)), ((1, 21),), ((True, 2),)],
)
def test_a_malformed_acknowledgement_is_refused(missing: tuple[tuple[int, int], ...]) -> None:
    with pytest.raises(AckError):
        HubAck("dev-1", 20, missing)


def test_more_holes_than_one_message_lists_lower_through() -> None:
    holes = [(2 * i, 2 * i) for i in range(1, MAX_MISSING_RANGES + 11)]
    ack = HubAck.bounded("dev-1", 1000, holes)
    assert len(ack.missing) == MAX_MISSING_RANGES
    # Exact: everything up to `through` outside the listed holes is accounted for.
    assert ack.through == holes[MAX_MISSING_RANGES][0] - 1
    assert HubAck.bounded("dev-1", 1000, holes[:3]).through == 1000


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI()


def test_a_signed_report_verifies_and_is_bound_to_its_device(pki: TestPKI) -> None:
    device = pki.device("dev-1")
    trust = TrustStore(pki.roots, pki.intermediates, [pki.crl()])
    directory = InMemoryDirectory([device.cert])
    report = DroppedRange("dev-1", 3, 7, "overflow", T0)
    envelope = sign_dropped(report, device.key, device.cert)
    assert sign_dropped(report, device.key, device.cert) == envelope  # deterministic
    verified = verify_dropped(envelope, trust, directory, topic_device_id="dev-1")
    assert verified.report == report == parse_dropped(envelope)
    with pytest.raises(VerificationError) as other_topic:
        verify_dropped(envelope, trust, directory, topic_device_id="dev-2")
    assert other_topic.value.reason is Reason.IDENTITY_MISMATCH
    tampered = envelope[:-4] + (b"AAAA" if envelope[-4:] != b"AAAA" else b"BBBB")
    with pytest.raises(VerificationError) as forged:
        verify_dropped(tampered, trust, directory)
    assert forged.value.reason is Reason.BAD_SIGNATURE
    # A report by another device's key for dev-1 is not dev-1's report.
    other = pki.device("dev-2")
    borrowed = sign_dropped(report, other.key, other.cert)
    with pytest.raises(VerificationError) as mismatch:
        verify_dropped(borrowed, trust, InMemoryDirectory([other.cert]))
    assert mismatch.value.reason is Reason.IDENTITY_MISMATCH


def test_a_report_is_not_a_reading_nor_the_reverse(pki: TestPKI) -> None:
    device = pki.device("dev-1")
    report = sign_dropped(DroppedRange("dev-1", 1, 1, "expired", T0), device.key, device.cert)
    reading = sign_reading(
        Reading("dev-1", 1, T0, "environment", {"temperature_c": 1.0, "humidity_pct": 2.0}),
        device.key,
        device.cert,
    )
    with pytest.raises(EnvelopeError, match="typ must be"):
        parse_envelope(report)
    with pytest.raises(EnvelopeError, match="typ must be"):
        parse_dropped(reading)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"first": 5, "last": 4}, "after last"),
        ({"first": 0}, "out of range"),
        ({"reason": "lost"}, "reason"),
        ({"device": "a b"}, "device"),
    ],
)
def test_a_malformed_report_cannot_be_made(fields: dict[str, object], problem: str) -> None:
    values: dict[str, object] = {
        "device": "dev-1",
        "first": 1,
        "last": 2,
        "reason": "overflow",
        "ts": T0 + timedelta(seconds=1),
    }
    with pytest.raises(ValueError, match=problem):
        DroppedRange(**(values | fields))  # type: ignore[arg-type]
