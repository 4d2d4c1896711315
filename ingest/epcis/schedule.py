"""The query schedule of a scheduled subscription (EPCIS 2.0 ``QuerySchedule``): fields
``second``, ``minute``, ``hour``, ``dayOfMonth``, ``month``, ``dayOfWeek``, each a comma list of
numbers and ``[a-b]`` ranges. An omitted field coarser than the finest given one matches any
value; an omitted finer one means its lowest value, so ``{"hour": "1", "minute": "5"}`` fires
once a day at 01:05:00, not sixty times."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ingest.epcis.store import EPCISQueryError

__all__ = ["FIELDS", "Schedule"]

#: field -> (lowest, highest), finest first
FIELDS: dict[str, tuple[int, int]] = {
    "second": (0, 59),
    "minute": (0, 59),
    "hour": (0, 23),
    "dayOfMonth": (1, 31),
    "month": (1, 12),
    "dayOfWeek": (1, 7),
}
_ELEMENT = re.compile(r"^(?:(\d{1,2})|\[(\d{1,2})-(\d{1,2})\])$")


def _values(name: str, text: str) -> frozenset[int]:
    low, high = FIELDS[name]
    out: set[int] = set()
    for item in str(text).split(","):
        match = _ELEMENT.fullmatch(item.strip())
        if match is None:
            raise EPCISQueryError(f"schedule.{name}: {item!r} is not a number or [a-b] range")
        a = int(match[1] or match[2])
        b = int(match[1] or match[3])
        if not low <= a <= b <= high:
            raise EPCISQueryError(f"schedule.{name}: {item!r} is outside {low}..{high}")
        out.update(range(a, b + 1))
    return frozenset(out)


class Schedule:
    """A parsed schedule; ``matches(t)`` for a whole second ``t``."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        unknown = set(spec) - set(FIELDS)
        if unknown:
            raise EPCISQueryError(f"schedule.{sorted(unknown)[0]}: unknown schedule field")
        if not spec:
            raise EPCISQueryError("schedule: names no field")
        finest = min(i for i, name in enumerate(FIELDS) if name in spec)
        self.fields: dict[str, frozenset[int]] = {}
        for i, name in enumerate(FIELDS):
            if name in spec:
                self.fields[name] = _values(name, spec[name])
            elif i < finest:
                self.fields[name] = frozenset({FIELDS[name][0]})

    def matches(self, t: datetime) -> bool:
        actual = {
            "second": t.second,
            "minute": t.minute,
            "hour": t.hour,
            "dayOfMonth": t.day,
            "month": t.month,
            "dayOfWeek": t.isoweekday(),
        }
        return all(actual[name] in allowed for name, allowed in self.fields.items())
