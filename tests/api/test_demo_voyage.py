"""The demo's voyage timeline (demo/voyage.py): days at sea logged every 10 minutes, an hour
above 8 °C, custody in order; shortened in proportion on a PKI younger than the voyage."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from demo.voyage import EXCURSION_C, INTERVAL, LEAD, VOYAGE, logger_series, plan

NOW = datetime(2026, 12, 3, 14, 32, 17, 123456, tzinfo=UTC)


def _in_order(*marks: datetime) -> bool:
    return all(a < b for a, b in itertools.pairwise(marks))


def test_a_pki_older_than_the_voyage_gets_the_whole_voyage() -> None:
    voyage = plan(NOW, NOW - timedelta(days=30))
    assert voyage.duration == VOYAGE
    assert voyage.departed - voyage.provisioned == LEAD
    assert _in_order(
        voyage.provisioned,
        voyage.commissioned,
        voyage.packed,
        voyage.dock_read,
        voyage.departed,
        voyage.arrived,
        voyage.arrival_read,
        voyage.received,
    )
    assert NOW - timedelta(minutes=10) < voyage.received < NOW
    series = logger_series(voyage)
    assert len(series) == VOYAGE / INTERVAL + 1 == 721
    assert series[0].ts == voyage.departed and series[-1].ts == voyage.arrived
    # Readings carry millisecond times at most (tracehub.reading).
    assert all(p.ts.microsecond == 0 for p in series)
    above = [p for p in series if p.above(8.0)]
    assert len(above) == 7 and max(p.temperature_c for p in above) == EXCURSION_C
    assert above[-1].ts - above[0].ts == timedelta(minutes=60)
    assert all(b.ts - a.ts == INTERVAL for a, b in itertools.pairwise(above))
    # Elsewhere a reefer holding its set point, humidity inside 30-70 %.
    rest = [p for p in series if not p.above(8.0)]
    assert all(2.0 <= p.temperature_c <= 8.0 for p in rest)
    assert all(30.0 <= p.humidity_pct <= 70.0 for p in series)


def test_a_young_pki_shortens_the_timeline_never_before_its_cas() -> None:
    valid_from = NOW - timedelta(hours=10)
    voyage = plan(NOW, valid_from)
    assert valid_from < voyage.provisioned < voyage.commissioned < voyage.departed
    assert timedelta(hours=6) < voyage.duration < timedelta(hours=10)
    assert voyage.duration % INTERVAL == timedelta(0)
    assert len([p for p in logger_series(voyage) if p.above(8.0)]) == 7
