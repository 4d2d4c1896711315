"""Verification of signed reading envelopes against the device PKI.

Checks run in a fixed order and the first failure decides the :class:`Reason`: parse,
certificate lookup, chain, validity at the reading's time, revocation, key usage, identity,
signature. Everything that depends only on the certificate and the CRLs is computed once per
certificate and cached with the CRL set it came from, so the hot path per reading is one
payload parse and one ECDSA verification. The algorithm is in ``docs/reading-envelope.md``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol, cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tracehub.envelope import (
    EnvelopeError,
    ParsedEnvelope,
    SignedParts,
    certificate_thumbprint,
    parse_envelope,
    reading_hash,
)
from tracehub.errors import UnprocessableError
from tracehub.pki_names import DEVICE_URI_PREFIX, device_id_from_certificate
from tracehub.reading import Reading, format_ts

__all__ = [
    "CertificateDirectory",
    "InMemoryDirectory",
    "Reason",
    "TrustStore",
    "VerificationError",
    "VerifiedReading",
    "load_pem_crls",
    "verify_envelope",
    "verify_signer",
]

#: Revocation reasons that make every signature by the key suspect, whatever its date.
_COMPROMISE = frozenset({x509.ReasonFlags.key_compromise, x509.ReasonFlags.ca_compromise})
_MAX_CACHED = 100_000
_EPOCH_MIN = datetime.min.replace(tzinfo=UTC)
_EPOCH_MAX = datetime.max.replace(tzinfo=UTC)


class Reason(StrEnum):
    """Why an envelope was rejected; each failure has exactly one reason."""

    MALFORMED = "malformed"
    UNKNOWN_CERTIFICATE = "unknown_certificate"
    UNKNOWN_CA = "unknown_ca"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    REVOKED = "revoked"
    CRL_UNAVAILABLE = "crl_unavailable"
    WRONG_KEY_USAGE = "wrong_key_usage"
    IDENTITY_MISMATCH = "identity_mismatch"
    BAD_SIGNATURE = "bad_signature"


class VerificationError(UnprocessableError):
    """An envelope failed verification: ``reason`` for machines, ``detail`` for people."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class VerifiedReading:
    """A reading whose envelope verified: the reading, the envelope hash, the signer."""

    reading: Reading
    #: Lowercase hex SHA-256 of the envelope bytes (:func:`tracehub.envelope.reading_hash`).
    hash: str
    #: Lowercase hex SHA-256 of the signer's DER certificate.
    fingerprint: str


class CertificateDirectory(Protocol):
    """Where enrolled device certificates are looked up by their SHA-256 fingerprint."""

    def by_fingerprint(self, sha256: bytes) -> x509.Certificate | None: ...


class InMemoryDirectory:
    """A :class:`CertificateDirectory` held in a dict."""

    def __init__(self, certificates: Iterable[x509.Certificate] = ()) -> None:
        self._certs: dict[bytes, x509.Certificate] = {}
        for cert in certificates:
            self.add(cert)

    def add(self, certificate: x509.Certificate) -> None:
        self._certs[certificate_thumbprint(certificate)] = certificate

    def by_fingerprint(self, sha256: bytes) -> x509.Certificate | None:
        return self._certs.get(sha256)


# ---------------------------------------------------------------------- trust store


@dataclass(frozen=True)
class _Crl:
    """The CRL chosen for one CA: valid signature, highest CRL number."""

    crl: x509.CertificateRevocationList
    number: int


@dataclass
class _CrlSet:
    """One generation of CRLs, and the per-certificate results computed from it."""

    by_ca: dict[bytes, _Crl]
    #: CA fingerprint -> why no usable CRL exists (only for CAs that have some CRL).
    problems: dict[bytes, str]
    facts: dict[bytes, _Facts] = field(default_factory=dict)


