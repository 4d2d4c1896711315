"""The ingest loop's grouping: wait for a first delivery, then linger briefly for more."""

from __future__ import annotations

import queue
import threading
import time

from gateway.consumer import Delivery, drain


def _queue(*items: int) -> queue.Queue[Delivery]:
    q: queue.Queue[Delivery] = queue.Queue()
    for item in items:
        q.put(item)  # type: ignore[arg-type]  # drain only moves items
    return q


def test_nothing_arrives_within_the_wait() -> None:
    started = time.monotonic()
    assert drain(_queue(), 10, 0.05, 1.0) == []
    assert time.monotonic() - started < 0.5  # lingering starts only after a first delivery


def test_a_full_group_returns_at_once() -> None:
    started = time.monotonic()
    assert drain(_queue(1, 2, 3, 4, 5), 3, 0.1, 5.0) == [1, 2, 3]
    assert time.monotonic() - started < 1.0


def test_a_partial_group_lingers_for_late_arrivals() -> None:
    q = _queue(1)
    threading.Timer(0.05, q.put, (2,)).start()
    started = time.monotonic()
    assert drain(q, 10, 0.1, 0.3) == [1, 2]
    assert time.monotonic() - started >= 0.3  # lingered its whole time for a possible third


def test_no_linger_takes_only_what_is_there() -> None:
    q = _queue(1, 2)
    threading.Timer(0.2, q.put, (3,)).start()
    assert drain(q, 10, 0.1) == [1, 2]
