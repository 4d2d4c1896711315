"""Unit tests for certs.pki: CAs, device enrolment, revocation and CRLs (no network)."""

from __future__ import annotations

import ipaddress
import multiprocessing
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    DNSName,
    IPAddress,
    PolicyBuilder,
    Store,
    VerificationError,
)

from certs.pki import (
    PKI,
    PKIError,
    device_id_from_certificate,
    device_uri,
    generate_device_key_and_csr,
    validate_device_id,
)

# ---------------------------------------------------------------- helpers


@pytest.fixture()
def pki(tmp_path: Path) -> PKI:
    p = PKI(tmp_path / "pki")
    assert p.init() is True
    return p


def _csr(key: Any, subject: x509.Name | None = None, sans: list[x509.GeneralName] | None = None):
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        subject or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "whatever")])
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256())


def _pem(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.PEM)


def _fingerprint(path: Path) -> str:
    return x509.load_pem_x509_certificate(path.read_bytes()).fingerprint(hashes.SHA256()).hex()


def _pem_crls(path: Path) -> list[x509.CertificateRevocationList]:
    marker = b"-----END X509 CRL-----"
    data = path.read_bytes()
    return [
        x509.load_pem_x509_crl(c.strip() + b"\n" + marker + b"\n")
        for c in data.split(marker)
        if c.strip()
    ]


def _device_crl(pki: PKI) -> x509.CertificateRevocationList:
    crls = [c for c in _pem_crls(pki.crl_path) if c.issuer == pki.device_ca_certificate().subject]
    assert len(crls) == 1
    return crls[0]


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def _client_verifier(pki: PKI, when: datetime | None = None) -> Any:
    builder = PolicyBuilder().store(Store([pki.root_certificate()]))
    return builder.time(when or datetime.now(UTC)).build_client_verifier()


# ---------------------------------------------------------------- init and layout

#: Client certificates set-up issues: the broker's administrator and the default gateway's two.
CLIENT_SERVICES = ("broker-admin", "gateway-gw-1", "gateway-gw-1.alerts")


def test_init_is_idempotent(pki: PKI) -> None:
    files = [
        pki.ca_paths("root")[0],
        pki.ca_paths("device-ca")[0],
        pki.ca_paths("service-ca")[0],
        *(pki.service_paths(name)[0] for name in ("broker", "api", *CLIENT_SERVICES)),
    ]
    before = {path: _fingerprint(path) for path in files}
    keys = {p: p.read_bytes() for p in pki.root.rglob("*.key")}
    crl = pki.crl_path.read_bytes()

    assert pki.init() is False
    assert PKI(pki.root).init(organisation="Someone else") is False

    assert {path: _fingerprint(path) for path in files} == before
    assert {p: p.read_bytes() for p in pki.root.rglob("*.key")} == keys
    assert pki.crl_path.read_bytes() == crl


def test_layout_and_permissions(pki: PKI) -> None:
    for ca in ("root", "device-ca", "service-ca"):
        assert all(p.is_file() for p in pki.ca_paths(ca))
    for name in ("broker", "api", *CLIENT_SERVICES):
        assert all(p.is_file() for p in pki.service_paths(name))
    assert not pki.service_paths("gateway")[0].exists()  # no identity shared by processes
    assert pki.ca_bundle_path.is_file() and pki.crl_path.is_file() and pki.index_path.is_file()
    pki.enrol_simulated_device("sim-1")

    keys = [p for p in pki.root.rglob("*") if p.name in {"ca.key", "key.pem"}]
    assert len(keys) == 3 + 5 + 1
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    for directory in [pki.root, *(p for p in pki.root.rglob("*") if p.is_dir())]:
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory


def test_refuses_half_a_ca(tmp_path: Path) -> None:
    pki = PKI(tmp_path)
    pki.init()
    pki.ca_paths("device-ca")[1].unlink()
    with pytest.raises(PKIError, match="half a CA"):
        pki.init()


def test_operations_need_init(tmp_path: Path) -> None:
    pki = PKI(tmp_path / "nothing")
    with pytest.raises(PKIError, match="init"):
        pki.enrol_simulated_device("dev-1")
    with pytest.raises(PKIError, match="init"):
        pki.list_devices()


