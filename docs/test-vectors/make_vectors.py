"""Regenerate ``reading-vectors.json`` byte for byte.

    python docs/test-vectors/make_vectors.py           # rewrite the file
    python docs/test-vectors/make_vectors.py --check   # exit 1 if the file is not up to date

Everything is deterministic: the TEST keys are derived from fixed labels (so no CA key is stored
anywhere, yet the certificates can be rebuilt), dates and serials are fixed, and every signature
(certificates, CRL, envelopes) uses RFC 6979 deterministic ECDSA.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tracehub.envelope import b64url_encode, reading_hash, sign_reading
from tracehub.reading import GENESIS_PREV, Reading

PATH = Path(__file__).with_name("reading-vectors.json")
DEVICE_ID = "th-test-sensor-01"
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def vector_key(label: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 TEST key derived from a public label: never use such a key for anything real."""
    seed = hashlib.sha256(f"tracehub test vectors: {label}".encode()).digest()
    return ec.derive_private_key(int.from_bytes(seed) % (_P256_ORDER - 1) + 1, ec.SECP256R1())


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _usage(**on: bool) -> x509.KeyUsage:
    bits = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment"]
    bits += ["key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"]
    return x509.KeyUsage(**{b: on.get(b, False) for b in bits})


def _certificate(
    cn: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    serial: int,
    validity: tuple[str, str],
    path_length: int | None,
) -> x509.Certificate:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "TraceHub TEST VECTORS ONLY"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )
    issuer_name, issuer_key = issuer or (subject, key)
    ca = path_length is not None
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(_utc(validity[0]))
        .not_valid_after(_utc(validity[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    )
    if ca:
        builder = builder.add_extension(_usage(key_cert_sign=True, crl_sign=True), critical=True)
    else:
        builder = (
            builder.add_extension(_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(f"urn:tracehub:device:{cn}")]
                ),
                critical=False,
            )
        )
    return builder.sign(issuer_key, hashes.SHA256(), ecdsa_deterministic=True)


def _pem(obj: x509.Certificate | x509.CertificateRevocationList) -> str:
    return obj.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    numbers = key.private_numbers()

    def b64(n: int) -> str:
        return b64url_encode(n.to_bytes(32)).decode("ascii")

    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64(numbers.public_numbers.x),
        "y": b64(numbers.public_numbers.y),
        "d": b64(numbers.private_value),
    }


def _raw_envelope(header: bytes, payload: bytes, key: ec.EllipticCurvePrivateKey) -> str:
    """An envelope built by hand (for the invalid vectors that sign unusual bytes)."""
    signing_input = b64url_encode(header) + b"." + b64url_encode(payload)
    der = key.sign(signing_input, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    r, s = decode_dss_signature(der)
    return (signing_input + b"." + b64url_encode(r.to_bytes(32) + s.to_bytes(32))).decode()


def _vector(name: str, envelope: bytes, reading: Reading) -> dict[str, Any]:
    header_b64, payload_b64, signature_b64 = envelope.split(b".")
    header = _b64decode(header_b64).decode("utf-8")
    payload = _b64decode(payload_b64).decode("utf-8")
    return {
        "name": name,
        "reading": reading.to_json(),
        "protected_header": header,
        "protected_header_b64": header_b64.decode(),
        "payload": payload,
        "payload_b64": payload_b64.decode(),
        "signing_input": (header_b64 + b"." + payload_b64).decode(),
        "signature_b64": signature_b64.decode(),
        "signature_hex": _b64decode(signature_b64).hex(),
        "envelope": envelope.decode(),
        "sha256": reading_hash(envelope),
    }


def _b64decode(segment: bytes) -> bytes:
    return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))


