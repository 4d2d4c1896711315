"""The dropped-range report: a device's signed statement that it no longer has some readings.

When an edge agent's spool drops readings it never got the hub's acknowledgement for (full
spool with ``drop-oldest``, expiry by age) it says so, signed like a reading: a compact JWS with
ES256 by the device key, ``typ`` ``tracehub-dropped+jws``, payload the canonical JSON of a
:class:`DroppedRange`. The gateway records a hole in a device's sequence as *lost* only where
such a report covers it; anything else stays *missing* and is asked for again. The format is
specified in ``docs/dropped-report.md``; the protocol around it in ``docs/acknowledgement.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import Certificate

from tracehub.envelope import (
    EnvelopeError,
    SignedParts,
    reading_hash,
    sign_payload,
    split_envelope,
)
from tracehub.reading import (
    DEVICE_ID_PATTERN,
    MAX_SAFE_INT,
    ReadingError,
    format_ts,
    parse_ts,
)
from tracehub.strictjson import refuse_duplicate_members
from tracehub.verify import (
    CertificateDirectory,
    Reason,
    TrustStore,
    VerificationError,
    verify_signer,
)

__all__ = [
    "TYP",
    "DropReason",
    "DroppedRange",
    "VerifiedDropped",
    "parse_dropped",
    "sign_dropped",
    "verify_dropped",
]

TYP = "tracehub-dropped+jws"
SCHEMA_VERSION = 1
#: overflow: the spool was full (drop-oldest); expired: older than the spool's maximum age;
#: unavailable: the hub asked for readings the agent does not hold and has no record of dropping
#: (a replaced spool file, say).
DropReason = Literal["overflow", "expired", "unavailable"]
_REASONS: tuple[str, ...] = get_args(DropReason)
_KEYS = frozenset({"v", "device", "first", "last", "reason", "ts"})
_NO_DUPLICATES = refuse_duplicate_members(
    lambda names: ReadingError(f"repeated member(s): {', '.join(names)}")
)


@dataclass(frozen=True)
class DroppedRange:
    """Readings ``first`` through ``last`` (inclusive) of ``device`` are gone from the device,
    for ``reason``; ``ts`` is when the device says so (its clock)."""

    device: str
    first: int
    last: int
    reason: DropReason
    ts: datetime
    v: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.v != SCHEMA_VERSION or isinstance(self.v, bool):
            raise ReadingError(f"v: unsupported version {self.v!r} (expected 1)")
        if not isinstance(self.device, str) or not DEVICE_ID_PATTERN.fullmatch(self.device):
            raise ReadingError(f"device: {self.device!r} is not a device id")
        for name in ("first", "last"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ReadingError(f"{name}: expected an integer")
            if not 1 <= value <= MAX_SAFE_INT:
                raise ReadingError(f"{name}: {value} is out of range 1..2^53-1")
        if self.first > self.last:
            raise ReadingError(f"first ({self.first}) is after last ({self.last})")
        if self.reason not in _REASONS:
            raise ReadingError(f"reason: {self.reason!r} is not one of {', '.join(_REASONS)}")
        if not isinstance(self.ts, datetime) or self.ts.utcoffset() is None:
            raise ReadingError("ts: expected a timezone-aware datetime")
        # Millisecond precision, as readings carry it, so the JSON round trip is exact.
        object.__setattr__(self, "ts", parse_ts(format_ts(self.ts)))

    def to_json_bytes(self) -> bytes:
        """The canonical payload: sorted keys, no whitespace."""
        obj = {
            "v": self.v,
            "device": self.device,
            "first": self.first,
            "last": self.last,
            "reason": self.reason,
            "ts": format_ts(self.ts),
        }
        return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json_bytes(cls, raw: bytes) -> DroppedRange:
        try:
            obj = json.loads(raw.decode("utf-8"), object_pairs_hook=_NO_DUPLICATES)
        except ReadingError:
            raise
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ReadingError(f"not valid UTF-8 JSON: {exc}") from None
        if not isinstance(obj, dict) or obj.keys() != _KEYS:
            raise ReadingError(f"expected an object with exactly {', '.join(sorted(_KEYS))}")
        if not isinstance(obj["ts"], str):
            raise ReadingError("ts: expected a string")
        return cls(
            device=obj["device"],
            first=obj["first"],
            last=obj["last"],
            reason=obj["reason"],
            ts=parse_ts(obj["ts"]),
            v=obj["v"],
        )


@dataclass(frozen=True)
class VerifiedDropped:
    """A report whose signature verified: the report, its hash, the signer's fingerprint."""

    report: DroppedRange
    #: Lowercase hex SHA-256 of the exact report bytes.
    hash: str
    #: Lowercase hex SHA-256 of the signer's DER certificate.
    fingerprint: str


def sign_dropped(
    report: DroppedRange, private_key: ec.EllipticCurvePrivateKey, certificate: Certificate
) -> bytes:
    """Sign ``report`` as the device holding ``certificate``; returns the ASCII JWS."""
    return sign_payload(report.to_json_bytes(), TYP, private_key, certificate)


def parse_dropped(envelope: bytes) -> DroppedRange:
    """The report in ``envelope``, structure checked; the signature is not verified.
    Raises EnvelopeError."""
    return _split(envelope)[0]


def _split(envelope: bytes) -> tuple[DroppedRange, SignedParts]:
    parts = split_envelope(envelope, TYP)
    try:
        report = DroppedRange.from_json_bytes(parts.payload)
    except ReadingError as exc:
        raise EnvelopeError(f"payload: {exc}") from None
    if report.to_json_bytes() != parts.payload:
        raise EnvelopeError("payload is not canonical JSON (sorted keys, no whitespace)")
    return report, parts


def verify_dropped(
    envelope: bytes,
    trust: TrustStore,
    directory: CertificateDirectory,
    *,
    topic_device_id: str | None = None,
) -> VerifiedDropped:
    """Verify a report as readings are verified (docs/reading-envelope.md §5, with the
    report's ``ts`` as the time of validity); raises VerificationError."""
    try:
        report, parts = _split(envelope)
    except EnvelopeError as exc:
        raise VerificationError(Reason.MALFORMED, str(exc)) from None
    verify_signer(
        parts,
        envelope,
        ts=report.ts,
        device=report.device,
        trust=trust,
        directory=directory,
        topic_device_id=topic_device_id,
        what="report",
    )
    return VerifiedDropped(report, reading_hash(envelope), parts.x5t.hex())
