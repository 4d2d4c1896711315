"""Reading schema, envelope signing and strict parsing (tracehub.reading, tracehub.envelope)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.util
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jws
from joserfc.jwk import ECKey

from tests.support.pki import T0, TestPKI, new_key
from tracehub.envelope import (
    MAX_ENVELOPE_BYTES,
    EnvelopeError,
    b64url_decode,
    b64url_encode,
    parse_envelope,
    protected_header,
    reading_hash,
    sign_reading,
)
from tracehub.reading import (
    GENESIS_PREV,
    NonCanonicalError,
    Reading,
    ReadingError,
    format_ts,
    parse_ts,
)
from tracehub.verify import InMemoryDirectory, TrustStore, VerificationError, verify_envelope

ROOT = Path(__file__).resolve().parents[2]
PKI = TestPKI("Envelope")
DEVICE = PKI.device("dev-1")


def reading(**overrides: Any) -> Reading:
    fields: dict[str, Any] = {
        "device": "dev-1",
        "seq": 1,
        "ts": T0,
        "kind": "environment",
        "data": {"temperature_c": 4.5, "humidity_pct": 55},
    }
    return Reading(**(fields | overrides))


def reading_json(**overrides: Any) -> dict[str, Any]:
    return reading().to_json() | overrides


def envelope_from(header: bytes | dict[str, Any], payload: bytes, key: Any = None) -> bytes:
    """An envelope over arbitrary header and payload bytes, signed with RFC 6979."""
    if isinstance(header, dict):
        header = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    signing_input = b64url_encode(header) + b"." + b64url_encode(payload)
    der = (key or DEVICE.key).sign(
        signing_input, ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
    )
    r, s = decode_dss_signature(der)
    return signing_input + b"." + b64url_encode(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def good_header() -> dict[str, Any]:
    return dict(json.loads(protected_header(DEVICE.cert)))


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# ---------------------------------------------------------------------- reading schema


def test_reading_round_trips_through_canonical_json() -> None:
    r = reading(
        loc="urn:epc:id:sgln:4006381.33393.0",
        data={"temperature_c": -1.5e-3, "humidity_pct": 100.0, "sensor": "Kühlraum"},
    )
    raw = r.to_json_bytes()
    assert Reading.from_json_bytes(raw) == r
    assert raw == canonical(json.loads(raw))
    assert "Kühlraum".encode() in raw  # not ASCII-escaped


def test_timestamps_are_utc_with_milliseconds() -> None:
    ts = parse_ts("2026-11-22T03:21:50.559Z")
    assert ts == datetime(2026, 11, 22, 3, 21, 50, 559000, tzinfo=UTC)
    assert format_ts(ts) == "2026-11-22T03:21:50.559Z"
    plus_two = reading(ts=datetime(2026, 6, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))))
    assert format_ts(plus_two.ts) == "2026-06-01T12:00:00.000Z"
    with pytest.raises(ReadingError, match="millisecond precision"):
        reading(ts=T0.replace(microsecond=1))
    with pytest.raises(ReadingError, match="timezone-aware"):
        reading(ts=datetime(2026, 6, 1))


BAD_READINGS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown key", {"extra": 1}, "unknown key"),
    ("version 2", {"v": 2}, "unsupported schema version"),
    ("version true", {"v": True}, "unsupported schema version"),
    ("device pattern", {"device": "-dev"}, "not a device id"),
    ("device too long", {"device": "d" * 65}, "not a device id"),
    ("device trailing newline", {"device": "dev-1\n"}, "not a device id"),
    ("seq zero", {"seq": 0}, "out of range"),
    ("seq bool", {"seq": True}, "expected an integer, got a boolean"),
    ("seq float", {"seq": 1.0}, "expected an integer, got a number"),
    ("seq string", {"seq": "1"}, "expected an integer, got a string"),
    ("seq unsafe", {"seq": 2**53, "prev": "a" * 64}, "out of range"),
    ("ts seconds only", {"ts": "2026-06-01T12:00:00Z"}, "RFC 3339 UTC with milliseconds"),
    ("ts offset", {"ts": "2026-06-01T12:00:00.000+00:00"}, "RFC 3339 UTC"),
    ("ts microseconds", {"ts": "2026-06-01T12:00:00.000000Z"}, "RFC 3339 UTC"),
    ("ts impossible date", {"ts": "2026-02-30T12:00:00.000Z"}, "not a valid date"),
    ("ts number", {"ts": 1780315200000}, "ts: expected a string"),
    ("kind", {"kind": "gps"}, "kind: 'gps' is not one of"),
    ("data array", {"data": []}, "data: expected an object"),
    ("env missing", {"data": {"temperature_c": 1}}, "missing key(s): humidity_pct"),
    ("env extra", {"data": {"temperature_c": 1, "humidity_pct": 2, "x": 3}}, "unknown key"),
    ("env bool", {"data": {"temperature_c": True, "humidity_pct": 2}}, "got a boolean"),
    ("env string", {"data": {"temperature_c": "4", "humidity_pct": 2}}, "got a string"),
    ("sensor empty", {"data": {"temperature_c": 1, "humidity_pct": 2, "sensor": ""}}, "1 to 64"),
    ("prev upper", {"seq": 2, "prev": "A" * 64}, "64 lowercase hex"),
    ("prev short", {"prev": "0" * 63}, "64 lowercase hex"),
    ("prev not genesis", {"prev": "1" * 64}, "exactly when seq is 1"),
    ("genesis at seq 2", {"seq": 2}, "exactly when seq is 1"),
    ("loc bad GLN", {"loc": "4006381333932"}, "check digit"),
    ("loc free text", {"loc": "dock 3"}, "read point URI"),
    ("loc too long", {"loc": "urn:" + "x" * 253}, "read point URI"),
    ("loc number", {"loc": 4006381333931}, "loc: expected a string"),
]


@pytest.mark.parametrize(
    ("fields", "message"), [c[1:] for c in BAD_READINGS], ids=[c[0] for c in BAD_READINGS]
)
def test_invalid_reading_json_is_rejected_with_a_clear_message(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ReadingError, match=re.escape(message)):
        Reading.from_json_bytes(canonical(reading_json(**fields)))


EPC = "3034257BF400B7800004CB2F"
RFID: dict[str, Any] = {"epc": EPC, "antenna": 1, "rssi_dbm": -60, "read_count": 3}
BAD_RFID: list[tuple[str, dict[str, Any], str]] = [
    ("epc lower case", {"epc": EPC.lower()}, "upper-case hex"),
    ("epc half byte", {"epc": "3034257BF400B7800004CB2"}, "whole bytes"),
    ("antenna bool", {"antenna": False}, "got a boolean"),
    ("antenna range", {"antenna": 256}, "out of range"),
    ("read_count zero", {"read_count": 0}, "out of range"),
    ("rssi string", {"rssi_dbm": "-60"}, "got a string"),
    ("seen format", {"first_seen": "2026-06-01 12:00:00.000Z"}, "data.first_seen"),
    (
        "seen order",
        {"first_seen": "2026-06-01T12:00:01.000Z", "last_seen": "2026-06-01T12:00:00.000Z"},
        "after data.last_seen",
    ),
]


@pytest.mark.parametrize(
    ("fields", "message"), [c[1:] for c in BAD_RFID], ids=[c[0] for c in BAD_RFID]
)
def test_invalid_rfid_data_is_rejected(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ReadingError, match=re.escape(message)):
        reading(kind="rfid", data=RFID | fields)


def test_rfid_and_event_readings_are_accepted() -> None:
    rfid = RFID | {"first_seen": "2026-06-01T12:00:00.000Z"}
    event = {"type": "door_open", "nested": {"list": [1, 2.5, None, True]}}
    for kind, data in (("rfid", rfid), ("event", event)):
        r = reading(kind=kind, data=data)
        assert (r.kind, r.data) == (kind, data)
        raw = r.to_json_bytes()
        assert json.loads(raw)["kind"] == kind and json.loads(raw)["data"] == data
        assert Reading.from_json_bytes(raw) == r


def test_card_id_reading_carries_no_antenna_or_rssi() -> None:
    card = {"card_id": "62E3086CED", "read_count": 2, "reader": "gate-125k"}
    r = reading(kind="rfid", data=card)
    assert Reading.from_json_bytes(r.to_json_bytes()) == r
    # A card reader measures no signal strength: a made-up one is refused, as is an EPC beside.
    for extra, message in (
        ({"rssi_dbm": 0}, "unknown key(s): 'rssi_dbm'"),
        ({"antenna": 0}, "unknown key(s): 'antenna'"),
        ({"epc": EPC}, "unknown key(s): 'epc'"),
        ({"card_id": "62e3086ced"}, "data.card_id: expected upper-case hex"),
    ):
        with pytest.raises(ReadingError, match=re.escape(message)):
            reading(kind="rfid", data=card | extra)


def test_epc_reading_may_leave_out_what_the_reader_does_not_say() -> None:
    # Stored readings with antenna and rssi_dbm stay valid (RFID above); new ones omit unknowns.
    r = reading(kind="rfid", data={"epc": EPC, "read_count": 1})
    assert "antenna" not in r.data and "rssi_dbm" not in r.data


def test_health_readings() -> None:
    fault = {
        "component": "coldroom-1",
        "fault": "out_of_range",
        "detail": "implausible 3276.7 degC, 45.0 %",
        "since": "2026-06-01T12:00:00.000Z",
        "failures": 3,
        "value": 3276.7,
    }
    r = reading(kind="health", data=fault)
    assert Reading.from_json_bytes(r.to_json_bytes()) == r
    assert reading(kind="health", data={"component": "coldroom-1", "fault": "none"})
    for bad, message in (
        ({"fault": "melted"}, "data.fault: 'melted' is not one of"),
        ({"since": "yesterday"}, "data.since"),
        ({"colour": "red"}, "unknown key(s): 'colour'"),
        ({"value": float("inf")}, "not a finite number"),
    ):
        with pytest.raises(ReadingError, match=re.escape(message)):
            reading(kind="health", data=fault | bad)
    with pytest.raises(ReadingError, match="missing key"):
        reading(kind="health", data={"fault": "timeout"})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"v":1,"v":1}', "duplicate key(s): 'v'"),
        (b'{"data":{"temperature_c":NaN}}', "NaN is not allowed"),
        (b'{"data":{"temperature_c":Infinity}}', "Infinity is not allowed"),
        (b"[1]", "must be a JSON object"),
        (b"\xff", "not valid UTF-8"),
        (b"{", "not valid JSON"),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b'{"n":' + b"9" * 5000 + b"}", "not valid JSON"),
        (b" " * (16 * 1024 + 1), "more than 16384"),
    ],
)
def test_invalid_json_is_rejected(raw: bytes, message: str) -> None:
    with pytest.raises(ReadingError, match=re.escape(message)):
        Reading.from_json_bytes(raw)


def test_event_data_rejects_overflow_and_deep_nesting() -> None:
    with pytest.raises(ReadingError, match="not a finite number"):
        Reading.from_json_bytes(
            canonical(reading_json(kind="event"))[:-1].replace(b'"data":{', b'"data":{"x":1e999,')
            + b"}"
        )
    deep: Any = 1
    for _ in range(20):
        deep = [deep]
    with pytest.raises(ReadingError, match="nested more than 16"):
        reading(kind="event", data={"x": deep})
    with pytest.raises(ReadingError, match="surrogate"):
        reading(kind="event", data={"x": "\ud800"})


# ---------------------------------------------------------------------- signing


def test_sign_and_parse_round_trip() -> None:
    r = reading()
    envelope = sign_reading(r, DEVICE.key, DEVICE.cert)
    assert envelope.isascii() and envelope.count(b".") == 2
    parsed = parse_envelope(envelope)
    assert parsed.reading == r
    assert parsed.header == good_header()
    assert parsed.x5t == DEVICE.cert.fingerprint(hashes.SHA256())
    assert parsed.payload == r.to_json_bytes()
    assert parsed.signing_input == envelope.rpartition(b".")[0]
    assert len(parsed.signature) == 64
    assert reading_hash(envelope) == hashlib.sha256(envelope).hexdigest()


def test_signature_is_rfc6979_and_verifies_with_joserfc() -> None:
    r = reading()
    envelope = sign_reading(r, DEVICE.key, DEVICE.cert)
    assert sign_reading(r, DEVICE.key, DEVICE.cert) == envelope
    signing_input, _, signature = envelope.rpartition(b".")
    der = DEVICE.key.sign(signing_input, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    rr, ss = decode_dss_signature(der)
    assert signature == b64url_encode(rr.to_bytes(32, "big") + ss.to_bytes(32, "big"))
    key = ECKey.import_key(DEVICE.cert.public_key())  # type: ignore[arg-type]
    obj = jws.deserialize_compact(envelope, key, algorithms=["ES256"])
    assert obj.payload == r.to_json_bytes()
    assert obj.headers() == good_header()


def test_signing_leaves_joserfcs_own_es256_alone() -> None:
    """The deterministic algorithm lives in a private registry, not joserfc's global one."""
    alg = jws.JWSRegistry(algorithms=["ES256"]).get_alg("ES256")
    assert type(alg).__name__ == "ESAlgorithm"


