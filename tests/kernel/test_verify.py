"""verify_envelope: each Reason comes from exactly the case it names, in the documented order."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID

import tracehub.verify as verify_module
from tests.support.pki import T0, Issued, TestPKI, key_usage, make_ca, make_crl, new_key
from tracehub.envelope import b64url_decode, b64url_encode, parse_envelope, sign_reading
from tracehub.reading import Reading
from tracehub.verify import (
    InMemoryDirectory,
    Reason,
    TrustStore,
    VerificationError,
    VerifiedReading,
    load_pem_crls,
    verify_envelope,
)

PKI = TestPKI("Verify")
DEVICE = PKI.device("dev-1")


def reading(device: str = "dev-1", ts: datetime = T0, **fields: Any) -> Reading:
    base: dict[str, Any] = {"device": device, "seq": 1, "ts": ts, "kind": "environment"}
    base["data"] = {"temperature_c": 4.5, "humidity_pct": 55}
    return Reading(**(base | fields))


def trust(crls: list[x509.CertificateRevocationList] | None = None, **kwargs: Any) -> TrustStore:
    return TrustStore(PKI.roots, PKI.intermediates, [PKI.crl()] if crls is None else crls, **kwargs)


def check(
    envelope: bytes,
    store: TrustStore | None = None,
    certs: list[x509.Certificate] | None = None,
    **kwargs: Any,
) -> VerifiedReading:
    directory = InMemoryDirectory([DEVICE.cert] if certs is None else certs)
    return verify_envelope(envelope, store or trust(), directory, **kwargs)


def accepted(
    envelope: bytes,
    *args: Any,
    device: Issued = DEVICE,
    expected: Reading | None = None,
    **kwargs: Any,
) -> None:
    """``envelope`` verifies, and the result names the reading signed (``signed()``'s unless
    ``expected``), the envelope's hash and ``device``."""
    verified = check(envelope, *args, **kwargs)
    assert verified.reading == (expected or reading(device=_device_id(device)))
    assert verified.hash == hashlib.sha256(envelope).hexdigest()
    assert verified.fingerprint == device.cert.fingerprint(hashes.SHA256()).hex()


def reason_of(envelope: bytes, *args: Any, **kwargs: Any) -> Reason:
    with pytest.raises(VerificationError) as caught:
        check(envelope, *args, **kwargs)
    assert caught.value.detail and str(caught.value).startswith(caught.value.reason)
    return caught.value.reason


def signed(device: Issued = DEVICE, r: Reading | None = None) -> bytes:
    return sign_reading(r or reading(device=_device_id(device)), device.key, device.cert)


def _device_id(device: Issued) -> str:
    cn = device.cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value
    return str(cn)


# ---------------------------------------------------------------------- success


def test_valid_envelope_verifies() -> None:
    envelope = signed()
    verified = check(envelope, topic_device_id="dev-1")
    assert verified.reading == reading()
    assert verified.hash == hashlib.sha256(envelope).hexdigest()
    assert verified.fingerprint == DEVICE.cert.fingerprint(hashes.SHA256()).hex()


def test_from_pem_files(tmp_path: Path) -> None:
    pem = serialization.Encoding.PEM
    bundle = tmp_path / "ca-bundle.pem"
    bundle.write_bytes(PKI.root.cert.public_bytes(pem) + PKI.device_ca.cert.public_bytes(pem))
    crl_file = tmp_path / "crl.pem"
    crl_file.write_bytes(PKI.crl().public_bytes(pem) + make_crl(PKI.root).public_bytes(pem))
    store = TrustStore.from_pem_files(bundle, crl_file)
    assert store.roots == (PKI.root.cert,) and store.intermediates == (PKI.device_ca.cert,)
    assert len(store.crls) == 2
    accepted(signed(), store)