def build() -> str:
    """The whole vectors file as text."""
    root_key, ca_key, device_key = (vector_key(n) for n in ("root CA", "device CA", "device"))
    root = _certificate(
        "TraceHub TEST Root CA", root_key, None, 0x7E5701, ("2026-01-01", "2036-01-01"), 1
    )
    device_ca = _certificate(
        "TraceHub TEST Device CA",
        ca_key,
        (root.subject, root_key),
        0x7E5702,
        ("2026-01-01", "2031-01-01"),
        0,
    )
    device = _certificate(
        DEVICE_ID,
        device_key,
        (device_ca.subject, ca_key),
        0x7E5703,
        ("2026-01-01", "2028-01-01"),
        None,
    )
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(device_ca.subject)
        .last_update(_utc("2026-11-01"))
        .next_update(_utc("2036-01-01"))
        .add_extension(x509.CRLNumber(1), critical=False)
        .sign(ca_key, hashes.SHA256(), ecdsa_deterministic=True)
    )

    readings: list[tuple[str, dict[str, Any]]] = [
        (
            "seq1-environment",
            dict(
                kind="environment",
                ts="2026-11-22T03:21:50.559Z",
                data={"temperature_c": 4.25, "humidity_pct": 61.5, "sensor": "Kühlraum-3"},
                loc="4006381333931",
            ),
        ),
        (
            "seq2-rfid",
            dict(
                kind="rfid",
                ts="2026-11-22T03:21:51.020Z",
                data={
                    "epc": "3034257BF400B7800004CB2F",
                    "antenna": 2,
                    "rssi_dbm": -61.5,
                    "read_count": 7,
                    "first_seen": "2026-11-22T03:21:50.874Z",
                    "last_seen": "2026-11-22T03:21:51.011Z",
                },
                loc="urn:epc:id:sgln:4006381.33393.dock-3",
            ),
        ),
        (
            "seq3-environment-frozen",
            dict(
                kind="environment",
                ts="2026-11-22T03:22:50.561Z",
                data={"temperature_c": -18, "humidity_pct": 40.125},
            ),
        ),
        (
            "seq4-event-arabic",
            dict(
                kind="event",
                ts="2026-11-22T03:23:00.000Z",
                data={"type": "door_open", "note": "تم فتح الباب", "duration_s": 12},
            ),
        ),
    ]
    vectors = []
    prev = GENESIS_PREV
    for seq, (name, fields) in enumerate(readings, start=1):
        reading = Reading.from_json(
            {"v": 1, "device": DEVICE_ID, "seq": seq, "prev": prev} | fields
        )
        envelope = sign_reading(reading, device_key, device)
        vectors.append(_vector(name, envelope, reading))
        prev = reading_hash(envelope)

    invalid = _invalid_vectors(vectors[0], device_key)
    doc = {
        "description": (
            "TraceHub signed reading envelope test vectors (docs/reading-envelope.md). "
            "Regenerate with: python docs/test-vectors/make_vectors.py"
        ),
        "warning": (
            "TEST MATERIAL ONLY. The device key below is public; it and the test CAs are "
            "derived from fixed labels in make_vectors.py. Never trust this CA or use this key "
            "outside tests."
        ),
        "device_id": DEVICE_ID,
        "test_device_private_key_jwk": _jwk(device_key),
        "device_certificate_pem": _pem(device),
        "device_certificate_sha256": device.fingerprint(hashes.SHA256()).hex(),
        "x5t#S256": b64url_encode(device.fingerprint(hashes.SHA256())).decode(),
        "device_ca_certificate_pem": _pem(device_ca),
        "root_ca_certificate_pem": _pem(root),
        "device_ca_crl_pem": _pem(crl),
        "vectors": vectors,
        "invalid": invalid,
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _invalid_vectors(
    first: dict[str, Any], key: ec.EllipticCurvePrivateKey
) -> list[dict[str, str]]:
    """Envelopes a verifier must reject, each with the one reason it must give."""
    header = first["protected_header"].encode()
    payload = first["payload"].encode()
    header_b64, _, signature_b64 = first["envelope"].split(".")
    tampered = payload.replace(b'"temperature_c":4.25', b'"temperature_c":9.25')
    assert tampered != payload
    spaced = json.dumps(json.loads(payload), sort_keys=True, ensure_ascii=False).encode()
    other_device = json.loads(payload) | {"device": "th-test-sensor-02"}
    late = json.loads(payload) | {"ts": "2028-06-01T00:00:00.000Z"}
    jwt_header = header.replace(b"tracehub-reading+jws", b"JWT")

    def canonical(obj: dict[str, Any]) -> bytes:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    def case(name: str, reason: str, why: str, envelope: str) -> dict[str, str]:
        return {"name": name, "reason": reason, "why": why, "envelope": envelope}

    return [
        case(
            "tampered-payload",
            "bad_signature",
            "vector seq1 with temperature_c 4.25 changed to 9.25 and the signature kept",
            f"{header_b64}.{b64url_encode(tampered).decode()}.{signature_b64}",
        ),
        case(
            "base64-padding",
            "malformed",
            "vector seq1 with '=' padding appended to the signature part",
            f"{first['envelope']}==",
        ),
        case(
            "wrong-typ",
            "malformed",
            'header typ "JWT" (correctly signed)',
            _raw_envelope(jwt_header, payload, key),
        ),
        case(
            "non-canonical-payload",
            "malformed",
            "payload with spaces after ':' and ',' (correctly signed)",
            _raw_envelope(header, spaced, key),
        ),
        case(
            "other-device",
            "identity_mismatch",
            "reading.device is not the certificate's device id (correctly signed)",
            _raw_envelope(header, canonical(other_device), key),
        ),
        case(
            "after-certificate-expiry",
            "expired",
            "ts 2028-06-01, after the device certificate's notAfter (correctly signed)",
            _raw_envelope(header, canonical(late), key),
        ),
    ]


def main(argv: list[str]) -> int:
    text = build()
    if "--check" in argv:
        if PATH.read_text(encoding="utf-8") != text:
            print(f"{PATH} is out of date: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    PATH.write_text(text, encoding="utf-8")
    print(f"wrote {PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