def test_sign_refuses_a_key_that_is_not_the_certificates() -> None:
    with pytest.raises(ValueError, match="does not belong"):
        sign_reading(reading(), new_key(), DEVICE.cert)
    with pytest.raises(TypeError, match="P-256"):
        sign_reading(reading(), ec.generate_private_key(ec.SECP384R1()), DEVICE.cert)


def test_sign_refuses_an_oversize_envelope() -> None:
    big = reading(kind="event", data={"blob": "x" * MAX_ENVELOPE_BYTES})
    with pytest.raises(EnvelopeError, match="over 16384"):
        sign_reading(big, DEVICE.key, DEVICE.cert)


# ---------------------------------------------------------------------- strict parsing


def _good() -> bytes:
    return sign_reading(reading(), DEVICE.key, DEVICE.cert)


def _replace_part(index: int, value: bytes) -> bytes:
    parts = _good().split(b".")
    parts[index] = value
    return b".".join(parts)


def _payload(**fields: Any) -> bytes:
    return envelope_from(good_header(), canonical(reading_json(**fields)))


MALFORMED: list[tuple[str, Callable[[], bytes], str]] = [
    ("two parts", lambda: _good().rpartition(b".")[0], "expected 3 dot-separated parts, got 2"),
    ("four parts", lambda: _good() + b".", "got 4"),
    ("empty", lambda: b"", "got 1"),
    ("padding", lambda: _good() + b"==", "signature is not base64url without padding"),
    ("standard alphabet", lambda: _replace_part(2, b"+" * 86), "not base64url"),
    ("whitespace", lambda: b" " + _good(), "header is not base64url"),
    ("impossible length", lambda: _replace_part(2, b"A" * 85), "impossible base64url length"),
    ("spare bits", lambda: _replace_part(2, b"A" * 85 + b"B"), "not canonical base64url"),
    ("short signature", lambda: _replace_part(2, b64url_encode(b"\0" * 63)), "64 bytes"),
    ("DER signature", lambda: _replace_part(2, b64url_encode(b"\x30" * 70)), "64 bytes"),
    ("header not JSON", lambda: _replace_part(0, b64url_encode(b"{")), "not valid UTF-8 JSON"),
    ("header array", lambda: _replace_part(0, b64url_encode(b"[]")), "not a JSON object"),
    ("header extra key", lambda: envelope_from(good_header() | {"kid": "1"}, b"{}"), "exactly"),
    (
        "header no x5t",
        lambda: envelope_from({"alg": "ES256", "typ": "tracehub-reading+jws"}, b"{}"),
        "exactly",
    ),
    ("alg none", lambda: envelope_from(good_header() | {"alg": "none"}, b"{}"), "alg must be"),
    ("alg HS256", lambda: envelope_from(good_header() | {"alg": "HS256"}, b"{}"), "alg must"),
    ("typ JWT", lambda: envelope_from(good_header() | {"typ": "JWT"}, b"{}"), "typ must be"),
    ("crit", lambda: envelope_from(good_header() | {"crit": ["exp"]}, b"{}"), "'crit'"),
    (
        "header spaces",
        lambda: envelope_from(json.dumps(good_header(), sort_keys=True).encode(), b"{}"),
        "header is not canonical",
    ),
    (
        "header order",
        lambda: envelope_from(
            json.dumps(dict(reversed(good_header().items())), separators=(",", ":")).encode(), b"{}"
        ),
        "header is not canonical",
    ),
    ("x5t short", lambda: envelope_from(good_header() | {"x5t#S256": "AAAA"}, b"{}"), "32-byte"),
    ("x5t number", lambda: envelope_from(good_header() | {"x5t#S256": 1}, b"{}"), "ASCII string"),
    ("payload not JSON", lambda: envelope_from(good_header(), b"{"), "payload: reading is not"),
    ("payload bad field", lambda: _payload(seq=True), "payload: seq: expected an integer"),
    ("payload unknown key", lambda: _payload(x=1), "payload: unknown key"),
    (
        "payload spaces",
        lambda: envelope_from(good_header(), json.dumps(reading_json()).encode()),
        "payload is not canonical",
    ),
    (
        "payload ASCII-escaped",
        lambda: envelope_from(
            good_header(),
            json.dumps(
                reading_json(kind="event", data={"n": "é"}), sort_keys=True, separators=(",", ":")
            ).encode(),
        ),
        "payload is not canonical",
    ),
    (
        "payload exponent",
        lambda: envelope_from(
            good_header(),
            canonical(reading_json()).replace(b'"temperature_c":4.5', b'"temperature_c":45e-1'),
        ),
        "payload is not canonical",
    ),
    (
        "payload loc null",
        lambda: envelope_from(good_header(), canonical(reading_json() | {"loc": None})),
        "payload is not canonical",
    ),
    ("oversize", lambda: b"A" * (MAX_ENVELOPE_BYTES + 1), "over 16384"),
]