class TrustStore:
    """Trusted roots, device-CA intermediates and the CRLs of both.

    ``allow_stale_crls`` accepts CRLs past their ``nextUpdate`` (an auditor working from the
    last CRL they have); a live gateway keeps the default and refuses stale CRLs.
    """

    def __init__(
        self,
        roots: Sequence[x509.Certificate],
        intermediates: Sequence[x509.Certificate],
        crls: Sequence[x509.CertificateRevocationList],
        *,
        allow_stale_crls: bool = False,
    ) -> None:
        self.roots = tuple(roots)
        self.intermediates = tuple(intermediates)
        self.allow_stale_crls = allow_stale_crls
        self._crls = self._index_crls(crls)

    @classmethod
    def from_pem_files(
        cls, bundle_path: str | Path, crl_path: str | Path, *, allow_stale_crls: bool = False
    ) -> TrustStore:
        """Load a PEM CA bundle (self-signed certificates are roots, the others intermediates)
        and a PEM file of one or more CRLs."""
        certs = x509.load_pem_x509_certificates(Path(bundle_path).read_bytes())
        roots = [c for c in certs if _self_signed(c)]
        intermediates = [c for c in certs if not _self_signed(c)]
        crls = load_pem_crls(Path(crl_path).read_bytes())
        return cls(roots, intermediates, crls, allow_stale_crls=allow_stale_crls)

    @property
    def crls(self) -> tuple[x509.CertificateRevocationList, ...]:
        """The CRL in use for each CA."""
        return tuple(c.crl for c in self._crls.by_ca.values())

    def replace_crls(self, crls: Sequence[x509.CertificateRevocationList]) -> None:
        """Install new CRLs; every cached per-certificate result is dropped with the old ones."""
        self._crls = self._index_crls(crls)

    def _index_crls(self, crls: Sequence[x509.CertificateRevocationList]) -> _CrlSet:
        by_ca: dict[bytes, _Crl] = {}
        problems: dict[bytes, str] = {}
        for crl in crls:
            issuers = [ca for ca in (*self.roots, *self.intermediates) if ca.subject == crl.issuer]
            for ca in issuers:
                key = certificate_thumbprint(ca)
                if not _crl_signed_by(crl, ca):
                    problems.setdefault(key, f"the CRL of {_cn(ca)} has an invalid signature")
                    continue
                number = _crl_number(crl)
                if key not in by_ca or number > by_ca[key].number:
                    by_ca[key] = _Crl(crl, number)
        return _CrlSet(by_ca, problems)


