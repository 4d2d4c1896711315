"""Collapse the many sightings a reader reports per second into one event per tag presence.

A group is one (EPC, antenna). It stays open while repeats keep arriving less than `window_s`
apart and becomes a `ReadEvent` once `window_s` has passed without one. Time is passed in by the
caller (any monotonic clock), so the smoother never sleeps and tests need no real time.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from edge.rfid_reader.base import TagRead

__all__ = ["ReadEvent", "ReadSmoother"]


@dataclass(frozen=True, slots=True)
class ReadEvent:
    """One presence of a tag at an antenna."""

    epc: bytes
    antenna: int | None
    first_seen: float
    last_seen: float
    count: int
    peak_rssi_dbm: float | None
    id_kind: str = "epc"  # or "card_id": what `epc` holds (edge.rfid_reader.base.TagRead)


@dataclass(slots=True)
class _Group:
    first_seen: float
    last_seen: float
    count: int
    peak_rssi_dbm: float | None
    id_kind: str

    def event(self, key: tuple[bytes, int | None]) -> ReadEvent:
        return ReadEvent(
            key[0],
            key[1],
            self.first_seen,
            self.last_seen,
            self.count,
            self.peak_rssi_dbm,
            self.id_kind,
        )


class ReadSmoother:
    """Debounce tag reads per (EPC, antenna).

    Memory holds one small record per group still open, i.e. per distinct tag seen within the
    last `window_s`; `max_open` caps even that (the stalest group is closed early).

    Call `add()` for every read and `flush(now)` periodically so quiet tags get closed;
    `flush(math.inf)` closes everything, e.g. at shutdown.
    """

    def __init__(self, window_s: float, *, max_open: int = 100_000) -> None:
        if not window_s > 0:
            raise ValueError("window_s must be positive")
        if max_open < 1:
            raise ValueError("max_open must be at least 1")
        self.window_s = window_s
        self.max_open = max_open
        # Ordered by last sighting, so the groups to close are always at the front.
        self._open: OrderedDict[tuple[bytes, int | None], _Group] = OrderedDict()

    def __len__(self) -> int:
        return len(self._open)

    def add(self, read: TagRead, now: float) -> list[ReadEvent]:
        """Record `read` seen at `now`; return the events of groups that closed before it."""
        events = self.flush(now)
        key = (read.epc, read.antenna)
        group = self._open.get(key)
        if group is None:
            if len(self._open) >= self.max_open:
                stale_key, stale = self._open.popitem(last=False)
                events.append(stale.event(stale_key))
            self._open[key] = _Group(now, now, 1, read.rssi_dbm, read.id_kind)
            return events
        group.last_seen = max(group.last_seen, now)
        group.count += 1
        if read.rssi_dbm is not None and (
            group.peak_rssi_dbm is None or read.rssi_dbm > group.peak_rssi_dbm
        ):
            group.peak_rssi_dbm = read.rssi_dbm
        self._open.move_to_end(key)
        return events

    def flush(self, now: float) -> list[ReadEvent]:
        """Close and return groups with no repeat for `window_s` as of `now` (all for `inf`)."""
        if math.isnan(now):
            raise ValueError("now is NaN")
        events: list[ReadEvent] = []
        while self._open:
            key, group = next(iter(self._open.items()))
            if now - group.last_seen < self.window_s:
                break
            del self._open[key]
            events.append(group.event(key))
        return events
