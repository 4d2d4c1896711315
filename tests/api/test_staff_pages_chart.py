"""The lot page's server-drawn chart (api/chart.py): a time axis at round UTC instants over the
readings' own range, the band, the excursions."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from api.chart import line_chart, time_ticks


def _points(start: datetime, minutes: list[int], values: list[float]) -> list[dict[str, object]]:
    return [
        {"ts": (start + timedelta(minutes=m)).isoformat(), "temperature_c": v}
        for m, v in zip(minutes, values, strict=True)
    ]


def test_time_ticks_fall_on_round_instants_inside_the_range() -> None:
    start = datetime(2026, 3, 2, 7, 40, 10, tzinfo=UTC).timestamp()
    ticks = time_ticks(start, start + 4 * 3600)
    assert [label for _, label in ticks] == ["08:00", "09:00", "10:00", "11:00"]
    assert all(start <= t <= start + 4 * 3600 for t, _ in ticks)
    week = time_ticks(start, start + 7 * 86400)
    assert 2 <= len(week) <= 6 and all(t % 86400 == 0 and ":" not in w for t, w in week)
    two_days = time_ticks(start, start + 36 * 3600)
    assert 2 <= len(two_days) <= 6 and all(
        re.fullmatch(r"\d\d \w{3} \d\d:\d\d", w) for _, w in two_days
    )


def test_the_chart_has_a_time_axis_the_band_and_its_excursions() -> None:
    start = datetime(2026, 3, 2, 7, 40, tzinfo=UTC)
    minutes = list(range(0, 240, 5))
    values = [9.5 if m in (100, 105) else 4.0 for m in minutes]
    svg = line_chart(
        _points(start, minutes, values), "temperature_c", 2.0, 8.0, label="t", css_class="temp"
    )
    labels = re.findall(r'<text class="tick time"[^>]*>([^<]+)</text>', svg)
    assert labels == ["08:00", "09:00", "10:00", "11:00"]
    assert svg.count('class="excursion"') == 2 and 'class="band"' in svg and ">UTC<" in svg
    # One reading still gets its instant on the axis.
    single = line_chart(_points(start, [0], [5.0]), "temperature_c", 2, 8, label="t", css_class="t")
    assert re.findall(r'<text class="tick time"[^>]*>([^<]+)</text>', single) == ["07:40"]
