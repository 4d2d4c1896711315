"""What the gateway decides about one message, before anything is stored.

Pure: no MQTT, no database. The order is that of the envelope verification (tracehub.verify:
certificate chain, validity at the reading's time, revocation, identity = topic, signature),
then the gateway's own bound on clock skew. Sequence, duplicate and hash-chain checks need the
stored state of the device and happen in the store's transaction.

When the directory is the ledger's device registry (a :class:`LedgerDirectory`, as in the
gateway process), a certificate it does not know is ``device_not_enrolled``, a certificate the
ledger records as revoked at or before the reading's time is ``revoked``, and a ledger that cannot
be asked is ``registry_unavailable`` (decision 0024). None of these readings is stored, so none
is acknowledged: the device keeps them and resends them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

from certs.registry_cache import Enrolment
from tracehub.dropped import VerifiedDropped, verify_dropped
from tracehub.ledger import LedgerError
from tracehub.reading import format_ts
from tracehub.verify import (
    CertificateDirectory,
    Reason,
    TrustStore,
    VerificationError,
    VerifiedReading,
    verify_envelope,
)

TOPIC = re.compile(r"tracehub/v1/devices/([A-Za-z0-9][A-Za-z0-9._-]{0,63})/readings")
DROPPED_TOPIC = re.compile(r"tracehub/v1/devices/([A-Za-z0-9][A-Za-z0-9._-]{0,63})/dropped")
MAX_ENVELOPE = 16 * 1024
NOT_ENROLLED = "device_not_enrolled"
REGISTRY_UNAVAILABLE = "registry_unavailable"

_Verified = TypeVar("_Verified")


@runtime_checkable
class LedgerDirectory(CertificateDirectory, Protocol):
    """A directory that is the ledger's device registry (certs.registry_cache.RegistryCache)."""

    def enrolment(self, sha256: bytes) -> Enrolment | None: ...


@functools.cache
def _is_ledger_directory(kind: type) -> bool:
    # Once per directory class: isinstance() against a runtime-checkable Protocol walks the
    # protocol's members on every call, about 45 µs, as much as a third of a reading's checks.
    return issubclass(kind, LedgerDirectory)


@dataclass(frozen=True)
class _Refusal:
    reason: str
    detail: str


def _verified_on_ledger(
    verify: Callable[[], _Verified],
    directory: CertificateDirectory,
    *,
    fingerprint: Callable[[_Verified], str],
    ts: Callable[[_Verified], datetime],
) -> _Verified | _Refusal:
    """Run ``verify``; with a ledger directory also refuse what the ledger does not vouch for
    at the message's time."""
    ledger = cast(LedgerDirectory, directory) if _is_ledger_directory(type(directory)) else None
    try:
        verified = verify()
        # A cache hit: the look-up inside verify() has just loaded it.
        sha256 = bytes.fromhex(fingerprint(verified))
        enrolment = None if ledger is None else ledger.enrolment(sha256)
    except VerificationError as exc:
        if exc.reason is Reason.UNKNOWN_CERTIFICATE and ledger is not None:
            return _Refusal(NOT_ENROLLED, f"not enrolled on the ledger: {exc.detail}")
        return _Refusal(str(exc.reason), exc.detail)
    except LedgerError as exc:
        return _Refusal(REGISTRY_UNAVAILABLE, f"the ledger's registry cannot be asked: {exc}")
    if ledger is not None:
        if enrolment is None:  # forgotten since the look-up a moment ago: ask again later
            return _Refusal(NOT_ENROLLED, "the certificate is no longer enrolled on the ledger")
        revoked = enrolment.revoked_at
        if revoked is not None and ts(verified) >= revoked:
            return _Refusal(
                str(Reason.REVOKED),
                f"revoked on the ledger at {format_ts(revoked)} "
                f"({enrolment.revocation_reason or 'unspecified'}), "
                f"before the message's time {format_ts(ts(verified))}",
            )
    return verified


@dataclass(frozen=True)
class Accepted:
    """A reading that passed every check that needs no stored state."""

    verified: VerifiedReading
    envelope: bytes
    received_at: datetime


