"""A device reading: the payload of a signed reading envelope.

The schema and its canonical JSON form are specified in ``docs/reading-envelope.md``.
Constructing a :class:`Reading` validates it, so an invalid reading cannot exist.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast, get_args

from tracehub.errors import InvalidError
from tracehub.strictjson import refuse_duplicate_members

__all__ = [
    "CANONICAL_RULES",
    "DEVICE_ID_PATTERN",
    "GENESIS_PREV",
    "HEALTH_FAULTS",
    "MAX_READING_BYTES",
    "SCHEMA_VERSION",
    "Kind",
    "NonCanonicalError",
    "Reading",
    "ReadingError",
    "format_ts",
    "parse_ts",
]

SCHEMA_VERSION = 1
#: ``prev`` of a device's first reading (``seq`` 1).
GENESIS_PREV = "0" * 64
#: No payload is larger than this: the whole envelope is capped at 16 KiB.
MAX_READING_BYTES = 16 * 1024
#: Integers must survive a round trip through an IEEE double (JavaScript, most JSON parsers).
MAX_SAFE_INT = 2**53 - 1
#: Nesting limit for ``data`` (objects and arrays inside the reading).
MAX_DEPTH = 16

DEVICE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
_HASH = re.compile(r"[0-9a-f]{64}")
# UHF EPCs are whole 16-bit words; a 125 kHz EM4100 card's id is 5 bytes. Whole bytes cover both.
_EPC = re.compile(r"(?:[0-9A-F]{2}){2,62}")
# A 125 kHz card's id (EM4100: 5 bytes) is not an EPC and is named apart (data.card_id).
_CARD_ID = re.compile(r"(?:[0-9A-F]{2}){1,16}")
_GLN = re.compile(r"[0-9]{13}")
_READ_POINT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[\x21-\x7e]+")
_SURROGATE = re.compile(r"[\ud800-\udfff]")

Kind = Literal["rfid", "environment", "event", "health"]
#: What a health reading's ``data.fault`` may say; ``none``: the component works (again).
HEALTH_FAULTS = (
    "none",
    "timeout",
    "crc_error",
    "exception_response",
    "out_of_range",
    "connection_error",
    "other",
)
_KINDS: tuple[str, ...] = get_args(Kind)
_REQUIRED = frozenset({"v", "device", "seq", "ts", "kind", "data", "prev"})
_OPTIONAL = frozenset({"loc"})


class ReadingError(InvalidError):
    """A reading (or its JSON) does not follow the schema; the message says where and why."""


#: What the canonical JSON of a reading is; error messages name it.
CANONICAL_RULES = "sorted keys, no whitespace, unescaped UTF-8, shortest numbers"


class NonCanonicalError(ReadingError):
    """A valid reading whose JSON is not its canonical form (:meth:`Reading.to_json_bytes`)."""


@dataclass(frozen=True)
class Reading:
    """One signed device reading. ``data`` must not be mutated after construction."""

    device: str
    seq: int
    ts: datetime
    kind: Kind
    data: dict[str, Any]
    prev: str = GENESIS_PREV
    loc: str | None = None
    v: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.v != SCHEMA_VERSION or not _is_int(self.v):
            raise ReadingError(f"v: unsupported schema version {self.v!r} (expected 1)")
        if not isinstance(self.device, str) or not DEVICE_ID_PATTERN.fullmatch(self.device):
            raise ReadingError(
                f"device: {self.device!r} is not a device id "
                "(1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit)"
            )
        _check_int("seq", self.seq, 1, MAX_SAFE_INT)
        object.__setattr__(self, "ts", _check_datetime("ts", self.ts))
        if self.kind not in _KINDS:
            raise ReadingError(f"kind: {self.kind!r} is not one of {', '.join(_KINDS)}")
        if not isinstance(self.data, dict):
            raise ReadingError(f"data: expected an object, got {_type(self.data)}")
        _DATA_CHECKS[self.kind](self.data)
        if not isinstance(self.prev, str) or not _HASH.fullmatch(self.prev):
            raise ReadingError("prev: expected 64 lowercase hex digits (a SHA-256)")
        if (self.seq == 1) != (self.prev == GENESIS_PREV):
            raise ReadingError("prev: must be 64 zeros exactly when seq is 1")
        if self.loc is not None:
            _check_loc(self.loc)

    def to_json(self) -> dict[str, Any]:
        """The reading as a JSON-ready dict (``ts`` formatted, ``loc`` omitted when unset)."""
        out: dict[str, Any] = {
            "v": self.v,
            "device": self.device,
            "seq": self.seq,
            "ts": format_ts(self.ts),
            "kind": self.kind,
            "data": self.data,
            "prev": self.prev,
        }
        if self.loc is not None:
            out["loc"] = self.loc
        return out

    def to_json_bytes(self) -> bytes:
        """The canonical payload: sorted keys, no whitespace, UTF-8 (not ASCII-escaped)."""
        text = _CANONICAL.encode(self.to_json())
        return text.encode("utf-8")

    @classmethod
    def from_json(cls, obj: object) -> Reading:
        """Validate a decoded JSON value and build the reading from it."""
        if not isinstance(obj, dict):
            raise ReadingError(f"a reading must be a JSON object, got {_type(obj)}")
        unknown = obj.keys() - _REQUIRED - _OPTIONAL
        if unknown:
            raise ReadingError(f"unknown key(s): {', '.join(sorted(map(repr, unknown)))}")
        missing = _REQUIRED - obj.keys()
        if missing:
            raise ReadingError(f"missing key(s): {', '.join(sorted(missing))}")
        if not _is_int(obj["v"]) or obj["v"] != SCHEMA_VERSION:
            raise ReadingError(f"v: unsupported schema version {obj['v']!r} (expected 1)")
        if not isinstance(obj["ts"], str):
            raise ReadingError(f"ts: expected a string, got {_type(obj['ts'])}")
        return cls(
            device=obj["device"],
            seq=obj["seq"],
            ts=parse_ts(obj["ts"], "ts"),
            kind=obj["kind"],
            data=obj["data"],
            prev=obj["prev"],
            loc=obj.get("loc"),
            v=obj["v"],
        )

    @classmethod
    def from_json_bytes(cls, raw: bytes) -> Reading:
        """Parse and validate JSON bytes (strict: no duplicate keys, NaN or Infinity)."""
        return cls.from_json(_decode(raw)[1])

    @classmethod
    def from_canonical_json_bytes(cls, raw: bytes) -> Reading:
        """:meth:`from_json_bytes`, refusing with :class:`NonCanonicalError` JSON that is valid
        but not the reading's canonical form (``to_json_bytes() == raw`` for what it returns)."""
        text, obj = _decode(raw)
        reading = cls.from_json(obj)
        # The decoded object is the reading's to_json() already: from_json keeps every value as
        # decoded, and a ts that parse_ts accepts is the fixed-width text format_ts gives back.
        # The one difference: "loc": null reads as no loc, which to_json leaves out. Encoding it
        # spares building the dict again and formatting ts (a few µs a reading at the gateway).
        if obj.get("loc", "") is None or _CANONICAL.encode(obj) != text:
            raise NonCanonicalError(f"reading is not canonical JSON ({CANONICAL_RULES})")
        return reading