def test_works_with_the_project_pki(tmp_path: Path) -> None:
    """certs/pki.py's bundle, CRL file and device certificates verify, and revoke."""
    from certs.pki import PKI as ProjectPKI

    pki = ProjectPKI(tmp_path)
    pki.init()
    record = pki.enrol_simulated_device("sensor-7")
    key = serialization.load_pem_private_key(pki.device_paths("sensor-7")[1].read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    now = datetime.now(UTC).replace(microsecond=0)
    envelope = sign_reading(reading("sensor-7", now), key, record.certificate)
    store = TrustStore.from_pem_files(pki.ca_bundle_path, pki.crl_path)
    directory = InMemoryDirectory([record.certificate])
    verified = verify_envelope(envelope, store, directory, topic_device_id="sensor-7")
    assert verified.fingerprint == record.fingerprint_sha256
    pki.revoke_device("sensor-7", reason=x509.ReasonFlags.key_compromise)
    store.replace_crls(load_pem_crls(pki.crl_path.read_bytes()))
    with pytest.raises(VerificationError) as caught:
        verify_envelope(envelope, store, directory)
    assert caught.value.reason is Reason.REVOKED


# ---------------------------------------------------------------------- one reason each


def test_malformed() -> None:
    assert reason_of(b"not.an.envelope") is Reason.MALFORMED


def test_unknown_certificate() -> None:
    assert reason_of(signed(), certs=[]) is Reason.UNKNOWN_CERTIFICATE


def test_directory_returning_another_certificate_is_unknown_certificate() -> None:
    class Liar:
        def by_fingerprint(self, sha256: bytes) -> x509.Certificate:
            return PKI.device("dev-1").cert

    with pytest.raises(VerificationError) as caught:
        verify_envelope(signed(), trust(), Liar())
    assert caught.value.reason is Reason.UNKNOWN_CERTIFICATE


def test_forged_signature_is_bad_signature() -> None:
    """Signed by another key while the header names DEVICE's certificate."""
    genuine = signed()
    signing_input = genuine.rpartition(b".")[0]
    der = new_key().sign(signing_input, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    forged = signing_input + b"." + b64url_encode(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    assert reason_of(forged) is Reason.BAD_SIGNATURE


def test_certificate_from_another_root_is_unknown_ca() -> None:
    other = TestPKI("Other").device("dev-1")
    assert reason_of(signed(other), certs=[other.cert]) is Reason.UNKNOWN_CA


def test_device_ca_without_its_trusted_root_is_unknown_ca() -> None:
    store = TrustStore([make_ca("Unrelated Root").cert], PKI.intermediates, [PKI.crl()])
    assert reason_of(signed(), store) is Reason.UNKNOWN_CA


def test_certificate_issued_by_the_root_directly_is_unknown_ca() -> None:
    """The chain must go through a device CA."""
    direct = PKI.device("dev-1", issuer=PKI.root)
    assert reason_of(signed(direct), certs=[direct.cert]) is Reason.UNKNOWN_CA


def test_expired_at_reading_time() -> None:
    device = PKI.device("dev-1", not_before=T0 - timedelta(days=30), not_after=T0 - timedelta(1))
    assert reason_of(signed(device), certs=[device.cert]) is Reason.EXPIRED


def test_not_yet_valid_at_reading_time() -> None:
    device = PKI.device("dev-1", not_before=T0 + timedelta(seconds=1))
    assert reason_of(signed(device), certs=[device.cert]) is Reason.NOT_YET_VALID


def test_validity_is_judged_at_the_reading_time_not_now() -> None:
    """An auditor years later: the certificate has long expired, the reading still verifies."""
    device = PKI.device("dev-1", not_before=T0 - timedelta(1), not_after=T0 + timedelta(1))
    assert device.cert.not_valid_after_utc < datetime.now(UTC)
    accepted(signed(device), certs=[device.cert], device=device)


def test_expired_device_ca_at_reading_time_is_expired() -> None:
    ca = make_ca("Short Device CA", PKI.root, not_after=T0 - timedelta(days=1))
    device = PKI.device("dev-1", issuer=ca)
    store = TrustStore(PKI.roots, [ca.cert], [make_crl(ca)])
    with pytest.raises(VerificationError) as caught:
        check(signed(device), store, [device.cert])
    assert caught.value.reason is Reason.EXPIRED
    assert "Short Device CA" in caught.value.detail


def test_revoked_after_revocation_time() -> None:
    crl = PKI.crl([(DEVICE.cert.serial_number, T0 - timedelta(hours=1), None)])
    assert reason_of(signed(), trust([crl])) is Reason.REVOKED


def test_revoked_exactly_at_revocation_time() -> None:
    crl = PKI.crl([(DEVICE.cert.serial_number, T0, x509.ReasonFlags.superseded)])
    assert reason_of(signed(), trust([crl])) is Reason.REVOKED


def test_reading_before_revocation_time_is_still_valid() -> None:
    crl = PKI.crl([(DEVICE.cert.serial_number, T0 + timedelta(seconds=1), None)])
    accepted(signed(), trust([crl]))


def test_key_compromise_revokes_every_reading() -> None:
    later = T0 + timedelta(days=30)
    crl = PKI.crl([(DEVICE.cert.serial_number, later, x509.ReasonFlags.key_compromise)])
    assert reason_of(signed(), trust([crl])) is Reason.REVOKED


def test_invalidity_date_moves_the_revocation_earlier() -> None:
    serial = DEVICE.cert.serial_number
    crl = PKI.crl(
        [(serial, T0 + timedelta(days=1), x509.ReasonFlags.affiliation_changed)],
        invalidity={serial: T0 - timedelta(days=1)},
    )
    assert reason_of(signed(), trust([crl])) is Reason.REVOKED


def test_revoked_device_ca_in_the_roots_crl() -> None:
    root_crl = make_crl(PKI.root, [(PKI.device_ca.cert.serial_number, T0, None)])
    assert reason_of(signed(), trust([PKI.crl(), root_crl])) is Reason.REVOKED


def test_missing_crl_is_crl_unavailable() -> None:
    assert reason_of(signed(), trust([])) is Reason.CRL_UNAVAILABLE


def test_forged_crl_is_crl_unavailable() -> None:
    forged = PKI.crl(signing_key=new_key())
    assert reason_of(signed(), trust([forged])) is Reason.CRL_UNAVAILABLE


def test_forged_root_crl_is_crl_unavailable() -> None:
    forged_root_crl = make_crl(PKI.root, signing_key=new_key())
    assert reason_of(signed(), trust([PKI.crl(), forged_root_crl])) is Reason.CRL_UNAVAILABLE


def test_forged_crl_beside_a_genuine_one_is_ignored() -> None:
    forged = PKI.crl([(DEVICE.cert.serial_number, T0, None)], signing_key=new_key(), number=9)
    accepted(signed(), trust([forged, PKI.crl()]))


def test_newest_crl_by_number_wins() -> None:
    listed = PKI.crl([(DEVICE.cert.serial_number, T0, None)], number=2)
    assert reason_of(signed(), trust([listed, PKI.crl(number=1)])) is Reason.REVOKED
    accepted(signed(), trust([listed, PKI.crl(number=3)]))


def test_stale_crl_is_crl_unavailable_unless_allowed() -> None:
    now = datetime.now(UTC)
    stale = PKI.crl(last_update=now - timedelta(days=9), next_update=now - timedelta(days=2))
    assert reason_of(signed(), trust([stale])) is Reason.CRL_UNAVAILABLE
    accepted(signed(), trust([stale], allow_stale_crls=True))


def test_reading_device_differs_from_certificate_is_identity_mismatch() -> None:
    envelope = sign_reading(reading(device="dev-2"), DEVICE.key, DEVICE.cert)
    assert reason_of(envelope) is Reason.IDENTITY_MISMATCH


def test_topic_device_differs_is_identity_mismatch() -> None:
    assert reason_of(signed(), topic_device_id="dev-2") is Reason.IDENTITY_MISMATCH


def test_cn_disagreeing_with_uri_san_is_identity_mismatch() -> None:
    device = PKI.device("dev-1", cn="dev-9")
    envelope = sign_reading(reading(), device.key, device.cert)
    assert reason_of(envelope, certs=[device.cert]) is Reason.IDENTITY_MISMATCH


@pytest.mark.parametrize(
    "bend",
    [
        {"usage": key_usage(key_agreement=True)},
        {"usage": key_usage(digital_signature=True, key_cert_sign=True), "ca": True},
        {"eku": [ExtendedKeyUsageOID.SERVER_AUTH]},
        {"key": ec.generate_private_key(ec.SECP384R1())},
    ],
    ids=["no digitalSignature", "CA certificate", "serverAuth only", "P-384 key"],
)
def test_wrong_key_usage(bend: dict[str, Any]) -> None:
    device = PKI.device("dev-1", **bend)
    if isinstance(device.key.curve, ec.SECP256R1):
        envelope = signed(device)
    else:  # sign_reading refuses a P-384 key: build the envelope by hand
        envelope = _hand_signed(device, reading())
    assert reason_of(envelope, certs=[device.cert]) is Reason.WRONG_KEY_USAGE


def _hand_signed(device: Issued, r: Reading) -> bytes:
    """An envelope naming ``device``'s certificate with a dummy signature (never reached)."""
    x5t = b64url_encode(device.cert.fingerprint(hashes.SHA256())).decode()
    header = {"alg": "ES256", "typ": "tracehub-reading+jws", "x5t#S256": x5t}
    header_bytes = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    parts = [header_bytes, r.to_json_bytes(), b"\x01" * 64]
    return b".".join(b64url_encode(p) for p in parts)


# ---------------------------------------------------------------------- altered envelopes


def test_semantically_altered_payload_is_bad_signature() -> None:
    header, payload, signature = signed().split(b".")
    altered = b64url_decode(payload).replace(b'"temperature_c":4.5', b'"temperature_c":5.5')
    assert altered != b64url_decode(payload)
    assert reason_of(b".".join([header, b64url_encode(altered), signature])) is Reason.BAD_SIGNATURE


def test_every_single_character_change_in_the_payload_is_rejected() -> None:
    """Never valid: malformed when the result no longer parses; when it does, bad_signature,
    unless the change hit the time or the device id, whose checks come first."""
    envelope = signed()
    header, payload, signature = envelope.split(b".")
    seen = set()
    for i in range(len(payload)):
        for replacement in (b"A", b"x", b"_"):
            if payload[i : i + 1] == replacement:
                continue
            candidate = b".".join([header, payload[:i] + replacement + payload[i + 1 :], signature])
            try:
                altered = parse_envelope(candidate).reading
            except ValueError:
                expected = Reason.MALFORMED
            else:
                assert altered != reading()
                expected = _first_failure(altered)
            assert reason_of(candidate) is expected
            seen.add(expected)
    assert Reason.MALFORMED in seen and Reason.BAD_SIGNATURE in seen


def _first_failure(altered: Reading) -> Reason:
    if altered.ts < DEVICE.cert.not_valid_before_utc:
        return Reason.NOT_YET_VALID
    if altered.ts > DEVICE.cert.not_valid_after_utc:
        return Reason.EXPIRED
    if altered.device != "dev-1":
        return Reason.IDENTITY_MISMATCH
    return Reason.BAD_SIGNATURE


def test_checks_run_in_the_documented_order() -> None:
    """An expired, revoked, wrongly named envelope with a bad signature: expiry is reported."""
    device = PKI.device("dev-1", not_before=T0 - timedelta(days=30), not_after=T0 - timedelta(1))
    crl = PKI.crl([(device.cert.serial_number, T0 - timedelta(days=2), None)])
    envelope = sign_reading(reading(device="dev-2"), device.key, device.cert)
    envelope = envelope[:-2] + (b"AA" if envelope[-2:] != b"AA" else b"AQ")
    assert reason_of(envelope, trust([crl]), [device.cert]) is Reason.EXPIRED


# ---------------------------------------------------------------------- caching


def test_replace_crls_invalidates_the_cache() -> None:
    store = trust()
    accepted(signed(), store)
    store.replace_crls([PKI.crl([(DEVICE.cert.serial_number, T0, None)], number=2)])
    assert reason_of(signed(), store) is Reason.REVOKED
    store.replace_crls([PKI.crl(number=3)])
    accepted(signed(), store)


def test_certificate_facts_are_computed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    real = verify_module._chain

    def counting(*args: Any) -> Any:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(verify_module, "_chain", counting)
    store = trust()
    for seq in range(1, 6):
        prev = "0" * 64 if seq == 1 else "ab" * 32
        r = reading(seq=seq, prev=prev)
        accepted(sign_reading(r, DEVICE.key, DEVICE.cert), store, expected=r)
    assert len(calls) == 1
    store.replace_crls([PKI.crl(number=2)])
    accepted(signed(), store)
    assert len(calls) == 2


def test_cached_failures_are_reported_again() -> None:
    other = TestPKI("Other").device("dev-1")
    store = trust()
    for _ in range(2):
        assert reason_of(signed(other), store, [other.cert]) is Reason.UNKNOWN_CA
