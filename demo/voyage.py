"""The demo's voyage: when each thing happens, and what the reefer logger records.

A reefer container goes from the factory in Shenzhen to the buyer's warehouse in Valencia. The
logger and the dock scanner are provisioned the day before departure; the lot is commissioned
and packed; the scanner reads the case at the dock and records the shipping step; the logger
records temperature and humidity every 10 minutes while at sea, offline, and uploads its spool
on arrival (store and forward); at Valencia the scanner reads the case and records the
receiving step. Halfway, during transshipment, the reefer loses power for a while: seven
readings (an hour from the first to the last) are above the 8 °C limit.

Everything is dated in the past and published at the end, as a real upload after a voyage
would be. The times cannot start before the PKI's CAs became valid (the gateway refuses a
reading its certificate chain did not cover), so on a PKI younger than the voyage the whole
timeline is shortened (the logger keeps its 10-minute interval); see decision 0026.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "EXCURSION_C",
    "INTERVAL",
    "MIN_VOYAGE",
    "VOYAGE",
    "LoggerReading",
    "Voyage",
    "logger_series",
    "plan",
]

#: The logger's recording interval.
INTERVAL = timedelta(minutes=10)
#: Departure to arrival, when the PKI is old enough (a fresh stack's is: decision 0026).
VOYAGE = timedelta(days=5)
#: Below this, a voyage would not show what the demo is for (an hour-long excursion inside it).
MIN_VOYAGE = timedelta(hours=4)
#: Provisioning (certificates issued, ledger records) before departure.
LEAD = timedelta(hours=26)
#: The temperatures (°C) around the power loss: warming, seven readings above 8 °C, cooling.
EXCURSION_PROFILE = (6.3, 7.4, 8.3, 8.9, 9.2, 9.4, 9.3, 9.0, 8.6, 7.6, 6.4)
EXCURSION_C = max(EXCURSION_PROFILE)
#: Where in the voyage the power loss starts (transshipment), as a fraction of it.
EXCURSION_AT = 0.45
#: Nothing is dated later than this before the moment the demo runs (the gateway refuses
#: readings from the future, and the receiving step is the last thing that happens).
SETTLE = timedelta(minutes=5)


@dataclass(frozen=True)
class Voyage:
    """The timeline's marks, all in UTC."""

    provisioned: datetime
    commissioned: datetime
    packed: datetime
    dock_read: datetime
    departed: datetime
    arrived: datetime
    arrival_read: datetime
    received: datetime

    @property
    def duration(self) -> timedelta:
        return self.arrived - self.departed


@dataclass(frozen=True)
class LoggerReading:
    ts: datetime
    temperature_c: float
    humidity_pct: float

    def above(self, limit: float) -> bool:
        return self.temperature_c > limit


def plan(now: datetime, valid_from: datetime) -> Voyage:
    """The timeline ending just before ``now``, starting no earlier than ``valid_from`` (the
    latest of the CAs' notBefore): the full voyage if it fits, else shortened in proportion."""
    received = now.replace(second=0, microsecond=0) - SETTLE
    arrival_read = received - timedelta(minutes=15)
    arrived = arrival_read - timedelta(minutes=20)
    room = arrived - valid_from - timedelta(minutes=1)
    scale = min(1.0, room / (VOYAGE + LEAD))
    steps = int(VOYAGE * scale / INTERVAL)
    departed = arrived - INTERVAL * steps
    lead = LEAD * scale
    return Voyage(
        provisioned=departed - _minutes(lead),
        commissioned=departed - _minutes(lead * 24 / 26),
        packed=departed - _minutes(lead * 3 / 26),
        dock_read=departed - _minutes(lead / 78),
        departed=departed,
        arrived=arrived,
        arrival_read=arrival_read,
        received=received,
    )


def _minutes(span: timedelta) -> timedelta:
    """``span`` in whole minutes (at least one): readings carry millisecond times at most."""
    return timedelta(minutes=max(1, int(span / timedelta(minutes=1))))


def logger_series(voyage: Voyage) -> list[LoggerReading]:
    """One reading every INTERVAL from departure to arrival: a reefer holding 4-6 °C with a
    daily swing, and the power loss at EXCURSION_AT of the way."""
    steps = int(voyage.duration / INTERVAL)
    day = timedelta(days=1) / INTERVAL
    start = round(steps * EXCURSION_AT)
    out = []
    for k in range(steps + 1):
        phase = 2 * math.pi * k / day
        j = k - start
        if 0 <= j < len(EXCURSION_PROFILE):
            temperature = EXCURSION_PROFILE[j]
        else:
            # The daily swing, and a little deterministic jitter as a real sensor shows.
            temperature = round(5.0 + 0.6 * math.sin(phase) + ((k * 37) % 7 - 3) * 0.05, 1)
        humidity = round(52.0 + 4.0 * math.sin(phase + 1.0) + ((k * 11) % 5 - 2) * 0.3, 1)
        out.append(LoggerReading(voyage.departed + INTERVAL * k, temperature, humidity))
    return out
