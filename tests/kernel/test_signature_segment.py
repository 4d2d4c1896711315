"""The ES256 check by `cryptography` directly (decision 0036): it agrees with joserfc on every
signature joserfc decides, and refuses the encodings of a signature that are not canonical."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from tests.kernel.test_verify import DEVICE, check, reason_of, signed
from tracehub.envelope import ALG, b64url_decode, b64url_encode
from tracehub.verify import Reason, VerificationError

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _joserfc_accepts(envelope: bytes) -> bool:
    try:
        jws.deserialize_compact(
            envelope, ECKey.import_key(DEVICE.cert.public_key()), algorithms=[ALG]
        )
    except (JoseError, ValueError):
        return False
    return True


def _hub_accepts(envelope: bytes) -> bool:
    try:
        check(envelope)
    except VerificationError as refused:
        assert refused.reason in (Reason.BAD_SIGNATURE, Reason.MALFORMED)
        return False
    return True


def _with_signature(envelope: bytes, signature: bytes) -> bytes:
    return envelope.rpartition(b".")[0] + b"." + signature


def test_a_valid_signature_verifies_both_ways() -> None:
    envelope = signed()
    assert _hub_accepts(envelope) and _joserfc_accepts(envelope)


def test_every_single_bit_flip_of_the_signature_is_refused_as_joserfc_refuses_it() -> None:
    envelope = signed()
    raw = b64url_decode(envelope.rpartition(b".")[2])
    for bit in range(len(raw) * 8):
        flipped = bytearray(raw)
        flipped[bit // 8] ^= 1 << (bit % 8)
        candidate = _with_signature(envelope, b64url_encode(bytes(flipped)))
        assert not _hub_accepts(candidate)
        assert not _joserfc_accepts(candidate)


def test_the_other_s_of_the_same_signature_is_judged_as_joserfc_judges_it() -> None:
    """ECDSA's (r, n - s) verifies too; the hub decides it as the library always did (the
    reading's hash covers the envelope bytes, so it would be a different record, still signed
    by the device's key)."""
    envelope = signed()
    raw = b64url_decode(envelope.rpartition(b".")[2])
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    other = r.to_bytes(32, "big") + (P256_ORDER - s).to_bytes(32, "big")
    candidate = _with_signature(envelope, b64url_encode(other))
    assert _hub_accepts(candidate) == _joserfc_accepts(candidate)


@pytest.mark.parametrize(
    "bend",
    [
        lambda seg: seg + b"=",  # padded
        lambda seg: seg[:-1],  # 63 bytes and change
        lambda seg: seg + b"AA",  # 65 bytes
        lambda seg: b"+/" + seg[2:],  # base64's characters, not base64url's
        lambda seg: seg[:40] + b" " + seg[41:],  # a character outside the alphabet
        lambda seg: b"",
    ],
    ids=["padded", "short", "long", "plain-base64", "space", "empty"],
)
def test_a_signature_segment_that_is_not_86_base64url_characters_is_refused(bend: object) -> None:
    envelope = signed()
    segment = envelope.rpartition(b".")[2]
    candidate = _with_signature(envelope, bend(segment))  # type: ignore[operator]
    assert candidate != envelope
    assert reason_of(candidate) in (Reason.BAD_SIGNATURE, Reason.MALFORMED)


def test_a_non_canonical_last_character_is_refused() -> None:
    """86 characters carry 516 bits for 512: the last character's two low bits must be zero.
    Setting them decodes to the same bytes, so a lenient decoder would accept a second
    encoding of one signature (and a second envelope hash for one reading)."""
    envelope = signed()
    segment = envelope.rpartition(b".")[2]
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(segment[-1:])
    bent = segment[:-1] + alphabet[last | 0b01 : (last | 0b01) + 1]
    assert bent != segment
    assert base64.urlsafe_b64decode(bent + b"==") == base64.urlsafe_b64decode(segment + b"==")
    assert reason_of(_with_signature(envelope, bent)) in (Reason.MALFORMED, Reason.BAD_SIGNATURE)


def test_the_signature_is_r_then_s() -> None:
    """The 64 bytes are R and S, big-endian (RFC 7518 §3.4), not a DER sequence."""
    envelope = signed()
    raw = b64url_decode(envelope.rpartition(b".")[2])
    assert len(raw) == 64
    swapped = raw[32:] + raw[:32]
    assert not _hub_accepts(_with_signature(envelope, b64url_encode(swapped)))
    r, s = decode_dss_signature(DEVICE.key.sign(b"x", ec.ECDSA(hashes.SHA256())))
    assert r.bit_length() <= 256 and s.bit_length() <= 256  # each fits its 32 bytes
