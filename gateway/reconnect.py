"""Riding out a lost database: the same work again, on a new connection, until it commits.

When the PostgreSQL server the gateway writes to dies (or fails over to its standby,
decision 0033), the group being written is neither committed nor acknowledged. Dropping it
would leave its messages unacknowledged in the broker until the gateway's session ends; instead
the gateway writes the same group again once a server takes writes (the store reconnects by
itself, through the multi-host connection string). Writing it again is safe whatever the lost
connection had done: the store keeps one reading per (device, seq), so a group whose commit
succeeded unseen comes back as duplicates, acknowledged, and stored once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

import psycopg

log = logging.getLogger(__name__)
T = TypeVar("T")


def until_committed(
    work: Callable[[], T],
    stop: threading.Event,
    *,
    first_wait_s: float = 0.1,
    max_wait_s: float = 1.0,
) -> tuple[T] | None:
    """``(work(),)`` once it returns, calling it again while the database cannot be reached
    (``psycopg.OperationalError``: no server takes writes, the connection broke); None if
    ``stop`` is set meanwhile. Other errors are raised: they would fail again."""
    wait = first_wait_s
    while True:
        try:
            return (work(),)
        except psycopg.OperationalError as exc:
            log.warning("database unreachable (%s); writing again in %.1f s", exc, wait)
        if stop.wait(wait):
            return None
        wait = min(wait * 2, max_wait_s)