def format_ts(ts: datetime) -> str:
    """RFC 3339 UTC with exactly three fraction digits and ``Z``."""
    return (
        f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d}T{ts.hour:02d}:{ts.minute:02d}:"
        f"{ts.second:02d}.{ts.microsecond // 1000:03d}Z"
    )


def parse_ts(text: str, field: str = "ts") -> datetime:
    """Parse ``YYYY-MM-DDTHH:MM:SS.mmmZ`` into an aware UTC datetime."""
    if not isinstance(text, str) or not _TS.fullmatch(text):
        raise ReadingError(
            f"{field}: {text!r} is not RFC 3339 UTC with milliseconds, "
            "like 2026-11-22T03:21:50.559Z"
        )
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError as exc:
        raise ReadingError(f"{field}: {text!r} is not a valid date and time: {exc}") from None


def _decode(raw: bytes) -> tuple[str, Any]:
    """The text of JSON bytes and the value it holds (strict: no duplicate keys, NaN or
    Infinity)."""
    if len(raw) > MAX_READING_BYTES:
        raise ReadingError(f"reading is {len(raw)} bytes, more than {MAX_READING_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReadingError(f"reading is not valid UTF-8: {exc.reason}") from None
    try:
        return text, _STRICT.decode(text)
    except ReadingError:
        raise
    except ValueError as exc:  # JSONDecodeError, or an integer of more than 4300 digits
        raise ReadingError(f"reading is not valid JSON: {exc}") from None
    except RecursionError:
        raise ReadingError("reading is nested too deeply") from None


# ---------------------------------------------------------------------- field checks


def _type(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    names |= {list: "an array", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(field: str, value: object, low: int, high: int) -> None:
    if not _is_int(value):
        raise ReadingError(f"{field}: expected an integer, got {_type(value)}")
    if not low <= cast(int, value) <= high:
        raise ReadingError(f"{field}: {value} is out of range {low}..{high}")


def _check_number(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ReadingError(f"{field}: expected a number, got {_type(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ReadingError(f"{field}: {value} is not a finite number")
    if isinstance(value, int) and abs(value) > MAX_SAFE_INT:
        raise ReadingError(f"{field}: integer {value} is beyond ±(2**53 - 1)")


def _check_text(field: str, value: object, max_len: int) -> str:
    if not isinstance(value, str):
        raise ReadingError(f"{field}: expected a string, got {_type(value)}")
    if not 0 < len(value) <= max_len:
        raise ReadingError(f"{field}: must be 1 to {max_len} characters")
    if _SURROGATE.search(value):
        raise ReadingError(f"{field}: contains a lone UTF-16 surrogate")
    return value


def _check_datetime(field: str, ts: object) -> datetime:
    if type(ts) is datetime and ts.tzinfo is UTC and not ts.microsecond % 1000:
        return ts  # what parse_ts gives: every reading parsed from JSON takes this path
    if not isinstance(ts, datetime) or ts.utcoffset() is None:
        raise ReadingError(f"{field}: expected a timezone-aware datetime")
    if ts.utcoffset():
        ts = ts.astimezone(UTC)
    if ts.microsecond % 1000:
        raise ReadingError(f"{field}: must have millisecond precision (got {ts.isoformat()})")
    return ts.replace(tzinfo=UTC)


def _check_keys(
    field: str, data: Mapping[str, Any], required: set[str], optional: set[str]
) -> None:
    unknown = data.keys() - required - optional
    if unknown:
        raise ReadingError(f"{field}: unknown key(s): {', '.join(sorted(map(repr, unknown)))}")
    missing = required - data.keys()
    if missing:
        raise ReadingError(f"{field}: missing key(s): {', '.join(sorted(missing))}")


def _check_environment(data: dict[str, Any]) -> None:
    _check_keys("data", data, {"temperature_c", "humidity_pct"}, {"sensor"})
    _check_number("data.temperature_c", data["temperature_c"])
    _check_number("data.humidity_pct", data["humidity_pct"])
    if "sensor" in data:
        _check_text("data.sensor", data["sensor"], 64)


def _check_rfid(data: dict[str, Any]) -> None:
    # A UHF tag's EPC, or a 125 kHz card's id; a card reader measures no signal strength and
    # has one antenna, so a card_id reading carries neither.
    if "card_id" in data:
        _check_keys("data", data, {"card_id", "read_count"}, {"first_seen", "last_seen", "reader"})
        card = data["card_id"]
        if not isinstance(card, str) or not _CARD_ID.fullmatch(card):
            raise ReadingError("data.card_id: expected upper-case hex, whole bytes (2-32 digits)")
    else:
        optional = {"antenna", "rssi_dbm", "first_seen", "last_seen", "reader"}
        _check_keys("data", data, {"epc", "read_count"}, optional)
        epc = data["epc"]
        if not isinstance(epc, str) or not _EPC.fullmatch(epc):
            raise ReadingError("data.epc: expected upper-case hex, whole bytes (4-124 digits)")
        if "antenna" in data:
            _check_int("data.antenna", data["antenna"], 0, 255)
        if "rssi_dbm" in data:
            _check_number("data.rssi_dbm", data["rssi_dbm"])
    _check_int("data.read_count", data["read_count"], 1, MAX_SAFE_INT)
    seen = [parse_ts(data[k], f"data.{k}") for k in ("first_seen", "last_seen") if k in data]
    if len(seen) == 2 and seen[0] > seen[1]:
        raise ReadingError("data.first_seen is after data.last_seen")
    if "reader" in data:
        _check_text("data.reader", data["reader"], 64)


def _check_health(data: dict[str, Any]) -> None:
    optional = {"detail", "since", "failures", "value"}
    _check_keys("data", data, {"component", "fault"}, optional)
    _check_text("data.component", data["component"], 64)
    if data["fault"] not in HEALTH_FAULTS:
        raise ReadingError(
            f"data.fault: {data['fault']!r} is not one of {', '.join(HEALTH_FAULTS)}"
        )
    if "detail" in data:
        _check_text("data.detail", data["detail"], 256)
    if "since" in data:
        parse_ts(data["since"], "data.since")
    if "failures" in data:
        _check_int("data.failures", data["failures"], 0, MAX_SAFE_INT)
    if "value" in data:
        _check_number("data.value", data["value"])


def _check_event(data: dict[str, Any]) -> None:
    _check_json("data", data, 1)


def _check_json(field: str, value: object, depth: int) -> None:
    """Any JSON value: finite numbers, safe integers, no surrogates, bounded nesting."""
    if depth > MAX_DEPTH:
        raise ReadingError(f"{field}: nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or _SURROGATE.search(key):
                raise ReadingError(f"{field}: keys must be strings of valid Unicode")
            _check_json(f"{field}.{key}", item, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(f"{field}[{index}]", item, depth + 1)
    elif isinstance(value, str):
        if _SURROGATE.search(value):
            raise ReadingError(f"{field}: contains a lone UTF-16 surrogate")
    elif value is not None and not isinstance(value, bool):
        _check_number(field, value)


_DATA_CHECKS = {
    "environment": _check_environment,
    "rfid": _check_rfid,
    "event": _check_event,
    "health": _check_health,
}


def _check_loc(loc: object) -> None:
    if not isinstance(loc, str):
        raise ReadingError(f"loc: expected a string, got {_type(loc)}")
    if _GLN.fullmatch(loc):
        digits = [int(c) for c in loc]
        weighted = sum(d * (3 if i % 2 else 1) for i, d in enumerate(digits[:12]))
        if (10 - weighted % 10) % 10 != digits[12]:
            raise ReadingError(f"loc: {loc} is not a valid GLN (check digit)")
    elif len(loc) > 256 or not _READ_POINT.fullmatch(loc):
        raise ReadingError(
            "loc: expected a 13-digit GLN or a read point URI "
            "(scheme:..., printable ASCII, at most 256 characters)"
        )


# ---------------------------------------------------------------------- JSON hooks


_no_duplicates = refuse_duplicate_members(
    lambda names: ReadingError(f"duplicate key(s): {', '.join(sorted(map(repr, names)))}")
)


def _no_constant(name: str) -> Any:
    raise ReadingError(f"{name} is not allowed (only finite numbers)")


# Built once: json.dumps and json.loads build an encoder or decoder on every call that passes
# options (a few µs a reading at the gateway); these are the same objects they would build.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
_STRICT = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
