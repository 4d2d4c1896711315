"""TraceHub's device PKI: a root CA, a device CA and a service CA, built with ``cryptography``.

Layout under the PKI root (directories 0700, private keys 0600)::

    root/ca.crt, ca.key, crl.pem          root CA: P-256, 10 years, pathlen 1; its CRL lists
                                          revoked intermediates (none)
    device-ca/ca.crt, ca.key, crl.pem     device CA: P-256, 5 years, pathlen 0; signs devices
    service-ca/ca.crt, ca.key, crl.pem    service CA: same shape; signs the services
    services/<name>/cert.pem, key.pem, chain.pem
                                          a service's leaf, key, and leaf + service CA: broker,
                                          api, broker-admin, and per gateway process NAME
                                          gateway-NAME and gateway-NAME.alerts
    orgs/<org_id>/cert.pem, key.pem, chain.pem
                                          an organisation's staff MQTT client (CN org:<id>),
                                          issued by the service CA
    devices/<id>/cert.pem                 a device's newest certificate
    devices/<id>/key.pem                  its key, for simulated devices only
    ca-bundle.pem                         root + device CA + service CA (the broker's cafile)
    crl.pem                               root, device CA and service CA CRLs (its crlfile)
    index.sqlite3                         every device certificate ever issued (SQLite, WAL)
    .lock                                 ``flock``-ed by every writer, across processes

CA material is never overwritten: ``init()`` creates what is missing and refuses
(``PKIStateError``) to continue from an inconsistent state. Derived files are replaced atomically.

Errors: ``PKIError`` is the root (defined with the naming rules in tracehub.pki_names, which
refuse with ``PKINameError``, so that the kernel never imports certs); the PKI refuses with
``PKIRequestError`` (a bad argument, CSR or validity), ``PKIStateError`` (its files do not allow
it now) or ``UnknownDeviceError``.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tracehub.errors import ConflictError, NotFoundError, UnprocessableError
from tracehub.pki_names import (
    PKIError,
    PKINameError,
    device_id_from_certificate,
    device_uri,
    gateway_services,
    org_uri,
    org_username,
    service_uri,
    service_username,
    site_service,
    validate_device_id,
    validate_org_id,
    validate_service_name,
)

__all__ = [
    "PKI",
    "CAName",
    "DeviceCertificate",
    "PKIError",
    "PKINameError",
    "PKIRequestError",
    "PKIStateError",
    "Status",
    "UnknownDeviceError",
    "device_id_from_certificate",
    "device_uri",
    "generate_device_key_and_csr",
    "validate_device_id",
]

Status = Literal["active", "revoked", "expired"]
CAName = Literal["root", "device-ca", "service-ca"]
IPLike = str | ipaddress.IPv4Address | ipaddress.IPv6Address

ROOT_DAYS = 3650
#: How long before their creation the CAs' validity starts. A hub's CAs exist long before the
#: devices they certify; the local stack's are made by `make up`, and without this a reading
#: signed before that moment (a logger provisioned and recording before the stack was built,
#: as the demo's voyage is) could not be chained to them. Device and service certificates are
#: dated honestly from their issue (or their provisioning); see decision 0026.
CA_HISTORY = timedelta(days=30)
INTERMEDIATE_DAYS = 1825
SERVICE_DAYS = 825
CRL_DAYS = 7
#: ``init()`` re-issues a default service certificate this close to its expiry.
SERVICE_RENEW_BEFORE = timedelta(days=30)

_CAS: tuple[CAName, ...] = ("root", "device-ca", "service-ca")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS certificates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    serial TEXT NOT NULL UNIQUE,
    device_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE,
    not_after TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    revoked_at TEXT,
    revocation_reason TEXT,
    pem TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS certificates_device ON certificates (device_id, id);
"""


class PKIRequestError(PKIError, UnprocessableError):
    """The PKI cannot do this as asked: a bad argument, certificate signing request or validity."""