@pytest.mark.parametrize(
    ("make", "message"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_parse_rejects_each_malformed_case(make: Callable[[], bytes], message: str) -> None:
    with pytest.raises(EnvelopeError, match=re.escape(message)):
        parse_envelope(make())


# ---------------------------------------------------------------------- properties


_B64URL_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=_B64URL_CHARS, max_size=64).filter(lambda t: len(t) % 4 != 1))
def test_b64url_decode_accepts_exactly_what_encoding_gives_back(segment: str) -> None:
    """The last-character test of unused bits is the definition's re-encoding, in one step."""
    raw = segment.encode()
    try:
        data = b64url_decode(raw)
    except EnvelopeError as exc:
        assert "unused bits" in str(exc)
        padded = raw + b"=" * (-len(raw) % 4)
        assert b64url_encode(base64.urlsafe_b64decode(padded)) != raw
    else:
        assert b64url_encode(data) == raw


_JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1)
_JSON = st.recursive(
    _JSON_SCALARS | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    data=st.dictionaries(st.text(max_size=6), _JSON, max_size=5),
    loc=st.sampled_from([(), (None,), ("4006381333931",), ("urn:epc:id:sgln:1.2.3",)]),
    sort_keys=st.booleans(),
    separators=st.sampled_from([(",", ":"), (", ", ": "), (",", ": ")]),
    ensure_ascii=st.booleans(),
)
def test_canonical_check_agrees_with_re_encoding_the_reading(
    data: dict[str, Any],
    loc: tuple[str | None, ...],
    sort_keys: bool,
    separators: tuple[str, str],
    ensure_ascii: bool,
) -> None:
    """from_canonical_json_bytes accepts exactly the JSON that is to_json_bytes() of what it
    parses to (the check it replaced), however the JSON is written."""
    obj = reading_json(kind="event", data=data, seq=2, prev="ab" * 32)
    if loc:
        obj["loc"] = loc[0]
    raw = json.dumps(
        obj, sort_keys=sort_keys, separators=separators, ensure_ascii=ensure_ascii
    ).encode()
    try:
        parsed = Reading.from_json_bytes(raw)
    except ReadingError:
        with pytest.raises(ReadingError):
            Reading.from_canonical_json_bytes(raw)
        return
    if parsed.to_json_bytes() == raw:
        assert Reading.from_canonical_json_bytes(raw) == parsed
    else:
        with pytest.raises(NonCanonicalError):
            Reading.from_canonical_json_bytes(raw)