def test_ca_certificates(pki: PKI) -> None:
    root = pki.root_certificate()
    assert root.issuer == root.subject
    root.verify_directly_issued_by(root)
    assert root.not_valid_after_utc - root.not_valid_before_utc == timedelta(days=3650)
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 1
    ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value

    for ca in (pki.device_ca_certificate(), pki.service_ca_certificate()):
        assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
        assert isinstance(ca.public_key().curve, ec.SECP256R1)
        ca.verify_directly_issued_by(root)
        bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and bc.value.ca and bc.value.path_length == 0
        ku = ca.extensions.get_extension_for_class(x509.KeyUsage)
        assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
        aki = ca.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        assert aki.key_identifier == ski.digest
        assert ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        assert ca.not_valid_after_utc - ca.not_valid_before_utc == timedelta(days=1825)

    bundle = x509.load_pem_x509_certificates(pki.ca_bundle_path.read_bytes())
    assert bundle == [root, pki.device_ca_certificate(), pki.service_ca_certificate()]


def test_service_certificates_verify(pki: PKI) -> None:
    store = Store([pki.root_certificate()])
    service_ca = pki.service_ca_certificate()
    for name in ("broker", "api"):
        cert_path, key_path, chain_path = pki.service_paths(name)
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        assert x509.load_pem_x509_certificates(chain_path.read_bytes()) == [cert, service_ca]
        for subject in (DNSName("localhost"), IPAddress(ipaddress.ip_address("127.0.0.1"))):
            chain = (
                PolicyBuilder()
                .store(store)
                .build_server_verifier(subject)
                .verify(cert, [service_ca])
            )
            assert chain[-1] == pki.root_certificate()
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert key.public_key() == cert.public_key()

    for name in CLIENT_SERVICES:
        client = x509.load_pem_x509_certificate(pki.service_paths(name)[0].read_bytes())
        verified = _client_verifier(pki).verify(client, [service_ca])
        assert verified.subjects == [x509.UniformResourceIdentifier(f"urn:tracehub:service:{name}")]
        assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
            f"service:{name}"
        )
        eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_each_gateway_process_has_identities_of_its_own(pki: PKI) -> None:
    names = pki.ensure_gateway_certificates("gw-7")
    assert names == ("gateway-gw-7", "gateway-gw-7.alerts")
    certs = [pki.service_paths(name)[0].read_bytes() for name in names]
    common_names = [
        x509.load_pem_x509_certificate(pem).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0]
        for pem in certs
    ]
    assert [cn.value for cn in common_names] == [
        "service:gateway-gw-7",
        "service:gateway-gw-7.alerts",
    ]
    # Idempotent: a restarted process keeps its certificates (and so its broker session).
    assert pki.ensure_gateway_certificates("gw-7") == names
    assert [pki.service_paths(name)[0].read_bytes() for name in names] == certs
    with pytest.raises(PKIError, match="invalid service name"):
        pki.ensure_gateway_certificates("x" * 50)  # gateway-<50>.alerts is over 64 characters


def test_a_site_broker_has_one_identity_for_its_listener_and_its_bridge(pki: PKI) -> None:
    name = pki.ensure_site_certificate("dock-3")
    assert name == "site-dock-3"
    pem = pki.service_paths(name)[0].read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    assert (
        cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "service:site-dock-3"
    )
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
    # Idempotent: a restarted site broker keeps its certificate, and so its hub session.
    assert pki.ensure_site_certificate("dock-3") == name
    assert pki.service_paths(name)[0].read_bytes() == pem
    with pytest.raises(PKIError, match="invalid service name"):
        pki.ensure_site_certificate("dock:3")


