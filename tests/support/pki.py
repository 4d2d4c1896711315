"""A small device PKI for tests: root CA -> device CA -> device certificates, and CRLs.

It follows the conventions of ``certs/pki.py`` (ECDSA P-256, CN = device id, URI SAN
``urn:tracehub:device:<id>``, keyUsage digitalSignature, EKU clientAuth) but is independent of
it, and every knob a verification test needs to turn is a keyword argument.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Readings in the tests are made at this time; device certificates cover it.
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
VALID_FROM = datetime(2026, 1, 1, tzinfo=UTC)
VALID_TO = datetime(2027, 1, 1, tzinfo=UTC)

_KEY_USAGE_FALSE: dict[str, bool] = dict.fromkeys(
    (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    ),
    False,
)


def key_usage(**on: bool) -> x509.KeyUsage:
    """A KeyUsage with the named bits set."""
    return x509.KeyUsage(**(_KEY_USAGE_FALSE | on))


def name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "TraceHub Test"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    key: Any
    cert: x509.Certificate


def make_certificate(
    subject: x509.Name,
    public_key: Any,
    issuer: Issued | None,
    signing_key: Any,
    *,
    ca: bool,
    path_length: int | None = None,
    not_before: datetime = VALID_FROM,
    not_after: datetime = VALID_TO,
    usage: x509.KeyUsage | None = None,
    eku: Sequence[x509.ObjectIdentifier] | None = None,
    uris: Sequence[str] = (),
    serial: int | None = None,
) -> x509.Certificate:
    """One certificate; ``issuer`` None means self-signed with ``signing_key``."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(public_key)
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(usage, critical=True)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if uris:
        sans = [x509.UniformResourceIdentifier(u) for u in uris]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def make_ca(cn: str, parent: Issued | None = None, **kwargs: Any) -> Issued:
    """A root (no ``parent``, pathlen 1) or an intermediate (pathlen 0) CA."""
    key = new_key()
    kwargs.setdefault("path_length", 1 if parent is None else 0)
    kwargs.setdefault("usage", key_usage(key_cert_sign=True, crl_sign=True))
    kwargs.setdefault("not_before", datetime(2025, 1, 1, tzinfo=UTC))
    kwargs.setdefault("not_after", datetime(2035, 1, 1, tzinfo=UTC))
    signing_key = parent.key if parent else key
    cert = make_certificate(name(cn), key.public_key(), parent, signing_key, ca=True, **kwargs)
    return Issued(key, cert)


def make_crl(
    issuer: Issued,
    revoked: Iterable[tuple[int, datetime, x509.ReasonFlags | None]] = (),
    *,
    number: int = 1,
    signing_key: Any = None,
    last_update: datetime | None = None,
    next_update: datetime | None = None,
    invalidity: dict[int, datetime] | None = None,
) -> x509.CertificateRevocationList:
    """A CRL of ``issuer`` listing ``(serial, revocation date, reason)``; ``signing_key``
    other than the issuer's makes a forged CRL."""
    now = datetime.now(UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(last_update or now - timedelta(hours=1))
        .next_update(next_update or now + timedelta(days=7))
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    for serial, when, reason in revoked:
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
        if reason is not None:
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        if invalidity and serial in invalidity:
            entry = entry.add_extension(x509.InvalidityDate(invalidity[serial]), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(signing_key or issuer.key, hashes.SHA256())


class TestPKI:
    """Root CA -> device CA, issuing device certificates and CRLs."""

    __test__ = False  # not a pytest test class

    def __init__(self, label: str = "Test") -> None:
        self.root = make_ca(f"{label} Root CA")
        self.device_ca = make_ca(f"{label} Device CA", self.root)

    def device(
        self,
        device_id: str = "dev-1",
        *,
        cn: str | None = None,
        uri_id: str | None = None,
        key: Any = None,
        issuer: Issued | None = None,
        usage: x509.KeyUsage | None = None,
        eku: Sequence[x509.ObjectIdentifier] | None = (ExtendedKeyUsageOID.CLIENT_AUTH,),
        ca: bool = False,
        **kwargs: Any,
    ) -> Issued:
        """A device certificate; every field can be bent for a negative test."""
        key = key or new_key()
        issuer = issuer or self.device_ca
        cert = make_certificate(
            name(cn if cn is not None else device_id),
            key.public_key(),
            issuer,
            issuer.key,
            ca=ca,
            usage=usage or key_usage(digital_signature=True),
            eku=eku,
            uris=[f"urn:tracehub:device:{uri_id if uri_id is not None else device_id}"],
            **kwargs,
        )
        return Issued(key, cert)

    def crl(
        self, revoked: Iterable[tuple[int, datetime, x509.ReasonFlags | None]] = (), **kwargs: Any
    ) -> x509.CertificateRevocationList:
        """A CRL of the device CA."""
        return make_crl(self.device_ca, revoked, **kwargs)

    @property
    def roots(self) -> list[x509.Certificate]:
        return [self.root.cert]

    @property
    def intermediates(self) -> list[x509.Certificate]:
        return [self.device_ca.cert]