TRUST = TrustStore(PKI.roots, PKI.intermediates, [PKI.crl()])
DIRECTORY = InMemoryDirectory([DEVICE.cert])
VALID = sign_reading(reading(kind="rfid", data=RFID, loc="4006381333931"), DEVICE.key, DEVICE.cert)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_raise_only_our_errors(raw: bytes) -> None:
    with pytest.raises(EnvelopeError):
        parse_envelope(raw)
    with pytest.raises(VerificationError):
        verify_envelope(raw, TRUST, DIRECTORY)


@st.composite
def mutations(draw: st.DrawFn) -> bytes:
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[i] = draw(st.sampled_from(b'._-=+/ AZaz09\x00\xff{}"'))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and data:
            del data[i : i + draw(st.integers(1, 4))]
        elif op == "truncate":
            del data[i:]
    return bytes(data)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(mutations())
def test_mutated_envelopes_never_verify_and_raise_only_our_errors(raw: bytes) -> None:
    with contextlib.suppress(EnvelopeError):
        parse_envelope(raw)
    if raw == VALID:
        verify_envelope(raw, TRUST, DIRECTORY)
        return
    with pytest.raises(VerificationError):
        verify_envelope(raw, TRUST, DIRECTORY)


# ---------------------------------------------------------------------- vectors, by our code