def test_a_site_lists_its_devices(pki: PKI) -> None:
    pki.ensure_site_certificate("dock-4")
    assert pki.site_devices("dock-4") == []
    assert pki.add_site_devices("dock-4", ["sensor-b", "sensor-a"]) == ["sensor-a", "sensor-b"]
    assert pki.add_site_devices("dock-4", ["sensor-c", "sensor-a"]) == [
        "sensor-a",
        "sensor-b",
        "sensor-c",
    ]
    assert pki.site_devices("dock-4") == ["sensor-a", "sensor-b", "sensor-c"]
    with pytest.raises(PKIError):
        pki.add_site_devices("dock-4", ["not/a/device"])  # it would become a topic level
    assert pki.site_devices("dock-4") == ["sensor-a", "sensor-b", "sensor-c"]


def test_issue_extra_service_certificate(pki: PKI) -> None:
    cert = pki.issue_service_certificate(
        "gateway-2", common_name="gateway-2", server=False, client=True, uri="urn:x:y"
    )
    assert pki.service_paths("gateway-2")[0].read_bytes() == cert.public_bytes(
        serialization.Encoding.PEM
    )
    with pytest.raises(PKIError, match="not an IP address"):
        pki.issue_service_certificate("bad", common_name="bad", ips=["localhost"])
    with pytest.raises(PKIError, match="invalid service name"):
        pki.issue_service_certificate("../etc", common_name="x")


# ---------------------------------------------------------------- device ids


@pytest.mark.parametrize("device_id", ["a", "dev-1", "Sensor_01.cold-chain", "9" * 64, "A.b_c-D"])
def test_valid_device_ids(device_id: str) -> None:
    assert validate_device_id(device_id) == device_id
    assert device_uri(device_id) == f"urn:tracehub:device:{device_id}"


@pytest.mark.parametrize(
    "device_id",
    [
        "",
        "-dev",
        ".dev",
        "_dev",
        "a" * 65,
        "dev/1",
        "dev+1",
        "dev#",
        "dev 1",
        "dev\n",
        "dév",
        "a:b",
    ],
)
def test_invalid_device_ids(pki: PKI, device_id: str) -> None:
    with pytest.raises(PKIError, match="invalid device id"):
        validate_device_id(device_id)
    with pytest.raises(PKIError, match="invalid device id"):
        pki.enrol_simulated_device(device_id)


def test_device_id_from_certificate_needs_cn_and_uri_to_agree(pki: PKI) -> None:
    record = pki.enrol_simulated_device("dev-1")
    assert device_id_from_certificate(record.certificate) == "dev-1"

    key = ec.generate_private_key(ec.SECP256R1())

    def cert(cn: str, sans: list[x509.GeneralName]) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(datetime.now(UTC))
            .not_valid_after(datetime.now(UTC) + timedelta(days=1))
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(key, hashes.SHA256())

    uri = x509.UniformResourceIdentifier
    assert device_id_from_certificate(cert("dev-1", [uri(device_uri("dev-1"))])) == "dev-1"
    assert device_id_from_certificate(cert("dev-2", [uri(device_uri("dev-1"))])) is None
    assert device_id_from_certificate(cert("dev-1", [])) is None
    assert device_id_from_certificate(cert("x y", [uri("urn:tracehub:device:x y")])) is None
    two = [uri(device_uri("dev-1")), uri(device_uri("dev-2"))]
    assert device_id_from_certificate(cert("dev-1", two)) is None


# ---------------------------------------------------------------- enrolment


def test_enrolled_device_chain_verifies(pki: PKI) -> None:
    key_pem, csr_pem = generate_device_key_and_csr("dev-1")
    record = pki.enrol_device("dev-1", csr_pem)
    cert = record.certificate

    verified = _client_verifier(pki).verify(cert, [pki.device_ca_certificate()])
    assert verified.subjects == [x509.UniformResourceIdentifier("urn:tracehub:device:dev-1")]
    assert verified.chain == [cert, pki.device_ca_certificate(), pki.root_certificate()]
    # a device certificate is no service certificate, and vice versa
    with pytest.raises(VerificationError):
        _client_verifier(pki).verify(cert, [pki.service_ca_certificate()])

    key = serialization.load_pem_private_key(key_pem, password=None)
    assert key.public_key() == cert.public_key()
    assert pki.device_paths("dev-1")[0].read_bytes() == record.certificate_pem
    assert not pki.device_paths("dev-1")[1].exists()  # a real device keeps its key


