"""The query schedule of scheduled EPCIS subscriptions (ingest/epcis/schedule.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ingest.epcis.schedule import Schedule
from ingest.epcis.store import EPCISQueryError


def _at(hour: int, minute: int, second: int, day: int = 3) -> datetime:
    return datetime(2026, 12, day, hour, minute, second, tzinfo=UTC)  # 2026-12-03: a Thursday


def test_omitted_finer_fields_mean_their_lowest_value() -> None:
    daily = Schedule({"hour": "1", "minute": "5"})
    assert daily.matches(_at(1, 5, 0))
    assert not daily.matches(_at(1, 5, 1))  # once, not sixty times
    assert not daily.matches(_at(2, 5, 0))
    assert daily.matches(_at(1, 5, 0, day=20))  # coarser fields omitted: any day


def test_lists_and_ranges() -> None:
    schedule = Schedule({"second": "0,[30-32]", "dayOfWeek": "[1-5]"})
    assert schedule.matches(_at(9, 0, 31))
    assert schedule.matches(_at(23, 59, 0))
    assert not schedule.matches(_at(9, 0, 33))
    assert not schedule.matches(_at(9, 0, 0, day=5))  # a Saturday
    every = Schedule({"second": "[0-59]"})
    assert all(every.matches(_at(4, 4, s)) for s in range(60))


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"hour": "24"}, "schedule.hour"),
        ({"minute": "[10-5]"}, "schedule.minute"),
        ({"second": "*"}, "schedule.second"),
        ({"dayOfMonth": "0"}, "schedule.dayOfMonth"),
        ({"week": "1"}, "schedule.week"),
        ({}, "schedule"),
    ],
)
def test_bad_schedules_are_refused_naming_the_field(spec: dict[str, str], named: str) -> None:
    with pytest.raises(EPCISQueryError, match=named):
        Schedule(spec)