class PKIStateError(PKIError, ConflictError):
    """The PKI's files do not allow this now: not initialised, an inconsistent CA, or a device
    that already has an active certificate."""


class UnknownDeviceError(PKIError, NotFoundError):
    """No certificate was ever issued to the device."""


@dataclass(frozen=True)
class DeviceCertificate:
    """One issued device certificate and its state in the index."""

    device_id: str
    serial: int
    fingerprint_sha256: str
    issuer: str
    subject: str
    not_before: datetime
    not_after: datetime
    status: Status
    revoked_at: datetime | None
    revocation_reason: str | None
    certificate_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        """The parsed certificate."""
        return x509.load_pem_x509_certificate(self.certificate_pem)


@dataclass(frozen=True)
class _Authority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class _ServiceSpec:
    name: str
    common_name: str
    dns: tuple[str, ...] = ()
    ips: tuple[IPLike, ...] = ()
    server: bool = True
    client: bool = False
    uri: str | None = None
    validity_days: int = SERVICE_DAYS


_DEFAULT_SERVICES = (
    _ServiceSpec("broker", "localhost", dns=("localhost",), ips=("127.0.0.1",)),
    _ServiceSpec("api", "localhost", dns=("localhost",), ips=("127.0.0.1",)),
)
#: The gateway process started without ``--name`` (python -m gateway): set-up issues its identities.
DEFAULT_GATEWAY = "gw-1"


def _client_spec(name: str) -> _ServiceSpec:
    """A service that only connects to the broker. The broker takes the CN as the MQTT username
    and client id; a colon cannot appear in a device id, so no device is ever issued it."""
    return _ServiceSpec(
        name, service_username(name), server=False, client=True, uri=service_uri(name)
    )


#: Clients issued at set-up: the broker's administrator (network/mosquitto/mosquitto.sh gives
#: it the dynamic-security control topic: admitting gateways, cutting off revoked devices) and
#: the default gateway process's two identities.
_DEFAULT_CLIENTS = (
    _client_spec("broker-admin"),
    *(_client_spec(name) for name in gateway_services(DEFAULT_GATEWAY)),
)


def generate_device_key_and_csr(device_id: str) -> tuple[bytes, bytes]:
    """A new P-256 key (PKCS#8 PEM) and a CSR for it (PEM), as a simulated device makes them."""
    validate_device_id(device_id)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
        .sign(key, hashes.SHA256())
    )
    return _key_pem(key), csr.public_bytes(serialization.Encoding.PEM)


