"""The signed reading envelope: a JWS (RFC 7515) compact serialization with ES256.

Byte-level rules are in ``docs/reading-envelope.md``; the choice is explained in
``docs/decisions/0005-reading-envelope.md``. Signing is deterministic (RFC 6979), so the same
reading, key and certificate always give the same envelope bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509 import Certificate
from joserfc import jws
from joserfc.jwa import ESAlgorithm
from joserfc.jwk import ECKey
from joserfc.jws import JWSRegistry

from tracehub.errors import InvalidError
from tracehub.reading import CANONICAL_RULES, NonCanonicalError, Reading, ReadingError

__all__ = [
    "ALG",
    "MAX_ENVELOPE_BYTES",
    "TYP",
    "EnvelopeError",
    "ParsedEnvelope",
    "SignedParts",
    "b64url_decode",
    "b64url_encode",
    "certificate_thumbprint",
    "parse_envelope",
    "protected_header",
    "reading_hash",
    "sign_payload",
    "sign_reading",
    "split_envelope",
]

ALG = "ES256"
TYP = "tracehub-reading+jws"
MAX_ENVELOPE_BYTES = 16 * 1024
_HEADER_KEYS = frozenset({"alg", "typ", "x5t#S256"})
_B64URL = re.compile(rb"[A-Za-z0-9_-]*")
_URL_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_B64URL_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_B64URL_VALUE = {char: value for value, char in enumerate(_B64URL_ALPHABET)}
# A segment of 4k+2 characters ends in one that carries 2 bits of data and 4 unused ones; of
# 4k+3, in one that carries 4 and 2 unused (RFC 4648 §3.5: canonical encoders set them to zero).
_UNUSED_BITS = {0: 0, 2: 0b1111, 3: 0b11}
_HEADER_CACHE: dict[bytes, tuple[dict[str, str], bytes]] = {}
_HEADER_CACHE_SIZE = 4096


class EnvelopeError(InvalidError):
    """The bytes are not a well-formed reading envelope; the message says why."""


@dataclass(frozen=True)
class SignedParts:
    """A compact JWS of ours, split and checked, whatever its payload (``typ`` says what it is);
    the signature has not been checked yet."""

    header: dict[str, str]
    #: ``BASE64URL(header) "." BASE64URL(payload)``: the bytes the signature covers.
    signing_input: bytes
    #: The raw 64-byte ``r || s`` signature.
    signature: bytes
    #: The raw 32-byte SHA-256 of the signer's DER certificate (``x5t#S256``).
    x5t: bytes
    #: The exact payload bytes.
    payload: bytes


@dataclass(frozen=True)
class ParsedEnvelope:
    """A structurally valid envelope whose signature has not been checked yet."""

    header: dict[str, str]
    reading: Reading
    #: ``BASE64URL(header) "." BASE64URL(payload)``: the bytes the signature covers.
    signing_input: bytes
    #: The raw 64-byte ``r || s`` signature.
    signature: bytes
    #: The raw 32-byte SHA-256 of the signer's DER certificate (``x5t#S256``).
    x5t: bytes
    #: The exact payload bytes (canonical JSON of ``reading``).
    payload: bytes


def b64url_encode(data: bytes) -> bytes:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def b64url_decode(segment: bytes, what: str = "value") -> bytes:
    """Strict inverse of :func:`b64url_encode`: no padding, no other characters, no spare bits."""
    if not _B64URL.fullmatch(segment):
        raise EnvelopeError(f"{what} is not base64url without padding")
    tail = len(segment) % 4
    if tail == 1:
        raise EnvelopeError(f"{what} has an impossible base64url length ({len(segment)})")
    # The unused bits are all in the last character: checking it is the same test as
    # re-encoding the data and comparing, without the second pass over the segment.
    if tail and _B64URL_VALUE[segment[-1]] & _UNUSED_BITS[tail]:
        raise EnvelopeError(f"{what} is not canonical base64url (unused bits are set)")
    return binascii.a2b_base64(segment.translate(_URL_TO_STANDARD) + b"=" * (-tail % 4))


def certificate_thumbprint(certificate: Certificate) -> bytes:
    """SHA-256 of the DER certificate: the raw value behind ``x5t#S256``."""
    return certificate.fingerprint(hashes.SHA256())


def protected_header(certificate: Certificate, typ: str = TYP) -> bytes:
    """The exact protected-header JSON for envelopes signed with ``certificate``'s key."""
    return _header_bytes(_header_for(certificate, typ))


def reading_hash(envelope: bytes) -> str:
    """Lowercase hex SHA-256 of the exact envelope bytes (``prev`` and Merkle leaves use it)."""
    return hashlib.sha256(envelope).hexdigest()


def sign_reading(
    reading: Reading, private_key: ec.EllipticCurvePrivateKey, certificate: Certificate
) -> bytes:
    """Sign ``reading`` as the device holding ``certificate``; returns the ASCII envelope."""
    return sign_payload(reading.to_json_bytes(), TYP, private_key, certificate)


def sign_payload(
    payload: bytes, typ: str, private_key: ec.EllipticCurvePrivateKey, certificate: Certificate
) -> bytes:
    """Sign canonical ``payload`` as a compact JWS of type ``typ`` with the header rules of
    readings (§1 of docs/reading-envelope.md); other signed device messages use it too."""
    if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
        private_key.curve, ec.SECP256R1
    ):
        raise TypeError("the device key must be an ECDSA P-256 private key")
    if private_key.public_key() != certificate.public_key():
        raise ValueError("the private key does not belong to the certificate")
    header = _header_for(certificate, typ)
    envelope = jws.serialize_compact(
        header, payload, ECKey.import_key(private_key), registry=_SIGNING_REGISTRY
    ).encode("ascii")
    expected = b64url_encode(_header_bytes(header)) + b"." + b64url_encode(payload)
    if envelope.rpartition(b".")[0] != expected:  # joserfc changed its header serialization
        raise RuntimeError("joserfc produced a non-canonical signing input")
    if len(envelope) > MAX_ENVELOPE_BYTES:
        raise EnvelopeError(f"envelope would be {len(envelope)} bytes, over {MAX_ENVELOPE_BYTES}")
    return envelope