def test_enrol_ignores_requested_subject(pki: PKI) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    asked = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Evil Corp"),
            x509.NameAttribute(NameOID.COMMON_NAME, "broker"),
        ]
    )
    sans: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier("urn:tracehub:device:someone-else"),
        x509.DNSName("localhost"),
    ]
    record = pki.enrol_device("dev-1", _pem(_csr(key, asked, sans)))
    cert = record.certificate

    assert record.subject == "CN=dev-1,O=TraceHub"
    assert record.issuer == pki.device_ca_certificate().subject.rfc4514_string()
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [x509.UniformResourceIdentifier("urn:tracehub:device:dev-1")]
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = pki.device_ca_certificate().extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier
    )
    assert aki.key_identifier == ca_ski.value.digest
    assert cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert cert.public_key() == key.public_key()
    assert 0 < record.serial < 2**159
    assert record.fingerprint_sha256 == cert.fingerprint(hashes.SHA256()).hex()
    assert record.status == "active" and record.not_after - record.not_before == timedelta(365)


def test_csr_with_bad_signature_refused(pki: PKI) -> None:
    der = bytearray(
        _csr(ec.generate_private_key(ec.SECP256R1())).public_bytes(serialization.Encoding.DER)
    )
    der[-1] ^= 0x01  # last byte of the signature's s
    tampered = x509.load_der_x509_csr(bytes(der))
    with pytest.raises(PKIError, match="signature does not verify"):
        pki.enrol_device("dev-1", _pem(tampered))
    assert pki.list_devices() == []


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (ec.generate_private_key(ec.SECP384R1()), "secp384r1"),
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RSA"),
    ],
)
def test_non_p256_key_refused(pki: PKI, key: Any, message: str) -> None:
    with pytest.raises(PKIError, match=f"must be EC P-256.*{message}"):
        pki.enrol_device("dev-1", _pem(_csr(key)))