def load_pem_crls(data: bytes) -> list[x509.CertificateRevocationList]:
    """Every CRL in a PEM file (``-----BEGIN X509 CRL-----`` blocks)."""
    blocks = re.findall(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", data, re.DOTALL)
    return [x509.load_pem_x509_crl(block + b"\n") for block in blocks]


# ---------------------------------------------------------------------- per-certificate facts


@dataclass(frozen=True)
class _Revocation:
    """What the CRLs say about a certificate and its device CA."""

    #: Why no usable CRL exists (``crl_unavailable``), else ``None``.
    unavailable: str | None = None
    #: Readings at or after this time are revoked; ``None``: none are (unless ``all``).
    since: datetime | None = None
    #: A compromise: every reading is revoked, whatever its time.
    all: bool = False
    detail: str = ""
    #: The earliest ``nextUpdate`` of the CRLs consulted.
    next_update: datetime | None = None


@dataclass(frozen=True)
class _Facts:
    """What one certificate's checks concluded, independent of any single reading."""

    cert: x509.Certificate
    #: Why the chain does not lead to a trusted root; when set, nothing below is filled in.
    chain_error: str | None
    not_before: datetime = _EPOCH_MIN
    not_before_of: str = ""
    not_after: datetime = _EPOCH_MAX
    not_after_of: str = ""
    revocation: _Revocation = _Revocation()
    key_usage_error: str | None = None
    identity_error: str | None = None
    device_id: str = ""
    key: ec.EllipticCurvePublicKey | None = None


def _facts(trust: TrustStore, crls: _CrlSet, cert: x509.Certificate) -> _Facts:
    chain = _chain(trust, cert)
    if isinstance(chain, str):
        return _Facts(cert, chain_error=chain)
    ca, root = chain
    labelled = [("the device certificate", cert), (_cn(ca), ca), (_cn(root), root)]
    start_of, start = max(((n, c.not_valid_before_utc) for n, c in labelled), key=_when)
    end_of, end = min(((n, c.not_valid_after_utc) for n, c in labelled), key=_when)
    key_usage_error = _key_usage(cert)
    device_id, identity_error = _identity(cert)
    return _Facts(
        cert,
        chain_error=None,
        not_before=start,
        not_before_of=start_of,
        not_after=end,
        not_after_of=end_of,
        revocation=_revocation(crls, cert, ca, root),
        key_usage_error=key_usage_error,
        identity_error=identity_error,
        device_id=device_id or "",
        key=None if key_usage_error else _ec_key(cert),
    )


def _when(pair: tuple[str, datetime]) -> datetime:
    return pair[1]


def _chain(
    trust: TrustStore, cert: x509.Certificate
) -> tuple[x509.Certificate, x509.Certificate] | str:
    """(device CA, root) when ``cert`` chains to a trusted root, else why not."""
    cas = [ca for ca in trust.intermediates if _issued(cert, ca) and _is_ca(ca, max_below=0)]
    if not cas:
        return f"no trusted device CA issued this certificate (issuer {_rfc4514(cert.issuer)})"
    for ca in cas:
        for root in trust.roots:
            if _issued(ca, root) and _is_ca(root, max_below=1):
                return ca, root
    return f"the device CA {_cn(cas[0])} does not chain to a trusted root"


def _issued(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _is_ca(cert: x509.Certificate, *, max_below: int) -> bool:
    """A CA certificate allowed to sign certificates with ``max_below`` CAs under it."""
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    if not bc.ca or (bc.path_length is not None and bc.path_length < max_below):
        return False
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return ku.key_cert_sign


def _revocation(
    crls: _CrlSet, cert: x509.Certificate, ca: x509.Certificate, root: x509.Certificate
) -> _Revocation:
    """Revocation of ``cert`` by the device CA's CRL (required) and of the device CA by the
    root's CRL (consulted when the store has one)."""
    ca_key, root_key = certificate_thumbprint(ca), certificate_thumbprint(root)
    if ca_key not in crls.by_ca:
        return _Revocation(crls.problems.get(ca_key, f"no CRL of {_cn(ca)} is loaded"))
    if root_key in crls.problems and root_key not in crls.by_ca:
        return _Revocation(crls.problems[root_key])
    checks = [("the device certificate", crls.by_ca[ca_key].crl, cert.serial_number)]
    if root_key in crls.by_ca:
        checks.append((f"its issuer {_cn(ca)}", crls.by_ca[root_key].crl, ca.serial_number))
    updates = [crl.next_update_utc for _, crl, _ in checks if crl.next_update_utc is not None]
    result = _Revocation(next_update=min(updates, default=None))
    for what, crl, serial in checks:
        entry = crl.get_revoked_certificate_by_serial_number(serial)
        if entry is None:
            continue
        since, reason = _revoked_since(entry)
        why = f" ({reason.name})" if reason else ""
        detail = f"{what} was revoked{why} on {since:%Y-%m-%dT%H:%M:%SZ}"
        if reason in _COMPROMISE:
            detail += "; every reading it signed is rejected"
            return replace(result, all=True, since=since, detail=detail)
        if result.since is None or since < result.since:
            result = replace(result, since=since, detail=detail)
    return result


def _revoked_since(entry: x509.RevokedCertificate) -> tuple[datetime, x509.ReasonFlags | None]:
    """The revocation time (the earlier of revocationDate and invalidityDate) and reason."""
    since = entry.revocation_date_utc
    reason = None
    for ext in entry.extensions:
        if isinstance(ext.value, x509.InvalidityDate):
            since = min(since, ext.value.invalidity_date_utc)
        elif isinstance(ext.value, x509.CRLReason):
            reason = ext.value.reason
    return since, reason


def _key_usage(cert: x509.Certificate) -> str | None:
    """Why ``cert`` may not sign readings, or ``None``."""
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        return "the certificate's key is not ECDSA P-256"
    ext = cert.extensions
    try:
        if ext.get_extension_for_class(x509.BasicConstraints).value.ca:
            return "the certificate is a CA certificate"
    except x509.ExtensionNotFound:
        pass
    try:
        if not ext.get_extension_for_class(x509.KeyUsage).value.digital_signature:
            return "keyUsage does not include digitalSignature"
    except x509.ExtensionNotFound:
        return "the certificate has no keyUsage extension"
    try:
        eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    if ExtendedKeyUsageOID.CLIENT_AUTH in eku or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku:
        return None
    return "extendedKeyUsage does not include clientAuth"


def _identity(cert: x509.Certificate) -> tuple[str | None, str | None]:
    """(device id, None) when the certificate names one device, else (None, why not)."""
    device_id = device_id_from_certificate(cert)
    if device_id is None:
        return None, (
            f"the certificate does not name one device: it needs exactly one {DEVICE_URI_PREFIX}"
            "<id> URI SAN with a valid id, equal to its only subject CN"
        )
    return device_id, None


def _ec_key(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    """The key of a certificate that passed :func:`_key_usage` (so it is ECDSA P-256)."""
    return cast(ec.EllipticCurvePublicKey, cert.public_key())


def _crl_signed_by(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> bool:
    try:
        return crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    except TypeError:  # a CA key type that cannot sign CRLs
        return False


def _self_signed(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer and _issued(cert, cert)


def _cn(cert: x509.Certificate) -> str:
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return f"CA {cns[0].value!r}" if cns else f"CA {_rfc4514(cert.subject)}"


def _rfc4514(name: x509.Name) -> str:
    return name.rfc4514_string()


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return -1


# ---------------------------------------------------------------------- verification


def verify_envelope(
    envelope: bytes,
    trust: TrustStore,
    directory: CertificateDirectory,
    *,
    topic_device_id: str | None = None,
) -> VerifiedReading:
    """Verify ``envelope``; raises :class:`VerificationError` with the first failing reason."""
    try:
        parsed = parse_envelope(envelope)
    except EnvelopeError as exc:
        raise VerificationError(Reason.MALFORMED, str(exc)) from None
    reading = parsed.reading
    verify_signer(
        parsed,
        envelope,
        ts=reading.ts,
        device=reading.device,
        trust=trust,
        directory=directory,
        topic_device_id=topic_device_id,
    )
    return VerifiedReading(reading, reading_hash(envelope), parsed.x5t.hex())


def verify_signer(
    parts: SignedParts | ParsedEnvelope,
    envelope: bytes,
    *,
    ts: datetime,
    device: str,
    trust: TrustStore,
    directory: CertificateDirectory,
    topic_device_id: str | None = None,
    what: str = "reading",
) -> None:
    """Steps 2-8 of the verification for any signed device message: the signer's certificate,
    its chain, validity at ``ts``, revocation, key usage, identity (``device``, and the topic's
    device id if given) and the signature. Raises :class:`VerificationError`; ``what`` names
    the message in its detail."""
    cert = directory.by_fingerprint(parts.x5t)
    crls = trust._crls  # one generation for the whole call, even if replace_crls runs meanwhile
    facts = crls.facts.get(parts.x5t)
    if cert is None or facts is None or (facts.cert is not cert and facts.cert != cert):
        if cert is None or certificate_thumbprint(cert) != parts.x5t:
            raise VerificationError(
                Reason.UNKNOWN_CERTIFICATE,
                f"no enrolled certificate has x5t#S256 {parts.x5t.hex()}",
            )
        facts = _facts(trust, crls, cert)
        if len(crls.facts) >= _MAX_CACHED:
            crls.facts.clear()
        crls.facts[parts.x5t] = facts
    _check_certificate(facts, ts, device, trust.allow_stale_crls, topic_device_id, what)
    if not _signature_ok(parts, facts.key):
        raise VerificationError(Reason.BAD_SIGNATURE, "the ES256 signature does not verify")


def _check_certificate(
    facts: _Facts,
    ts: datetime,
    device: str,
    allow_stale_crls: bool,
    topic_device_id: str | None,
    what: str,
) -> None:
    """Chain, validity at the message's time, revocation, key usage, identity: in that order."""
    if facts.chain_error is not None:
        raise VerificationError(Reason.UNKNOWN_CA, facts.chain_error)
    if ts < facts.not_before:
        raise VerificationError(
            Reason.NOT_YET_VALID,
            f"the {what}'s time {format_ts(ts)} is before {facts.not_before_of} "
            f"became valid ({facts.not_before:%Y-%m-%dT%H:%M:%SZ})",
        )
    if ts > facts.not_after:
        raise VerificationError(
            Reason.EXPIRED,
            f"the {what}'s time {format_ts(ts)} is after {facts.not_after_of} "
            f"expired ({facts.not_after:%Y-%m-%dT%H:%M:%SZ})",
        )
    rev = facts.revocation
    if rev.unavailable is not None:
        raise VerificationError(Reason.CRL_UNAVAILABLE, rev.unavailable)
    if rev.all or (rev.since is not None and ts >= rev.since):
        raise VerificationError(Reason.REVOKED, rev.detail)
    if not allow_stale_crls and rev.next_update is not None and _now() > rev.next_update:
        raise VerificationError(
            Reason.CRL_UNAVAILABLE,
            f"the CRL is stale: its nextUpdate was {rev.next_update:%Y-%m-%dT%H:%M:%SZ}",
        )
    if facts.key_usage_error is not None:
        raise VerificationError(Reason.WRONG_KEY_USAGE, facts.key_usage_error)
    if facts.identity_error is not None:
        raise VerificationError(Reason.IDENTITY_MISMATCH, facts.identity_error)
    if device != facts.device_id:
        raise VerificationError(
            Reason.IDENTITY_MISMATCH,
            f"the {what}'s device {device!r} is not the certificate's {facts.device_id!r}",
        )
    if topic_device_id is not None and topic_device_id != facts.device_id:
        raise VerificationError(
            Reason.IDENTITY_MISMATCH,
            f"the topic's device {topic_device_id!r} is not the certificate's {facts.device_id!r}",
        )


def _signature_ok(
    parts: SignedParts | ParsedEnvelope, key: ec.EllipticCurvePublicKey | None
) -> bool:
    """ES256 (RFC 7518 §3.4) over the exact segments received, by `cryptography` directly.

    The envelope's parser already held the header to exactly alg=ES256, typ and x5t#S256 and
    decoded the signature strictly (canonical base64url, 64 bytes), which is all joserfc's
    validation added around this call (decision 0036).
    """
    if key is None:
        return False
    r = int.from_bytes(parts.signature[:32], "big")
    s = int.from_bytes(parts.signature[32:], "big")
    try:
        key.verify(encode_dss_signature(r, s), parts.signing_input, _ES256)
    except InvalidSignature:
        return False
    return True


def _now() -> datetime:
    return datetime.now(UTC)


_ES256 = ec.ECDSA(hashes.SHA256())