class PKI:
    """The CAs, service certificates, device certificates and CRLs under one directory."""

    generate_device_key_and_csr = staticmethod(generate_device_key_and_csr)

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ paths

    @property
    def ca_bundle_path(self) -> Path:
        """Root + device CA + service CA, PEM."""
        return self.root / "ca-bundle.pem"

    @property
    def crl_path(self) -> Path:
        """The root, device CA and service CA CRLs, concatenated PEM."""
        return self.root / "crl.pem"

    @property
    def index_path(self) -> Path:
        """The SQLite index of issued device certificates."""
        return self.root / "index.sqlite3"

    def ca_paths(self, ca: CAName) -> tuple[Path, Path, Path]:
        """``(ca.crt, ca.key, crl.pem)`` of one CA."""
        base = self.root / ca
        return base / "ca.crt", base / "ca.key", base / "crl.pem"

    def service_paths(self, name: str) -> tuple[Path, Path, Path]:
        """``(cert.pem, key.pem, chain.pem)`` of a service."""
        base = self.root / "services" / validate_service_name(name)
        return base / "cert.pem", base / "key.pem", base / "chain.pem"

    def org_paths(self, org_id: str) -> tuple[Path, Path, Path]:
        """``(cert.pem, key.pem, chain.pem)`` of an organisation's staff MQTT client."""
        base = self.root / "orgs" / validate_org_id(org_id)
        return base / "cert.pem", base / "key.pem", base / "chain.pem"

    def device_paths(self, device_id: str) -> tuple[Path, Path]:
        """``(cert.pem, key.pem)`` of a device; the key exists for simulated devices only."""
        base = self.root / "devices" / validate_device_id(device_id)
        return base / "cert.pem", base / "key.pem"

    # ------------------------------------------------------------------ set-up

    def init(self, organisation: str = "TraceHub") -> bool:
        """Create whatever is missing; ``True`` if anything was created.

        Existing CAs are kept as they are (``organisation`` names new CAs only).
        """
        if not organisation.strip():
            raise PKIRequestError("organisation must not be empty")
        with self._locked():
            changed = False
            if not self.ca_paths("root")[0].exists() and any(
                (self.root / ca).exists() for ca in _CAS[1:]
            ):
                raise PKIStateError(
                    f"{self.root} has intermediate CAs but no root CA; restore root/ or start "
                    "from an empty directory"
                )
            root, created = self._ensure_ca("root", None, organisation)
            changed |= created
            organisation = _organisation(root.cert) or organisation
            device_ca, created = self._ensure_ca("device-ca", root, organisation)
            changed |= created
            service_ca, created = self._ensure_ca("service-ca", root, organisation)
            changed |= created
            changed |= self._ensure_index()
            for spec in (*_DEFAULT_SERVICES, *_DEFAULT_CLIENTS):
                if self._service_needs_issue(spec.name, service_ca):
                    self._issue_service(spec, service_ca)
                    changed = True
            stale = [
                ca
                for ca, auth in zip(_CAS, (root, device_ca, service_ca), strict=True)
                if not _crl_is_current(self.ca_paths(ca)[2], auth)
            ]
            if stale:
                self._publish_crls(stale)
                changed = True
            bundle = b"".join(_cert_pem(a.cert) for a in (root, device_ca, service_ca))
            changed |= _write_if_changed(self.ca_bundle_path, bundle)
            changed |= _write_if_changed(self.crl_path, self._combined_crls())
            return changed

    def issue_service_certificate(
        self,
        name: str,
        *,
        common_name: str,
        dns: Iterable[str] = (),
        ips: Iterable[IPLike] = (),
        server: bool = True,
        client: bool = False,
        uri: str | None = None,
        validity_days: int = SERVICE_DAYS,
    ) -> x509.Certificate:
        """Issue (or re-issue, with a new key) ``services/<name>/`` from the service CA."""
        spec = _ServiceSpec(
            validate_service_name(name),
            common_name,
            tuple(dns),
            tuple(ips),
            server,
            client,
            uri,
            validity_days,
        )
        with self._locked():
            return self._issue_service(spec, self._authority("service-ca"))

    def ensure_gateway_certificates(self, name: str) -> tuple[str, str]:
        """Issue the identities of the gateway process ``name`` (``gateway_services``) unless
        they exist and are current; their service names. The broker grants them the gateway's
        rights once admitted (certs.broker.admit_gateway, or at its next start)."""
        self._require_initialised()
        names = gateway_services(name)
        with self._locked():
            service_ca = self._authority("service-ca")
            for service in names:
                if self._service_needs_issue(service, service_ca):
                    self._issue_service(_client_spec(service), service_ca)
        return names

    def ensure_site_certificate(self, name: str) -> str:
        """Issue the identity of site broker ``name`` (``site_service``) unless it exists and is
        current; its service name. A server certificate for loopback (its devices' listener) and
        a client certificate (its bridge to the hub) in one: the hub grants its CN the role
        ``site`` once admitted (certs.broker.admit_site, or at the hub broker's next start)."""
        self._require_initialised()
        service = site_service(name)
        spec = _ServiceSpec(
            service,
            service_username(service),
            dns=("localhost",),
            ips=("127.0.0.1",),
            server=True,
            client=True,
            uri=service_uri(service),
        )
        with self._locked():
            service_ca = self._authority("service-ca")
            if self._service_needs_issue(service, service_ca):
                self._issue_service(spec, service_ca)
        return service

    def site_devices_path(self, name: str) -> Path:
        """``services/site-<name>/devices``: the site's devices, one id a line. The hub broker
        lets the site read exactly their acknowledgement topics, and the site broker's bridge
        brings those back to them."""
        return self.service_paths(site_service(name))[0].parent / "devices"

    def site_devices(self, name: str) -> list[str]:
        """The devices listed for site ``name`` (none before any is added)."""
        path = self.site_devices_path(name)
        if not path.exists():
            return []
        return [validate_device_id(line) for line in path.read_text().split()]

    def add_site_devices(self, name: str, devices: Iterable[str]) -> list[str]:
        """List ``devices`` (ids, validated) at site ``name`` too; the whole list, sorted."""
        added = {validate_device_id(device) for device in devices}
        with self._locked():
            listed = sorted(set(self.site_devices(name)) | added)
            if added:
                text = "".join(f"{device}\n" for device in listed)
                _write_atomic(self.site_devices_path(name), text.encode())
        return listed

    def issue_organisation_certificate(
        self, org_id: str, *, validity_days: int = SERVICE_DAYS
    ) -> x509.Certificate:
        """Issue (or re-issue, with a new key) ``orgs/<org_id>/``: a client certificate whose CN
        ``org:<org_id>`` is the broker username that may read the organisation's alert topics
        (and nothing else). Issued by the service CA: it is no device."""
        self._require_initialised()
        spec = _ServiceSpec(
            f"org-{validate_org_id(org_id)}",
            org_username(org_id),
            server=False,
            client=True,
            uri=org_uri(org_id),
            validity_days=validity_days,
        )
        with self._locked():
            return self._issue_service(
                spec, self._authority("service-ca"), paths=self.org_paths(org_id)
            )

    # ------------------------------------------------------------------ devices

    def enrol_device(
        self,
        device_id: str,
        csr_pem: bytes,
        *,
        validity_days: int = 365,
        not_before: datetime | None = None,
        replace: bool = False,
    ) -> DeviceCertificate:
        """Issue a device certificate for the key in ``csr_pem`` (the CSR's subject is ignored).

        Refused if the device has an active certificate, unless ``replace``; the certificates
        it replaces are then revoked as superseded.
        """
        validate_device_id(device_id)
        public_key = _csr_public_key(csr_pem)
        with self._locked():
            return self._enrol(device_id, public_key, validity_days, not_before, replace, None)

    def enrol_simulated_device(
        self,
        device_id: str,
        *,
        validity_days: int = 365,
        not_before: datetime | None = None,
        replace: bool = False,
    ) -> DeviceCertificate:
        """Generate a key and CSR, enrol them, and keep the key in ``devices/<id>/key.pem``."""
        key_pem, csr_pem = generate_device_key_and_csr(device_id)
        public_key = _csr_public_key(csr_pem)
        with self._locked():
            return self._enrol(device_id, public_key, validity_days, not_before, replace, key_pem)

    def revoke_device(
        self,
        device_id: str,
        reason: x509.ReasonFlags = x509.ReasonFlags.unspecified,
        *,
        at: datetime | None = None,
    ) -> list[DeviceCertificate]:
        """Revoke every unrevoked certificate of a device and publish new CRLs.

        Returns the certificates this call revoked, newest first; if there were none (revoking
        again), the device's already-revoked certificates, and nothing changes.
        """
        validate_device_id(device_id)
        if reason == x509.ReasonFlags.remove_from_crl:
            raise PKIRequestError("removeFromCRL is only meaningful in delta CRLs")
        when = _now() if at is None else _aware(at, "at")
        with self._locked():
            self._require_initialised()
            with self._db() as db:
                rows = db.execute(
                    "SELECT serial, revoked_at FROM certificates WHERE device_id = ?", (device_id,)
                ).fetchall()
                if not rows:
                    raise UnknownDeviceError(
                        f"unknown device {device_id!r}: no certificate was issued to it"
                    )
                pending = {int(row["serial"], 16) for row in rows if row["revoked_at"] is None}
                if pending:
                    db.execute(
                        "UPDATE certificates SET revoked_at = ?, revocation_reason = ? "
                        "WHERE device_id = ? AND revoked_at IS NULL",
                        (when.isoformat(), reason.value, device_id),
                    )
            if pending:
                self._publish_crls(["device-ca"])
        revoked = [r for r in self.device(device_id) if r.status == "revoked"]
        return [r for r in revoked if r.serial in pending] if pending else revoked

    def list_devices(self) -> list[DeviceCertificate]:
        """Every device certificate ever issued: by device id, newest first per device."""
        return self._query("SELECT * FROM certificates ORDER BY device_id, id DESC", ())

    def device(self, device_id: str) -> list[DeviceCertificate]:
        """A device's certificates, newest first (empty if none was issued)."""
        return self._query(
            "SELECT * FROM certificates WHERE device_id = ? ORDER BY id DESC",
            (validate_device_id(device_id),),
        )

    def certificate_by_fingerprint(self, fingerprint: str) -> DeviceCertificate | None:
        """The device certificate with this SHA-256 fingerprint (hex, any case, ``:`` allowed)."""
        wanted = fingerprint.replace(":", "").strip().lower()
        found = self._query("SELECT * FROM certificates WHERE fingerprint = ?", (wanted,))
        return found[0] if found else None

    # ------------------------------------------------------------------ CAs and CRLs

    def root_certificate(self) -> x509.Certificate:
        """The root CA certificate."""
        return self._load_cert("root")

    def device_ca_certificate(self) -> x509.Certificate:
        """The device CA certificate."""
        return self._load_cert("device-ca")

    def service_ca_certificate(self) -> x509.Certificate:
        """The service CA certificate."""
        return self._load_cert("service-ca")

    def crls(self) -> list[x509.CertificateRevocationList]:
        """The CRLs in ``crl.pem``: root, device CA, service CA."""
        self._require_initialised()
        return _load_pem_crls(self.crl_path.read_bytes())

    def refresh_crls(self) -> None:
        """Re-issue all CRLs (new thisUpdate / nextUpdate, next CRL number)."""
        with self._locked():
            self._require_initialised()
            self._publish_crls(list(_CAS))

    # ------------------------------------------------------------------ internals

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        _ensure_dir(self.root)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A connection whose work is committed on success, rolled back on error."""
        conn = sqlite3.connect(self.index_path, timeout=30)
        conn.row_factory = sqlite3.Row
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    def _require_initialised(self) -> None:
        if not (self.ca_paths("root")[0].exists() and self.index_path.exists()):
            raise PKIStateError(f"no PKI at {self.root}: run init() first")

    def _ensure_index(self) -> bool:
        existed = self.index_path.exists()
        with self._db() as db:
            db.execute("PRAGMA journal_mode = WAL")
            db.executescript(_SCHEMA)
        os.chmod(self.index_path, 0o600)
        return not existed

    def _load_cert(self, ca: CAName) -> x509.Certificate:
        path = self.ca_paths(ca)[0]
        if not path.exists():
            raise PKIStateError(f"no {ca} certificate at {path}: run init() first")
        return x509.load_pem_x509_certificate(path.read_bytes())

    def _authority(self, ca: CAName) -> _Authority:
        cert_path, key_path, _ = self.ca_paths(ca)
        if not (cert_path.exists() and key_path.exists()):
            raise PKIStateError(f"{ca} is incomplete or missing in {self.root}: run init() first")
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or _spki(key.public_key()) != _spki(
            cert.public_key()
        ):
            raise PKIStateError(f"{key_path} does not hold the private key of {cert_path}")
        return _Authority(cert, key)

    def _ensure_ca(
        self,
        ca: CAName,
        issuer: _Authority | None,
        organisation: str,
    ) -> tuple[_Authority, bool]:
        cert_path, key_path, _ = self.ca_paths(ca)
        if cert_path.exists() and key_path.exists():
            authority = self._authority(ca)
            if issuer is not None and not _issued_by(authority.cert, issuer.cert):
                raise PKIStateError(f"{cert_path} was not issued by this PKI's root CA")
            return authority, False
        if cert_path.exists() or key_path.exists():
            raise PKIStateError(
                f"{cert_path.parent} holds half a CA (certificate or key missing); "
                "restore it or remove the directory"
            )
        title = {"root": "Root CA", "device-ca": "Device CA", "service-ca": "Service CA"}[ca]
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _ca_certificate(_name(organisation, f"{organisation} {title}"), key, issuer)
        _ensure_dir(cert_path.parent)
        _write_atomic(key_path, _key_pem(key), 0o600)
        _write_atomic(cert_path, _cert_pem(cert))
        return _Authority(cert, key), True

    def _service_needs_issue(self, name: str, ca: _Authority) -> bool:
        paths = self.service_paths(name)
        if not all(p.exists() for p in paths):
            return True
        cert = x509.load_pem_x509_certificate(paths[0].read_bytes())
        expiring = cert.not_valid_after_utc - _now() < SERVICE_RENEW_BEFORE
        return expiring or not _issued_by(cert, ca.cert)

    def _issue_service(
        self,
        spec: _ServiceSpec,
        ca: _Authority,
        paths: tuple[Path, Path, Path] | None = None,
    ) -> x509.Certificate:
        if not (spec.server or spec.client):
            raise PKIRequestError(
                f"service {spec.name!r}: a certificate must be for server or client"
            )
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in spec.dns]
        for ip in spec.ips:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(ip)))
            except ValueError:
                raise PKIRequestError(
                    f"service {spec.name!r}: {ip!r} is not an IP address"
                ) from None
        if spec.uri is not None:
            sans.append(x509.UniformResourceIdentifier(spec.uri))
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] if spec.server else []
        usages += [ExtendedKeyUsageOID.CLIENT_AUTH] if spec.client else []
        key = ec.generate_private_key(ec.SECP256R1())
        start = _now()
        end = _not_after(start, spec.validity_days, ca.cert)
        cert = _leaf_certificate(
            _name(_organisation(ca.cert), spec.common_name),
            key.public_key(),
            ca,
            start,
            end,
            sans,
            usages,
        )
        cert_path, key_path, chain_path = paths or self.service_paths(spec.name)
        _ensure_dir(cert_path.parent.parent)
        _ensure_dir(cert_path.parent)
        _write_atomic(key_path, _key_pem(key), 0o600)
        _write_atomic(cert_path, _cert_pem(cert))
        _write_atomic(chain_path, _cert_pem(cert) + _cert_pem(ca.cert))
        return cert

    def _enrol(
        self,
        device_id: str,
        public_key: ec.EllipticCurvePublicKey,
        validity_days: int,
        not_before: datetime | None,
        replace: bool,
        key_pem: bytes | None,
    ) -> DeviceCertificate:
        self._require_initialised()
        ca = self._authority("device-ca")
        now = _now()
        start = now if not_before is None else _aware(not_before, "not_before")
        end = _not_after(start, validity_days, ca.cert)
        cert_path, key_path = self.device_paths(device_id)
        with self._db() as db:
            rows = db.execute(
                "SELECT * FROM certificates WHERE device_id = ? AND revoked_at IS NULL",
                (device_id,),
            ).fetchall()
            active = [r for r in rows if _record(r, now).status == "active"]
            if active and not replace:
                raise PKIStateError(
                    f"device {device_id!r} already has an active certificate "
                    f"(fingerprint {active[0]['fingerprint']}); pass replace=True to issue another"
                )
            cert = _leaf_certificate(
                _name(_organisation(ca.cert), device_id),
                public_key,
                ca,
                start,
                end,
                [x509.UniformResourceIdentifier(device_uri(device_id))],
                [ExtendedKeyUsageOID.CLIENT_AUTH],
            )
            pem = _cert_pem(cert)
            db.execute(
                "INSERT INTO certificates"
                " (serial, device_id, fingerprint, not_after, issued_at, pem)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    format(cert.serial_number, "x"),
                    device_id,
                    _fingerprint(cert),
                    end.isoformat(),
                    now.isoformat(),
                    pem.decode(),
                ),
            )
            for row in active:
                db.execute(
                    "UPDATE certificates SET revoked_at = ?, revocation_reason = ? WHERE id = ?",
                    (now.isoformat(), x509.ReasonFlags.superseded.value, row["id"]),
                )
            _ensure_dir(cert_path.parent.parent)
            _ensure_dir(cert_path.parent)
            if key_pem is not None:
                _write_atomic(key_path, key_pem, 0o600)
            else:
                key_path.unlink(missing_ok=True)
            _write_atomic(cert_path, pem)
            fetched = db.execute(
                "SELECT * FROM certificates WHERE serial = ?", (format(cert.serial_number, "x"),)
            ).fetchone()
        if active:
            self._publish_crls(["device-ca"])
        return _record(fetched, now)

    def _query(self, sql: str, params: Sequence[str]) -> list[DeviceCertificate]:
        self._require_initialised()
        now = _now()
        with self._db() as db:
            return [_record(row, now) for row in db.execute(sql, params).fetchall()]

    def _revoked_entries(self, ca: CAName) -> list[tuple[int, datetime, x509.ReasonFlags]]:
        if ca != "device-ca":
            return []  # only device certificates are revoked through this API
        with self._db() as db:
            rows = db.execute(
                "SELECT serial, revoked_at, revocation_reason FROM certificates "
                "WHERE revoked_at IS NOT NULL ORDER BY id"
            ).fetchall()
        return [
            (
                int(r["serial"], 16),
                datetime.fromisoformat(r["revoked_at"]),
                x509.ReasonFlags(r["revocation_reason"]),
            )
            for r in rows
        ]

    def _publish_crls(self, cas: Iterable[CAName]) -> None:
        """Re-issue the named CAs' CRLs, then rewrite the combined ``crl.pem``."""
        now = _now()
        for ca in cas:
            authority = self._authority(ca)
            crl_path = self.ca_paths(ca)[2]
            number = _crl_number(crl_path) + 1
            crl = _build_crl(authority, number, self._revoked_entries(ca), now)
            _write_atomic(crl_path, crl.public_bytes(serialization.Encoding.PEM))
        _write_atomic(self.crl_path, self._combined_crls())

    def _combined_crls(self) -> bytes:
        return b"".join(self.ca_paths(ca)[2].read_bytes() for ca in _CAS)