def test_garbage_csr_refused(pki: PKI) -> None:
    with pytest.raises(PKIError, match="certificate signing request"):
        pki.enrol_device("dev-1", b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n")


def test_second_enrol_refused_unless_replace(pki: PKI) -> None:
    first = pki.enrol_simulated_device("dev-1")
    first_key = pki.device_paths("dev-1")[1].read_bytes()
    with pytest.raises(PKIError, match="already has an active certificate"):
        pki.enrol_simulated_device("dev-1")
    assert pki.device_paths("dev-1")[1].read_bytes() == first_key  # key kept on refusal
    crl_number = _crl_number(_device_crl(pki))

    second = pki.enrol_simulated_device("dev-1", replace=True)

    records = pki.device("dev-1")
    assert [r.fingerprint_sha256 for r in records] == [
        second.fingerprint_sha256,
        first.fingerprint_sha256,
    ]
    assert records[0].status == "active"
    assert records[1].status == "revoked" and records[1].revocation_reason == "superseded"
    crl = _device_crl(pki)
    assert _crl_number(crl) == crl_number + 1
    assert crl.get_revoked_certificate_by_serial_number(first.serial) is not None
    assert crl.get_revoked_certificate_by_serial_number(second.serial) is None
    assert pki.device_paths("dev-1")[0].read_bytes() == second.certificate_pem


def test_expired_and_not_yet_valid_certificates(pki: PKI) -> None:
    now = datetime.now(UTC)
    expired = pki.enrol_simulated_device(
        "old-1", not_before=now - timedelta(days=400), validity_days=30
    )
    assert expired.status == "expired"
    with pytest.raises(VerificationError):
        _client_verifier(pki).verify(expired.certificate, [pki.device_ca_certificate()])
    # an expired certificate does not block a new one
    assert pki.enrol_simulated_device("old-1").status == "active"
    assert [r.status for r in pki.device("old-1")] == ["active", "expired"]

    future = pki.enrol_simulated_device("new-1", not_before=now + timedelta(days=2))
    with pytest.raises(VerificationError):
        _client_verifier(pki).verify(future.certificate, [pki.device_ca_certificate()])
    verified = _client_verifier(pki, now + timedelta(days=3)).verify(
        future.certificate, [pki.device_ca_certificate()]
    )
    assert verified.chain == [
        future.certificate,
        pki.device_ca_certificate(),
        pki.root_certificate(),
    ]


def test_enrol_argument_checks(pki: PKI) -> None:
    with pytest.raises(PKIError, match="timezone-aware"):
        pki.enrol_simulated_device("dev-1", not_before=datetime(2024, 1, 1))
    with pytest.raises(PKIError, match="outlive its CA"):
        pki.enrol_simulated_device("dev-1", validity_days=5000)
    with pytest.raises(PKIError, match="whole number of days"):
        pki.enrol_simulated_device("dev-1", validity_days=0)
    assert pki.device("dev-1") == []


def test_list_and_lookup_by_fingerprint(pki: PKI) -> None:
    b1 = pki.enrol_simulated_device("b-dev")
    a1 = pki.enrol_simulated_device("a-dev")
    b2 = pki.enrol_simulated_device("b-dev", replace=True)

    listed = pki.list_devices()
    assert [(r.device_id, r.serial) for r in listed] == [
        ("a-dev", a1.serial),
        ("b-dev", b2.serial),
        ("b-dev", b1.serial),
    ]
    assert [r.status for r in listed] == ["active", "active", "revoked"]

    found = pki.certificate_by_fingerprint(a1.fingerprint_sha256)
    assert found == a1
    colons = ":".join(a1.fingerprint_sha256[i : i + 2] for i in range(0, 64, 2)).upper()
    assert pki.certificate_by_fingerprint(colons) == a1
    assert pki.certificate_by_fingerprint("00" * 32) is None
    assert pki.device("never-seen") == []


# ---------------------------------------------------------------- revocation and CRLs


def test_revocation_is_published_in_crl(pki: PKI) -> None:
    record = pki.enrol_simulated_device("dev-1")
    other = pki.enrol_simulated_device("dev-2")
    number = _crl_number(_device_crl(pki))
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    revoked = pki.revoke_device("dev-1", x509.ReasonFlags.key_compromise, at=at)

    assert [r.serial for r in revoked] == [record.serial]
    assert revoked[0].status == "revoked"
    assert revoked[0].revoked_at == at and revoked[0].revocation_reason == "keyCompromise"
    assert pki.device("dev-2")[0].status == "active"

    crls = _pem_crls(pki.crl_path)
    assert [c.issuer for c in crls] == [
        pki.root_certificate().subject,
        pki.device_ca_certificate().subject,
        pki.service_ca_certificate().subject,
    ]
    crl = _device_crl(pki)
    assert _crl_number(crl) == number + 1
    assert crl.is_signature_valid(pki.device_ca_certificate().public_key())
    assert crl.next_update_utc is not None
    assert crl.next_update_utc - crl.last_update_utc == timedelta(days=7)
    entry = crl.get_revoked_certificate_by_serial_number(record.serial)
    assert entry is not None
    assert entry.revocation_date_utc == at
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.key_compromise
    )
    assert crl.get_revoked_certificate_by_serial_number(other.serial) is None
    pem = serialization.Encoding.PEM
    assert [c.public_bytes(pem) for c in pki.crls()] == [c.public_bytes(pem) for c in crls]


def test_revoking_twice_is_harmless(pki: PKI) -> None:
    pki.enrol_simulated_device("dev-1")
    first = pki.revoke_device("dev-1")
    crl = pki.crl_path.read_bytes()

    assert pki.revoke_device("dev-1", x509.ReasonFlags.key_compromise) == first
    assert pki.crl_path.read_bytes() == crl
    assert first[0].revocation_reason == "unspecified"
    entry = _device_crl(pki).get_revoked_certificate_by_serial_number(first[0].serial)
    assert entry is not None
    with pytest.raises(x509.ExtensionNotFound):  # RFC 5280: no reason code for unspecified
        entry.extensions.get_extension_for_class(x509.CRLReason)


def test_revoke_unknown_device_refused(pki: PKI) -> None:
    with pytest.raises(PKIError, match="unknown device 'ghost'"):
        pki.revoke_device("ghost")
    with pytest.raises(PKIError, match="invalid device id"):
        pki.revoke_device("not/valid")


