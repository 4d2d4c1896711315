"""The gateway's per-message decision, without MQTT or a database."""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509

from certs.registry_cache import Enrolment
from gateway.checks import (
    NOT_ENROLLED,
    REGISTRY_UNAVAILABLE,
    Accepted,
    LedgerDirectory,
    Rejected,
    check_message,
    device_from_topic,
    reading_row,
)
from tests.support.pki import T0, TestPKI
from tracehub.envelope import parse_envelope, reading_hash, sign_reading
from tracehub.ledger import LedgerUnavailableError
from tracehub.reading import GENESIS_PREV, Reading
from tracehub.verify import InMemoryDirectory, TrustStore

SKEW = timedelta(minutes=5)


def _setup() -> tuple[TrustStore, InMemoryDirectory, bytes]:
    pki = TestPKI()
    device = pki.device("dev-1")
    trust = TrustStore(pki.roots, pki.intermediates, [pki.crl()])
    directory = InMemoryDirectory([device.cert])
    reading = Reading(
        device="dev-1",
        seq=1,
        ts=T0 + timedelta(hours=1),
        kind="environment",
        data={"temperature_c": 5.0, "humidity_pct": 40.0},
        prev=GENESIS_PREV,
    )
    return trust, directory, sign_reading(reading, device.key, device.cert)


TRUST, DIRECTORY, ENVELOPE = _setup()


def _check(
    envelope: bytes,
    topic: str = "tracehub/v1/devices/dev-1/readings",
    received_offset: timedelta = timedelta(hours=1, seconds=2),
) -> Accepted | Rejected:
    return check_message(
        topic,
        envelope,
        trust=TRUST,
        directory=DIRECTORY,
        received_at=T0 + received_offset,
        max_future_skew=SKEW,
    )


def test_valid_reading_is_accepted_with_its_row() -> None:
    result = _check(ENVELOPE)
    assert isinstance(result, Accepted)
    row = reading_row(result)
    assert (row["device_id"], row["seq"], row["prev_hash"]) == ("dev-1", 1, GENESIS_PREV)
    assert row["reading_hash"] == reading_hash(ENVELOPE)
    assert row["envelope"] == ENVELOPE


def test_rejections_carry_reason_and_raw_bytes() -> None:
    envelope = ENVELOPE
    other_topic = _check(envelope, topic="tracehub/v1/devices/dev-2/readings")
    assert isinstance(other_topic, Rejected)
    assert (other_topic.reason, other_topic.raw) == ("identity_mismatch", envelope)

    bad_topic = _check(envelope, topic="tracehub/v1/devices/dev+1/readings")
    assert isinstance(bad_topic, Rejected) and bad_topic.reason == "bad_topic"

    forged = envelope[:-8] + (b"AAAAAAAA" if not envelope.endswith(b"AAAAAAAA") else b"BBBBBBBB")
    forged_result = _check(forged)
    assert isinstance(forged_result, Rejected)
    assert forged_result.reason in {"bad_signature", "malformed"}

    oversize = _check(b"x" * (16 * 1024 + 1))
    assert isinstance(oversize, Rejected) and oversize.reason == "oversize"

    garbage = _check(b"\xff\x00not a jws")
    assert isinstance(garbage, Rejected) and garbage.reason == "malformed"


def test_reading_from_the_future_is_rejected_but_late_ones_are_fine() -> None:
    envelope = ENVELOPE
    ahead = _check(envelope, received_offset=timedelta(minutes=50))  # reading is 10 min ahead
    assert isinstance(ahead, Rejected) and ahead.reason == "clock_skew"
    late = _check(envelope, received_offset=timedelta(days=3))  # spooled through an outage
    assert isinstance(late, Accepted)
    row = reading_row(late)
    assert (row["device_id"], row["seq"], row["envelope"]) == ("dev-1", 1, envelope)


def test_topic_parsing() -> None:
    assert device_from_topic("tracehub/v1/devices/dock-3.a_b/readings") == "dock-3.a_b"
    assert device_from_topic("tracehub/v1/devices/a/b/readings") is None
    assert device_from_topic("tracehub/v1/devices//readings") is None


class _LedgerView:
    """The ledger's registry as the checks see it (certs.registry_cache.RegistryCache's
    interface), held in a dict: the refusals are pure decisions over what it answers."""

    def __init__(self, enrolments: dict[bytes, Enrolment], *, down: bool = False) -> None:
        self.enrolments = enrolments
        self.down = down

    def enrolment(self, sha256: bytes) -> Enrolment | None:
        if self.down:
            raise LedgerUnavailableError("peer unreachable")
        return self.enrolments.get(sha256)

    def by_fingerprint(self, sha256: bytes) -> x509.Certificate | None:
        found = self.enrolment(sha256)
        return None if found is None else found.certificate


def _on_ledger(revoked_at: datetime | None) -> _LedgerView:
    x5t = parse_envelope(ENVELOPE).x5t
    cert = DIRECTORY.by_fingerprint(x5t)
    assert cert is not None
    return _LedgerView({x5t: Enrolment("dev-1", cert, revoked_at, "keyCompromise")})


def _check_on(ledger: _LedgerView, envelope: bytes = ENVELOPE) -> Accepted | Rejected:
    return check_message(
        "tracehub/v1/devices/dev-1/readings",
        envelope,
        trust=TRUST,
        directory=ledger,
        received_at=T0 + timedelta(hours=1, seconds=2),
        max_future_skew=SKEW,
    )


def test_a_certificate_the_ledger_does_not_know_is_not_enrolled() -> None:
    empty = _LedgerView({})
    assert isinstance(empty, LedgerDirectory)
    refused = _check_on(empty)
    assert isinstance(refused, Rejected)
    assert refused.reason == NOT_ENROLLED == "device_not_enrolled"
    assert "not enrolled on the ledger" in refused.detail and refused.raw == ENVELOPE
    # The same unknown certificate with a plain directory keeps the verifier's reason.
    plain = check_message(
        "tracehub/v1/devices/dev-1/readings",
        ENVELOPE,
        trust=TRUST,
        directory=InMemoryDirectory(),
        received_at=T0 + timedelta(hours=1, seconds=2),
        max_future_skew=SKEW,
    )
    assert isinstance(plain, Rejected) and plain.reason == "unknown_certificate"


def test_a_ledger_revocation_refuses_readings_from_its_time_on() -> None:
    reading_time = T0 + timedelta(hours=1)
    assert isinstance(_check_on(_on_ledger(None)), Accepted)
    assert isinstance(_check_on(_on_ledger(reading_time + timedelta(seconds=1))), Accepted)
    for revoked_at in (reading_time, reading_time - timedelta(days=1)):
        refused = _check_on(_on_ledger(revoked_at))
        assert isinstance(refused, Rejected) and refused.reason == "revoked"
        assert "revoked on the ledger" in refused.detail and "keyCompromise" in refused.detail


def test_a_ledger_that_cannot_be_asked_refuses_without_deciding() -> None:
    refused = _check_on(_LedgerView({}, down=True))
    assert isinstance(refused, Rejected) and refused.reason == REGISTRY_UNAVAILABLE
