"""ReadSmoother: repeats within the window collapse; time is injected, nothing sleeps."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.rfid_reader import TagRead
from edge.smoothing import ReadEvent, ReadSmoother

EPC_A = bytes.fromhex("3074257BF7194E4000001A85")
EPC_B = bytes.fromhex("E200301666130121155074EF")


def read(epc: bytes = EPC_A, antenna: int | None = 0, rssi: float | None = -60.0) -> TagRead:
    return TagRead("r2000", epc, antenna, rssi, 0x3000, b"")


def test_repeats_within_window_collapse_into_one_event() -> None:
    s = ReadSmoother(window_s=1.0)
    for t, rssi in [(0.0, -70.0), (0.3, -55.0), (0.9, -61.0), (1.5, None)]:
        assert s.add(read(rssi=rssi), t) == []
    assert s.flush(2.4) == []  # 0.9 s after the last repeat: still open
    assert s.flush(2.5) == [ReadEvent(EPC_A, 0, 0.0, 1.5, 4, -55.0)]
    assert len(s) == 0


def test_gap_of_a_full_window_starts_a_new_event() -> None:
    s = ReadSmoother(window_s=1.0)
    s.add(read(), 0.0)
    events = s.add(read(), 1.0)
    assert events == [ReadEvent(EPC_A, 0, 0.0, 0.0, 1, -60.0)]
    assert s.flush(math.inf) == [ReadEvent(EPC_A, 0, 1.0, 1.0, 1, -60.0)]


def test_epc_and_antenna_are_separate_groups() -> None:
    s = ReadSmoother(window_s=0.5)
    s.add(read(EPC_A, 0), 0.0)
    s.add(read(EPC_A, 1), 0.1)
    s.add(read(EPC_B, 0), 0.2)
    s.add(read(EPC_A, 0), 0.3)
    assert len(s) == 3
    events = s.flush(math.inf)
    assert [(e.epc, e.antenna, e.count) for e in events] == [
        (EPC_A, 1, 1),
        (EPC_B, 0, 1),
        (EPC_A, 0, 2),
    ]


def test_events_come_out_of_add_for_other_tags() -> None:
    s = ReadSmoother(window_s=1.0)
    s.add(read(EPC_A), 0.0)
    events = s.add(read(EPC_B), 5.0)
    assert [e.epc for e in events] == [EPC_A]
    assert len(s) == 1


def test_peak_rssi_none_when_reader_reports_none() -> None:
    s = ReadSmoother(window_s=1.0)
    s.add(read(antenna=None, rssi=None), 0.0)
    s.add(read(antenna=None, rssi=None), 0.1)
    [event] = s.flush(math.inf)
    assert event.peak_rssi_dbm is None and event.antenna is None and event.count == 2


def test_max_open_closes_the_stalest_group_early() -> None:
    s = ReadSmoother(window_s=10.0, max_open=2)
    s.add(read(EPC_A, 0), 0.0)
    s.add(read(EPC_A, 1), 1.0)
    events = s.add(read(EPC_B, 0), 2.0)
    assert [(e.epc, e.antenna) for e in events] == [(EPC_A, 0)]
    assert len(s) == 2


def test_argument_checks() -> None:
    with pytest.raises(ValueError):
        ReadSmoother(window_s=0)
    with pytest.raises(ValueError):
        ReadSmoother(window_s=1, max_open=0)
    with pytest.raises(ValueError):
        ReadSmoother(window_s=1).flush(math.nan)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=0.8),
            st.sampled_from([EPC_A, EPC_B]),
            st.integers(min_value=0, max_value=1),
        ),
        max_size=60,
    )
)
def test_every_read_counted_once_and_memory_bounded(
    steps: list[tuple[float, bytes, int]],
) -> None:
    s = ReadSmoother(window_s=0.5)
    now = 0.0
    events: list[ReadEvent] = []
    for gap, epc, antenna in steps:
        now += gap
        events.extend(s.add(read(epc, antenna), now))
        assert len(s) <= 4  # distinct (epc, antenna) pairs
    events.extend(s.flush(math.inf))
    assert sum(e.count for e in events) == len(steps)
    assert len(s) == 0
    for e in events:
        assert e.first_seen <= e.last_seen
    # Two events of one group never overlap and are at least a window apart.
    by_key: dict[tuple[bytes, int | None], list[ReadEvent]] = {}
    for e in events:
        by_key.setdefault((e.epc, e.antenna), []).append(e)
    for group in by_key.values():
        for earlier, later in itertools.pairwise(group):
            assert later.first_seen - earlier.last_seen >= 0.5
