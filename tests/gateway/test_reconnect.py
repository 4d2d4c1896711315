"""gateway.reconnect: a write is repeated while the database cannot be reached, never after it
returned, and given up only when the gateway stops (it is then not acknowledged)."""

from __future__ import annotations

import threading

import psycopg
import pytest

from gateway.reconnect import until_committed


def test_written_again_until_a_server_takes_it() -> None:
    calls: list[int] = []

    def work() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return "committed"

    result = until_committed(work, threading.Event(), first_wait_s=0.01)
    assert result == ("committed",) and len(calls) == 3


def test_stopping_while_unreachable_leaves_it_unwritten() -> None:
    stop = threading.Event()

    def work() -> None:
        stop.set()  # the gateway stops while the database is away
        raise psycopg.OperationalError("no server takes writes")

    assert until_committed(work, stop, first_wait_s=0.01) is None


def test_other_errors_are_raised_not_repeated() -> None:
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        raise psycopg.errors.UniqueViolation("a bug, not an outage")

    with pytest.raises(psycopg.errors.UniqueViolation):
        until_committed(work, threading.Event(), first_wait_s=0.01)
    assert len(calls) == 1