def _vectors_module() -> ModuleType:
    path = ROOT / "docs/test-vectors/make_vectors.py"
    spec = importlib.util.spec_from_file_location("make_vectors", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_regenerating_the_vectors_reproduces_the_file_byte_for_byte() -> None:
    path = ROOT / "docs/test-vectors/reading-vectors.json"
    assert _vectors_module().build().encode("utf-8") == path.read_bytes()


def test_project_code_reproduces_and_verifies_every_vector() -> None:
    from cryptography import x509

    from tracehub.verify import load_pem_crls

    doc = json.loads((ROOT / "docs/test-vectors/reading-vectors.json").read_text("utf-8"))
    device_key = _vectors_module().vector_key("device")

    def cert(name: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate(doc[name].encode())

    device = cert("device_certificate_pem")
    trust = TrustStore(
        [cert("root_ca_certificate_pem")],
        [cert("device_ca_certificate_pem")],
        load_pem_crls(doc["device_ca_crl_pem"].encode()),
    )
    directory = InMemoryDirectory([device])
    prev = GENESIS_PREV
    for vector in doc["vectors"]:
        r = Reading.from_json(vector["reading"])
        assert r.prev == prev
        envelope = sign_reading(r, device_key, device)
        assert envelope.decode() == vector["envelope"]
        assert protected_header(device).decode() == vector["protected_header"]
        assert r.to_json_bytes().decode() == vector["payload"]
        verified = verify_envelope(envelope, trust, directory, topic_device_id=doc["device_id"])
        assert verified.hash == vector["sha256"] == reading_hash(envelope)
        prev = verified.hash
    for case in doc["invalid"]:
        with pytest.raises(VerificationError) as caught:
            verify_envelope(case["envelope"].encode(), trust, directory)
        assert caught.value.reason == case["reason"], case["name"]