@dataclass(frozen=True)
class Rejected:
    """A message for the quarantine: why, and the raw bytes as they came."""

    topic: str
    device_id: str | None
    reason: str
    detail: str
    raw: bytes
    received_at: datetime


def device_from_topic(topic: str) -> str | None:
    match = TOPIC.fullmatch(topic)
    return match.group(1) if match else None


def check_message(
    topic: str,
    payload: bytes,
    *,
    trust: TrustStore,
    directory: CertificateDirectory,
    received_at: datetime,
    max_future_skew: timedelta,
) -> Accepted | Rejected:
    """Accept a message as a verified reading, or say why not."""

    def reject(reason: str, detail: str, device: str | None = None) -> Rejected:
        return Rejected(topic, device, reason, detail, payload, received_at)

    device_id = device_from_topic(topic)
    if device_id is None:
        return reject("bad_topic", f"not a readings topic: {topic!r}")
    if len(payload) > MAX_ENVELOPE:
        return reject("oversize", f"{len(payload)} bytes > {MAX_ENVELOPE}", device_id)
    verified = _verified_on_ledger(
        lambda: verify_envelope(payload, trust, directory, topic_device_id=device_id),
        directory,
        fingerprint=lambda v: v.fingerprint,
        ts=lambda v: v.reading.ts,
    )
    if isinstance(verified, _Refusal):
        return reject(verified.reason, verified.detail, device_id)
    # Readings may arrive days late (the edge spools through outages) but never from the
    # future: a device clock far ahead would let it pre-date nothing and post-date everything.
    if verified.reading.ts - received_at > max_future_skew:
        ahead = (verified.reading.ts - received_at).total_seconds()
        return reject(
            "clock_skew", f"reading time is {ahead:.0f} s ahead of the gateway", device_id
        )
    return Accepted(verified, payload, received_at)


@dataclass(frozen=True)
class AcceptedDrop:
    """A dropped-range report whose signature verified (docs/dropped-report.md)."""

    verified: VerifiedDropped
    envelope: bytes
    received_at: datetime


def is_dropped_report(topic: str) -> bool:
    return DROPPED_TOPIC.fullmatch(topic) is not None


def check_dropped(
    topic: str,
    payload: bytes,
    *,
    trust: TrustStore,
    directory: CertificateDirectory,
    received_at: datetime,
    max_future_skew: timedelta,
) -> AcceptedDrop | Rejected:
    """Accept a device's dropped-range report, verified as readings are, or say why not."""
    match = DROPPED_TOPIC.fullmatch(topic)
    device_id = match.group(1) if match else None

    def reject(reason: str, detail: str) -> Rejected:
        return Rejected(topic, device_id, reason, detail, payload, received_at)

    if device_id is None:
        return reject("bad_topic", f"not a dropped-range topic: {topic!r}")
    if len(payload) > MAX_ENVELOPE:
        return reject("oversize", f"{len(payload)} bytes > {MAX_ENVELOPE}")
    verified = _verified_on_ledger(
        lambda: verify_dropped(payload, trust, directory, topic_device_id=device_id),
        directory,
        fingerprint=lambda v: v.fingerprint,
        ts=lambda v: v.report.ts,
    )
    if isinstance(verified, _Refusal):
        return reject(verified.reason, verified.detail)
    if verified.report.ts - received_at > max_future_skew:
        ahead = (verified.report.ts - received_at).total_seconds()
        return reject("clock_skew", f"report time is {ahead:.0f} s ahead of the gateway")
    return AcceptedDrop(verified, payload, received_at)


def reading_row(accepted: Accepted) -> dict[str, Any]:
    """The fields the store needs, from an accepted reading."""
    reading = accepted.verified.reading
    return {
        "device_id": reading.device,
        "seq": reading.seq,
        "ts": reading.ts,
        "kind": reading.kind,
        "data": reading.data,
        "loc": reading.loc,
        "prev_hash": reading.prev,
        "reading_hash": accepted.verified.hash,
        "envelope": accepted.envelope,
        "certificate_sha256": accepted.verified.fingerprint,
        "received_at": accepted.received_at,
    }
