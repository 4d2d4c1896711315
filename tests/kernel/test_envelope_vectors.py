"""The published test vectors, checked from the spec alone.

This module deliberately does not import ``tracehub``: it re-implements the verification steps of
``docs/reading-envelope.md`` with ``cryptography`` primitives, ``json``, ``base64`` and
``hashlib``, as a third party would. (That the project's own code reproduces the file byte for
byte is tested in ``test_envelope.py``.)
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

VECTORS_PATH = Path(__file__).resolve().parents[2] / "docs/test-vectors/reading-vectors.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding (spec: no '=', no other characters, no spare bits)."""
    if not B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url without padding")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url_encode(data) != text:
        raise ValueError("non-canonical base64url")
    return data


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def cert(key: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(VECTORS[key].encode("ascii"))


DEVICE, DEVICE_CA, ROOT = (
    cert(k)
    for k in ("device_certificate_pem", "device_ca_certificate_pem", "root_ca_certificate_pem")
)
CRL = x509.load_pem_x509_crl(VECTORS["device_ca_crl_pem"].encode("ascii"))


def verify(envelope: str) -> dict[str, Any]:
    """The spec's verification algorithm, returning the reading or raising ``Rejected``."""
    if len(envelope.encode()) > 16384:
        raise Rejected("malformed")
    parts = envelope.split(".")
    if len(parts) != 3:
        raise Rejected("malformed")
    try:
        header_bytes, payload, signature = (b64url_decode(p) for p in parts)
    except ValueError:
        raise Rejected("malformed") from None
    header = json.loads(header_bytes)
    if set(header) != {"alg", "typ", "x5t#S256"} or canonical(header) != header_bytes:
        raise Rejected("malformed")
    if header["alg"] != "ES256" or header["typ"] != "tracehub-reading+jws":
        raise Rejected("malformed")
    reading = json.loads(payload)
    if canonical(reading) != payload or len(signature) != 64:
        raise Rejected("malformed")

    if b64url_decode(header["x5t#S256"]) != DEVICE.fingerprint(hashes.SHA256()):
        raise Rejected("unknown_certificate")
    DEVICE.verify_directly_issued_by(DEVICE_CA)
    DEVICE_CA.verify_directly_issued_by(ROOT)
    ts = datetime.fromisoformat(reading["ts"].replace("Z", "+00:00"))
    for c in (DEVICE, DEVICE_CA, ROOT):
        if ts < c.not_valid_before_utc:
            raise Rejected("not_yet_valid")
        if ts > c.not_valid_after_utc:
            raise Rejected("expired")
    assert CRL.is_signature_valid(DEVICE_CA.public_key())  # type: ignore[arg-type]
    if CRL.get_revoked_certificate_by_serial_number(DEVICE.serial_number) is not None:
        raise Rejected("revoked")
    san = DEVICE.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    uri_ids = [
        u.removeprefix("urn:tracehub:device:")
        for u in san.get_values_for_type(x509.UniformResourceIdentifier)
    ]
    cn = DEVICE.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value
    if uri_ids != [cn] or reading["device"] != cn:
        raise Rejected("identity_mismatch")

    der = utils.encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    public_key = DEVICE.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    try:
        public_key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Rejected("bad_signature") from None
    return dict(reading)


class Rejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_vector_verifies_from_the_spec(vector: dict[str, Any]) -> None:
    header = vector["protected_header"].encode("utf-8")
    payload = vector["payload"].encode("utf-8")
    assert json.loads(header) == {
        "alg": "ES256",
        "typ": "tracehub-reading+jws",
        "x5t#S256": b64url_encode(DEVICE.fingerprint(hashes.SHA256())),
    }
    assert canonical(json.loads(header)) == header
    assert canonical(vector["reading"]) == payload
    assert vector["protected_header_b64"] == b64url_encode(header)
    assert vector["payload_b64"] == b64url_encode(payload)
    signing_input = f"{b64url_encode(header)}.{b64url_encode(payload)}"
    assert vector["signing_input"] == signing_input
    assert b64url_decode(vector["signature_b64"]).hex() == vector["signature_hex"]
    assert vector["envelope"] == f"{signing_input}.{vector['signature_b64']}"
    assert hashlib.sha256(vector["envelope"].encode("ascii")).hexdigest() == vector["sha256"]
    assert verify(vector["envelope"]) == vector["reading"]


def test_vectors_form_a_hash_chain() -> None:
    prev = "0" * 64
    for seq, vector in enumerate(VECTORS["vectors"], start=1):
        reading = vector["reading"]
        assert (reading["seq"], reading["prev"]) == (seq, prev)
        prev = hashlib.sha256(vector["envelope"].encode("ascii")).hexdigest()
    kinds = {v["reading"]["kind"] for v in VECTORS["vectors"]}
    assert {"environment", "rfid"} <= kinds


def test_x5t_and_fingerprint_match_the_certificate() -> None:
    digest = DEVICE.fingerprint(hashes.SHA256())
    assert VECTORS["device_certificate_sha256"] == digest.hex()
    assert VECTORS["x5t#S256"] == b64url_encode(digest)


def test_test_key_is_the_certificate_key() -> None:
    jwk = VECTORS["test_device_private_key_jwk"]
    assert (jwk["kty"], jwk["crv"]) == ("EC", "P-256")
    key = ec.derive_private_key(int.from_bytes(b64url_decode(jwk["d"]), "big"), ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    assert b64url_decode(jwk["x"]) == numbers.x.to_bytes(32, "big")
    assert b64url_decode(jwk["y"]) == numbers.y.to_bytes(32, "big")
    assert DEVICE.public_key() == key.public_key()


def test_signatures_are_rfc6979_deterministic() -> None:
    """Signing each signing input again with the test key gives the published signature."""
    jwk = VECTORS["test_device_private_key_jwk"]
    key = ec.derive_private_key(int.from_bytes(b64url_decode(jwk["d"]), "big"), ec.SECP256R1())
    for vector in VECTORS["vectors"]:
        der = key.sign(
            vector["signing_input"].encode("ascii"),
            ec.ECDSA(hashes.SHA256(), deterministic_signing=True),
        )
        r, s = utils.decode_dss_signature(der)
        assert (
            b64url_encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")) == vector["signature_b64"]
        )


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_vector_is_rejected_for_its_reason(case: dict[str, str]) -> None:
    with pytest.raises(Rejected) as caught:
        verify(case["envelope"])
    assert caught.value.reason == case["reason"]


def test_vector_file_carries_no_pem_private_key() -> None:
    text = VECTORS_PATH.read_text(encoding="utf-8")
    assert "PRIVATE" + " KEY" not in text


def test_spec_worked_example_matches_the_first_vector() -> None:
    spec = (VECTORS_PATH.parent.parent / "reading-envelope.md").read_text(encoding="utf-8")
    vector = VECTORS["vectors"][0]
    for key in ("protected_header", "protected_header_b64", "payload", "payload_b64"):
        assert f"\n{vector[key]}\n" in spec, key
    signature = vector["signature_hex"]
    assert f"\n{signature[:64]} {signature[64:]}\n" in spec
    assert f"\n{vector['signature_b64']}\n" in spec
    assert f"\n{vector['sha256']}\n" in spec
    assert VECTORS["device_certificate_sha256"] in spec and VECTORS["x5t#S256"] in spec
    assert f"({len(vector['envelope'])} bytes)" in spec
    assert f"Payload ({len(vector['payload'].encode())} bytes" in spec
    assert f"Header ({len(vector['protected_header'].encode())} bytes)" in spec