def parse_envelope(envelope: bytes) -> ParsedEnvelope:
    """Check an envelope's structure, header and payload; the signature is not verified."""
    header, signing_input, signature, x5t, payload = _split(envelope, TYP)
    try:
        reading = Reading.from_canonical_json_bytes(payload)
    except NonCanonicalError:
        raise EnvelopeError(f"payload is not canonical JSON ({CANONICAL_RULES})") from None
    except ReadingError as exc:
        raise EnvelopeError(f"payload: {exc}") from None
    return ParsedEnvelope(header, reading, signing_input, signature, x5t, payload)


def split_envelope(envelope: bytes, typ: str) -> SignedParts:
    """Check a compact JWS's size, parts, header (of type ``typ``) and signature length; the
    payload is returned as bytes for the caller to parse, and the signature is not verified."""
    return SignedParts(*_split(envelope, typ))


# ---------------------------------------------------------------------- internals


def _split(envelope: bytes, typ: str) -> tuple[dict[str, str], bytes, bytes, bytes, bytes]:
    """:func:`split_envelope`'s checks; its fields as a tuple (a reading's envelope is parsed
    straight into a :class:`ParsedEnvelope`, without a :class:`SignedParts` on the way)."""
    if len(envelope) > MAX_ENVELOPE_BYTES:
        raise EnvelopeError(f"envelope is {len(envelope)} bytes, over {MAX_ENVELOPE_BYTES}")
    parts = envelope.split(b".")
    if len(parts) != 3:
        raise EnvelopeError(f"expected 3 dot-separated parts, got {len(parts)}")
    header_b64, payload_b64, signature_b64 = parts
    header, x5t = _header(header_b64, typ)
    payload = b64url_decode(payload_b64, "payload")
    signature = b64url_decode(signature_b64, "signature")
    if len(signature) != 64:
        raise EnvelopeError(f"ES256 signature must be 64 bytes (r || s), got {len(signature)}")
    return header, header_b64 + b"." + payload_b64, signature, x5t, payload


def _header_for(certificate: Certificate, typ: str) -> dict[str, str]:
    x5t = b64url_encode(certificate_thumbprint(certificate)).decode("ascii")
    return {"alg": ALG, "typ": typ, "x5t#S256": x5t}


def _header(segment: bytes, typ: str) -> tuple[dict[str, str], bytes]:
    """The checked header and raw x5t of a header segment, memoized: a device sends the same
    header with every reading, so the hot path skips decoding it."""
    cached = _HEADER_CACHE.get(segment)
    if cached is None:
        header = _parse_header(b64url_decode(segment, "header"), typ)
        x5t = b64url_decode(header["x5t#S256"].encode("ascii"), "x5t#S256")
        if len(x5t) != 32:
            raise EnvelopeError(f"x5t#S256 must be a 32-byte SHA-256, got {len(x5t)} bytes")
        if len(_HEADER_CACHE) >= _HEADER_CACHE_SIZE:
            _HEADER_CACHE.clear()
        cached = _HEADER_CACHE[segment] = (header, x5t)
    elif cached[0]["typ"] != typ:  # the same header bytes, expected as another message type
        raise EnvelopeError(f"typ must be {typ!r}, got {cached[0]['typ']!r}")
    return dict(cached[0]), cached[1]


def _header_bytes(header: dict[str, str]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _parse_header(raw: bytes, typ: str) -> dict[str, str]:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise EnvelopeError("header is not valid UTF-8 JSON") from None
    if not isinstance(header, dict):
        raise EnvelopeError("header is not a JSON object")
    if "crit" in header:
        raise EnvelopeError("header must not have 'crit' (no extensions are understood)")
    if header.keys() != _HEADER_KEYS:
        keys = ", ".join(sorted(map(repr, header.keys())))
        raise EnvelopeError(f"header keys must be exactly alg, typ, x5t#S256; got {keys}")
    if header["alg"] != ALG:
        raise EnvelopeError(f"alg must be {ALG}, got {header['alg']!r}")
    if header["typ"] != typ:
        raise EnvelopeError(f"typ must be {typ!r}, got {header['typ']!r}")
    if not isinstance(header["x5t#S256"], str) or not header["x5t#S256"].isascii():
        raise EnvelopeError("x5t#S256 must be an ASCII string")
    if _header_bytes(header) != raw:
        raise EnvelopeError("header is not canonical JSON (sorted keys, no whitespace)")
    return header


class _DeterministicES256(ESAlgorithm):
    """joserfc's ES256 with RFC 6979 deterministic nonces (verification is unchanged)."""

    def sign(self, msg: bytes, key: ECKey) -> bytes:
        der = key.get_op_key("sign").sign(
            msg, ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
        )
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class _SigningRegistry(JWSRegistry):
    """A registry of its own: ``JWSRegistry.register`` writes to a class-level dict, so
    registering on joserfc's class would change ES256 for every user in the process."""

    algorithms = {}  # noqa: RUF012
    recommended = []  # noqa: RUF012


_SigningRegistry.register(_DeterministicES256("ES256", "P-256", 256, recommended=True))
_SIGNING_REGISTRY = _SigningRegistry(algorithms=[ALG])