def test_revoke_returns_what_it_revoked(pki: PKI) -> None:
    old = pki.enrol_simulated_device("dev-1")
    new = pki.enrol_simulated_device("dev-1", replace=True)  # old: revoked as superseded
    revoked = pki.revoke_device("dev-1", x509.ReasonFlags.key_compromise)
    assert [(r.serial, r.revocation_reason) for r in revoked] == [(new.serial, "keyCompromise")]
    again = pki.revoke_device("dev-1")
    assert [r.serial for r in again] == [new.serial, old.serial]
    assert pki.enrol_simulated_device("dev-1").status == "active"  # a revoked device may re-enrol


def test_refresh_crls(pki: PKI) -> None:
    record = pki.enrol_simulated_device("dev-1")
    pki.revoke_device("dev-1", x509.ReasonFlags.cessation_of_operation)
    before = [_crl_number(c) for c in pki.crls()]

    pki.refresh_crls()

    after = pki.crls()
    assert [_crl_number(c) for c in after] == [n + 1 for n in before]
    cas = [pki.root_certificate(), pki.device_ca_certificate(), pki.service_ca_certificate()]
    for crl, ca in zip(after, cas, strict=True):
        assert crl.is_signature_valid(ca.public_key())
        aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert aki.key_identifier == ski.digest
    assert after[1].get_revoked_certificate_by_serial_number(record.serial) is not None
    assert len(after[0]) == 0 and len(after[2]) == 0


# ---------------------------------------------------------------- concurrency


def _enrol_worker(root: str, ids: list[str], barrier: Any, results: Any) -> None:
    pki = PKI(Path(root))
    barrier.wait(timeout=60)
    for device_id in ids:
        try:
            results.put((device_id, pki.enrol_simulated_device(device_id).fingerprint_sha256))
        except PKIError as exc:
            results.put((device_id, f"refused: {exc}"))


def test_concurrent_enrolment_from_several_processes(pki: PKI) -> None:
    ctx = multiprocessing.get_context("spawn")
    workers = 4
    barrier = ctx.Barrier(workers)
    results = ctx.Queue()
    batches = [
        [name for i in range(5) for name in (f"w{w}-dev{i}", f"contested-{i}")]
        for w in range(workers)
    ]
    procs = [
        ctx.Process(target=_enrol_worker, args=(str(pki.root), ids, barrier, results))
        for ids in batches
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=120) for _ in range(sum(map(len, batches)))]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0

    for i in range(5):  # each contested id: one winner, the others refused
        contested = [o for device_id, o in outcomes if device_id == f"contested-{i}"]
        assert sum(not o.startswith("refused") for o in contested) == 1, contested
        assert all("already has an active" in o for o in contested if o.startswith("refused"))

    listed = pki.list_devices()
    expected = sorted({i for ids in batches for i in ids})
    assert sorted(r.device_id for r in listed) == expected
    issued = {fp for device_id, fp in outcomes if not fp.startswith("refused")}
    assert {r.fingerprint_sha256 for r in listed} == issued
    assert all(r.status == "active" for r in listed)


def test_organisation_client_certificate(pki: PKI) -> None:
    """An organisation's staff client: CN org:<id> (its broker username), client auth only,
    issued by the service CA, and no device id (a colon appears in none)."""
    cert = pki.issue_organisation_certificate("acme-logistics")
    cert_path, key_path, chain_path = pki.org_paths("acme-logistics")
    assert cert_path.read_bytes() == cert.public_bytes(serialization.Encoding.PEM)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert chain_path.read_bytes().count(b"BEGIN CERTIFICATE") == 2
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "org:acme-logistics"
    assert cert.issuer == pki.service_ca_certificate().subject
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "urn:tracehub:org:acme-logistics"
    ]
    assert device_id_from_certificate(cert) is None
    with pytest.raises(PKIError, match="organisation id"):
        pki.issue_organisation_certificate("Acme/#")
    with pytest.raises(PKIError, match="organisation id"):
        pki.issue_organisation_certificate("org:acme")
