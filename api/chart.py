"""A time-series chart as inline SVG: one line, the allowed band shaded, excursions marked, a
time axis (UTC) with ticks at round instants over the readings' own range.

Rendered on the server so the chart needs no script and no library fetched at run time; the
page stays readable with JavaScript off (docs/decisions: why not a charting library).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any

WIDTH, HEIGHT = 720, 220
PAD_L, PAD_R, PAD_T, PAD_B = 48, 12, 12, 28


@dataclass(frozen=True)
class Axis:
    low: float
    high: float

    def scale(self, value: float, start: float, length: float) -> float:
        span = self.high - self.low or 1.0
        return start + (value - self.low) / span * length


def _fmt(value: float) -> str:
    return f"{value:.1f}"


#: Spacings of the time axis' ticks, in seconds: the first giving at most six ticks is used.
TIME_STEPS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400)


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%d %b %H:%M")


def time_ticks(start: float, end: float) -> list[tuple[float, str]]:
    """Round instants (POSIX seconds) inside [start, end] with their UTC labels: clock times
    for a span under a day, dates (and times, for sub-day steps) beyond."""
    step = next((s for s in TIME_STEPS if (end - start) / s <= 6), TIME_STEPS[-1])
    first = -(-start // step) * step
    ticks = []
    t = first
    while t <= end:
        stamp = datetime.fromtimestamp(t, UTC)
        if step >= 86400:
            label = stamp.strftime("%d %b")
        elif end - start >= 86400:
            label = stamp.strftime("%d %b %H:%M")
        else:
            label = stamp.strftime("%H:%M")
        ticks.append((t, label))
        t += step
    return ticks


def line_chart(
    points: list[dict[str, Any]],
    key: str,
    low: float | None,
    high: float | None,
    *,
    label: str,
    css_class: str,
) -> str:
    """The SVG for `points[i][key]` over `points[i]['ts']` with band [low, high]."""
    if not points:
        return ""
    times = [datetime.fromisoformat(p["ts"]).timestamp() for p in points]
    values = [float(p[key]) for p in points]
    bounds = [v for v in (low, high) if v is not None]
    y_axis = Axis(min(values + bounds) - 1.0, max(values + bounds) + 1.0)
    x_axis = Axis(times[0], times[-1] if times[-1] > times[0] else times[0] + 1.0)
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B

    def x(t: float) -> float:
        return x_axis.scale(t, PAD_L, plot_w)

    def y(v: float) -> float:
        return PAD_T + plot_h - (y_axis.scale(v, 0, plot_h))

    parts = [
        f'<svg class="chart {css_class}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">',
        f'<rect class="frame" x="{PAD_L}" y="{PAD_T}" width="{plot_w}" height="{plot_h}"/>',
    ]
    if low is not None or high is not None:
        top = y(high if high is not None else y_axis.high)
        bottom = y(low if low is not None else y_axis.low)
        parts.append(
            f'<rect class="band" x="{PAD_L}" y="{_fmt(top)}" width="{plot_w}" '
            f'height="{_fmt(bottom - top)}"><title>{escape(label)}</title></rect>'
        )
    for bound in bounds:
        parts.append(
            f'<text class="tick" x="{PAD_L - 4}" y="{_fmt(y(bound) + 4)}" '
            f'text-anchor="end">{_fmt(bound)}</text>'
        )
    for v in (y_axis.low, y_axis.high):
        # The axis ends sit 1 unit beyond the band; label them only where they do not collide.
        if any(abs(y(v) - y(b)) < 14 for b in bounds):
            continue
        parts.append(
            f'<text class="tick" x="{PAD_L - 4}" y="{_fmt(y(v) + 4)}" '
            f'text-anchor="end">{_fmt(v)}</text>'
        )
    # The time axis over the readings' own range, in UTC (the page does not know the reader's
    # zone; the label says so).
    ticks = time_ticks(times[0], times[-1]) or [(times[0], _stamp(times[0]))]
    for t, stamp in ticks:
        parts.append(
            f'<line class="grid" x1="{_fmt(x(t))}" x2="{_fmt(x(t))}" y1="{PAD_T}" '
            f'y2="{PAD_T + plot_h}"/>'
            f'<text class="tick time" x="{_fmt(x(t))}" y="{HEIGHT - 8}" '
            f'text-anchor="middle">{stamp}</text>'
        )
    parts.append(
        f'<text class="tick" x="{WIDTH - PAD_R}" y="{PAD_T - 2}" text-anchor="end">UTC</text>'
    )
    path = " ".join(
        f"{'M' if i == 0 else 'L'}{_fmt(x(t))},{_fmt(y(v))}"
        for i, (t, v) in enumerate(zip(times, values, strict=True))
    )
    parts.append(f'<path class="series" d="{path}"/>')
    for t, v, point in zip(times, values, points, strict=True):
        if (low is not None and v < low) or (high is not None and v > high):
            parts.append(
                f'<circle class="excursion" cx="{_fmt(x(t))}" cy="{_fmt(y(v))}" r="3.5">'
                f"<title>{escape(point['ts'])}: {_fmt(v)}</title></circle>"
            )
    parts.append("</svg>")
    return "".join(parts)