# ---------------------------------------------------------------------- certificates


def _name(organisation: str, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _organisation(cert: x509.Certificate) -> str:
    values = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(values[0].value) if values else ""


def _ca_certificate(
    subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: _Authority | None
) -> x509.Certificate:
    """Root CA (``issuer`` None: self-signed, pathlen 1) or intermediate (pathlen 0), valid
    from CA_HISTORY before now."""
    start = _now() - CA_HISTORY
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if issuer is None:
        return (
            builder.issuer_name(subject)
            .not_valid_after(start + timedelta(days=ROOT_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .sign(key, hashes.SHA256())
        )
    return (
        builder.issuer_name(issuer.cert.subject)
        .not_valid_after(_not_after(start, INTERMEDIATE_DAYS, issuer.cert))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_aki(issuer.cert), critical=False)
        .sign(issuer.key, hashes.SHA256())
    )


def _leaf_certificate(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    ca: _Authority,
    start: datetime,
    end: datetime,
    sans: list[x509.GeneralName],
    usages: list[x509.ObjectIdentifier],
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_aki(ca.cert), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca.key, hashes.SHA256())


def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _not_after(start: datetime, days: int, ca: x509.Certificate) -> datetime:
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise PKIRequestError(f"validity must be a whole number of days >= 1, got {days!r}")
    end = start + timedelta(days=days)
    if end > ca.not_valid_after_utc:
        raise PKIRequestError(
            f"a certificate valid until {end:%Y-%m-%d} would outlive its CA "
            f"(valid until {ca.not_valid_after_utc:%Y-%m-%d})"
        )
    return end


def _csr_public_key(csr_pem: bytes) -> ec.EllipticCurvePublicKey:
    """The CSR's public key, once its self-signature verifies and it is EC P-256."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
        valid = csr.is_signature_valid
        key = csr.public_key()
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise PKIRequestError(f"not a usable PEM certificate signing request: {exc}") from None
    if not valid:
        raise PKIRequestError(
            "the CSR's signature does not verify: it was not signed by its own key"
        )
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise PKIRequestError(f"device keys must be EC P-256, the CSR has a {type(key).__name__}")
    if not isinstance(key.curve, ec.SECP256R1):
        raise PKIRequestError(f"device keys must be EC P-256, the CSR's key is on {key.curve.name}")
    return key


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _record(row: sqlite3.Row, now: datetime) -> DeviceCertificate:
    pem = str(row["pem"]).encode()
    cert = x509.load_pem_x509_certificate(pem)
    revoked_at = datetime.fromisoformat(row["revoked_at"]) if row["revoked_at"] else None
    status: Status = "active"
    if revoked_at is not None:
        status = "revoked"
    elif now > cert.not_valid_after_utc:
        status = "expired"
    return DeviceCertificate(
        device_id=row["device_id"],
        serial=cert.serial_number,
        fingerprint_sha256=row["fingerprint"],
        issuer=cert.issuer.rfc4514_string(),
        subject=cert.subject.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        status=status,
        revoked_at=revoked_at,
        revocation_reason=row["revocation_reason"],
        certificate_pem=pem,
    )


# ---------------------------------------------------------------------- CRLs


def _build_crl(
    ca: _Authority,
    number: int,
    revoked: Iterable[tuple[int, datetime, x509.ReasonFlags]],
    now: datetime,
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now)
        .next_update(now + timedelta(days=CRL_DAYS))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(_aki(ca.cert), critical=False)
    )
    for serial, when, reason in revoked:
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
        if reason != x509.ReasonFlags.unspecified:  # RFC 5280 5.3.1: omit rather than 0
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(ca.key, hashes.SHA256())


def _crl_number(path: Path) -> int:
    """The CRL number of the CRL at ``path``, 0 if there is none."""
    try:
        crl = x509.load_pem_x509_crl(path.read_bytes())
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except (FileNotFoundError, ValueError, x509.ExtensionNotFound):
        return 0


def _crl_is_current(path: Path, ca: _Authority) -> bool:
    """Whether ``path`` holds a CRL signed by ``ca`` (init re-issues it otherwise)."""
    try:
        crl = x509.load_pem_x509_crl(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return False
    return crl.issuer == ca.cert.subject and crl.is_signature_valid(ca.key.public_key())


def _load_pem_crls(data: bytes) -> list[x509.CertificateRevocationList]:
    marker = b"-----END X509 CRL-----"
    chunks = [c + marker for c in data.split(marker) if c.strip()]
    return [x509.load_pem_x509_crl(c.strip() + b"\n") for c in chunks]


# ---------------------------------------------------------------------- files and values


def _ensure_dir(path: Path) -> None:
    path.mkdir(mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to a temporary file beside ``path`` (created 0600), then rename it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write_if_changed(path: Path, data: bytes) -> bool:
    if path.exists() and path.read_bytes() == data:
        return False
    _write_atomic(path, data)
    return True


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _spki(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise PKIRequestError(f"{what} must be a timezone-aware datetime")
    return value.astimezone(UTC).replace(microsecond=0)
