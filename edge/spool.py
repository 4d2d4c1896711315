"""Durable store-and-forward spool for signed readings (SQLite in WAL mode).

Each reading gets its sequence number and hash-chain link inside the same transaction that
stores it, so a crash can neither reuse a sequence number nor break the chain. A reading leaves
the spool only when the broker acknowledged it (`ack`). The spool is bounded by count and age;
what happens when it is full is a stated policy (`when_full`), and every reading it drops is
counted and logged, never silent.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from edge.errors import EdgeError
from tracehub.envelope import reading_hash
from tracehub.errors import UnavailableError
from tracehub.reading import GENESIS_PREV

log = logging.getLogger(__name__)

SCHEMA = """
create table if not exists chain (
    device text primary key,
    seq integer not null,
    hash text not null
);
create table if not exists outbox (
    device text not null,
    seq integer not null,
    envelope blob not null,
    created real not null,
    primary key (device, seq)
) without rowid;
create index if not exists outbox_created on outbox (created);
create table if not exists counters (name text primary key, value integer not null);
"""

EnvelopeBuilder = Callable[[int, str], bytes]
"""Builds the signed envelope for (sequence number, previous reading's hash)."""


class WhenFull(StrEnum):
    """What `append` does when the spool holds `max_readings`."""

    DROP_OLDEST = "drop-oldest"  # keep the newest: the gateway sees the gap in the hash chain
    REFUSE_NEW = "refuse-new"  # keep the oldest: new readings are refused (SpoolFullError)


class SpoolFullError(EdgeError, UnavailableError):
    """The spool is full and its policy refuses new readings."""


@dataclass(frozen=True)
class SpooledReading:
    device: str
    seq: int
    envelope: bytes


class Spool:
    """A SQLite-backed outbox; safe to share between threads."""

    def __init__(
        self,
        path: Path,
        *,
        max_readings: int = 1_000_000,
        max_age_s: float = 30 * 86400,
        when_full: WhenFull = WhenFull.DROP_OLDEST,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_readings = max_readings
        self.max_age_s = max_age_s
        self.when_full = WhenFull(when_full)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # FULL: a reading the agent was told is stored survives a power cut, not only a crash.
        self._db.executescript("pragma journal_mode=wal; pragma synchronous=full;" + SCHEMA)
        self._depth = self._count_outbox()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def append(
        self, device: str, build: EnvelopeBuilder, *, now: float | None = None
    ) -> SpooledReading:
        """Assign the device's next sequence number, sign via ``build``, store durably."""
        return self.append_many([(device, build)], now=now)[0]

    def append_many(
        self, items: Iterable[tuple[str, EnvelopeBuilder]], *, now: float | None = None
    ) -> list[SpooledReading]:
        """Append several readings in one transaction (one fsync)."""
        created = time.time() if now is None else now
        stored: list[SpooledReading] = []
        with self._lock:
            try:
                self._append_all(items, created, stored)
            except SpoolFullError:
                # The batch rolled back; the refusal itself is recorded in its own transaction.
                with self._transaction():
                    self._count("refused_full", 1)
                raise
        return stored

    def _append_all(
        self,
        items: Iterable[tuple[str, EnvelopeBuilder]],
        created: float,
        stored: list[SpooledReading],
    ) -> None:
        with self._transaction():
            for device, build in items:
                self._make_room(device)
                row = self._db.execute(
                    "select seq, hash from chain where device = ?", (device,)
                ).fetchone()
                seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS_PREV)
                envelope = build(seq, prev)
                self._db.execute(
                    "insert into outbox (device, seq, envelope, created) values (?, ?, ?, ?)",
                    (device, seq, envelope, created),
                )
                self._db.execute(
                    "insert into chain (device, seq, hash) values (?, ?, ?) "
                    "on conflict (device) do update set seq = excluded.seq, hash = excluded.hash",
                    (device, seq, reading_hash(envelope)),
                )
                self._depth += 1
                stored.append(SpooledReading(device, seq, envelope))

    def _make_room(self, device: str) -> None:
        if self._depth < self.max_readings:
            return
        if self.when_full is WhenFull.REFUSE_NEW:
            raise SpoolFullError(
                f"spool full ({self.max_readings} readings); reading from {device} refused"
            )
        oldest = self._db.execute(
            "select device, seq from outbox order by created, seq limit 1"
        ).fetchone()
        self._db.execute("delete from outbox where device = ? and seq = ?", oldest)
        self._depth -= 1
        self._count("dropped_oldest", 1)
        log.warning("spool full: dropped unsent reading %s #%d to make room", *oldest)

    def pending(
        self, *, limit: int = 100, exclude: Collection[tuple[str, int]] = ()
    ) -> list[SpooledReading]:
        """Unacknowledged readings, oldest first, leaving out ``exclude`` (those in flight)."""
        with self._lock:
            rows = self._db.execute(
                "select device, seq, envelope from outbox order by created, device, seq limit ?",
                (limit + len(exclude),),
            ).fetchall()
        fresh = [
            SpooledReading(device, seq, bytes(envelope))
            for device, seq, envelope in rows
            if (device, seq) not in exclude
        ]
        return fresh[:limit]

    def ack(self, acknowledged: Iterable[tuple[str, int]]) -> int:
        """Remove readings the broker acknowledged; returns how many were removed."""
        removed = 0
        with self._lock, self._transaction():
            for device, seq in acknowledged:
                removed += self._db.execute(
                    "delete from outbox where device = ? and seq = ?", (device, seq)
                ).rowcount
            self._depth -= removed
        return removed

    def expire(self, *, now: float | None = None) -> int:
        """Drop readings older than ``max_age_s`` (counted and logged)."""
        cutoff = (time.time() if now is None else now) - self.max_age_s
        with self._lock, self._transaction():
            removed = self._db.execute("delete from outbox where created < ?", (cutoff,)).rowcount
            self._depth -= removed
            if removed:
                self._count("expired", removed)
        if removed:
            log.warning(
                "spool: %d unsent readings older than %.0f s expired", removed, self.max_age_s
            )
        return removed

    def _count_outbox(self) -> int:
        count: int = self._db.execute("select count(*) from outbox").fetchone()[0]
        return count

    def depth(self) -> int:
        """Readings waiting for the broker's acknowledgement."""
        return self._depth

    def last(self, device: str) -> tuple[int, str] | None:
        """The device's last assigned sequence number and hash."""
        with self._lock:
            row = self._db.execute(
                "select seq, hash from chain where device = ?", (device,)
            ).fetchone()
        return (row[0], row[1]) if row else None

    def counters(self) -> dict[str, int]:
        """Readings dropped by policy: dropped_oldest, refused_full, expired."""
        with self._lock:
            return dict(self._db.execute("select name, value from counters").fetchall())

    def _count(self, name: str, n: int) -> None:
        self._db.execute(
            "insert into counters (name, value) values (?, ?) "
            "on conflict (name) do update set value = value + excluded.value",
            (name, n),
        )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT; on error roll back and recount the in-memory depth."""
        self._db.execute("begin immediate")
        try:
            yield
        except BaseException:
            self._db.execute("rollback")
            self._depth = self._count_outbox()
            raise
        self._db.execute("commit")
