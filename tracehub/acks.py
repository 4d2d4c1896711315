"""Topics of the device/hub protocol and the hub's end-to-end acknowledgement message.

A device publishes readings and dropped-range reports under ``tracehub/v1/devices/<id>/``; the
gateway tells it, on ``tracehub/v1/acks/<id>``, how far the hub has *durably stored* its
readings. The broker ACL lets only the gateway service publish there and only that device read
it, which is what makes an acknowledgement authentic. Protocol: ``docs/acknowledgement.md``.

An acknowledgement ``{"v":1,"device":D,"through":N,"missing":[[a,b],...]}`` means: every reading
of D with seq <= N that is not inside a listed range is accounted for -- stored (or recorded as
lost on the device's own signed report) -- so the device may forget it; the listed ranges
(ascending, disjoint, inside 1..N) are not, and the hub asks for them again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from tracehub.errors import InvalidError
from tracehub.reading import DEVICE_ID_PATTERN, MAX_SAFE_INT

__all__ = [
    "MAX_MISSING_RANGES",
    "AckError",
    "HubAck",
    "SeqRange",
    "ack_topic",
    "dropped_topic",
    "readings_topic",
]

SCHEMA_VERSION = 1
#: An acknowledgement lists at most this many missing ranges; with more, ``through`` is lowered
#: to just below the first range left out, so the message stays exact (and small).
MAX_MISSING_RANGES = 64
#: An inclusive range of sequence numbers.
SeqRange = tuple[int, int]


class AckError(InvalidError):
    """Bytes that are not a well-formed acknowledgement."""


def readings_topic(device: str) -> str:
    return f"tracehub/v1/devices/{device}/readings"


def dropped_topic(device: str) -> str:
    return f"tracehub/v1/devices/{device}/dropped"


def ack_topic(device: str) -> str:
    return f"tracehub/v1/acks/{device}"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class HubAck:
    """How far the hub has stored one device's readings (see the module docstring)."""

    device: str
    through: int
    missing: tuple[SeqRange, ...] = ()
    v: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not _is_int(self.v) or self.v != SCHEMA_VERSION:
            raise AckError(f"v: unsupported version {self.v!r}")
        if not isinstance(self.device, str) or not DEVICE_ID_PATTERN.fullmatch(self.device):
            raise AckError(f"device: {self.device!r} is not a device id")
        if not _is_int(self.through) or not 0 <= self.through <= MAX_SAFE_INT:
            raise AckError(f"through: {self.through!r} is not a sequence number or 0")
        if len(self.missing) > MAX_MISSING_RANGES:
            raise AckError(f"more than {MAX_MISSING_RANGES} missing ranges")
        low = 1
        for pair in self.missing:
            if not (
                isinstance(pair, tuple)
                and len(pair) == 2
                and all(_is_int(x) for x in pair)
                and low <= pair[0] <= pair[1] <= self.through
            ):
                raise AckError(
                    f"missing: {pair!r} is not an ascending, disjoint range inside 1..through"
                )
            low = pair[1] + 2  # disjoint and not adjacent: [1,2],[3,4] is written [1,4]

    @classmethod
    def bounded(cls, device: str, through: int, missing: Sequence[SeqRange]) -> HubAck:
        """The acknowledgement for ``missing`` (ascending, disjoint), lowering ``through`` if
        there are more ranges than one message lists."""
        if len(missing) > MAX_MISSING_RANGES:
            through = missing[MAX_MISSING_RANGES][0] - 1
            missing = missing[:MAX_MISSING_RANGES]
        return cls(device, through, tuple(missing))

    def to_json_bytes(self) -> bytes:
        obj = {
            "v": self.v,
            "device": self.device,
            "through": self.through,
            "missing": [list(r) for r in self.missing],
        }
        return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("ascii")

    @classmethod
    def from_json_bytes(cls, raw: bytes) -> HubAck:
        try:
            obj = json.loads(raw)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise AckError(f"not JSON: {exc}") from None
        if not isinstance(obj, dict) or obj.keys() != {"v", "device", "through", "missing"}:
            raise AckError("expected an object with exactly v, device, through, missing")
        if not isinstance(obj["missing"], list):
            raise AckError("missing: expected an array")
        missing = tuple(tuple(r) if isinstance(r, list) else r for r in obj["missing"])
        return cls(obj["device"], obj["through"], missing, obj["v"])

    def accounted(self) -> list[SeqRange]:
        """The ranges of 1..through the hub has accounted for: the gaps between ``missing``."""
        ranges, low = [], 1
        for first, last in self.missing:
            if first > low:
                ranges.append((low, first - 1))
            low = last + 1
        if low <= self.through:
            ranges.append((low, self.through))
        return ranges
