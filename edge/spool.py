"""Durable store-and-forward spool for signed readings (SQLite in WAL mode).

Each reading gets its sequence number and hash-chain link inside the same transaction that
stores it, so a crash can neither reuse a sequence number nor break the chain. A reading leaves
the spool only when the hub acknowledged it as stored (`settle`, docs/acknowledgement.md): the
broker's PUBACK only marks it sent (`mark_sent`) and schedules its resend, in case the broker
loses it before the gateway has stored it. The spool is bounded by count and age; what happens
when it is full is a stated policy (`when_full`), and every reading it drops is counted, logged
and recorded as a dropped range (`dropped`), which the agent reports to the hub signed.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
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
    sent_at real,                      -- the broker's last PUBACK for it; null: never sent
    attempts integer not null default 0,
    next_send real not null default 0, -- (re)send once the clock passes it; 0: at once
    primary key (device, seq)
) without rowid;
create index if not exists outbox_created on outbox (created);
create table if not exists counters (name text primary key, value integer not null);
-- Readings dropped before the hub acknowledged them, as ranges, until reported to the hub.
create table if not exists dropped (
    device text not null,
    first integer not null,
    last integer not null,
    reason text not null,
    at real not null,
    reported integer not null default 0,
    primary key (device, first)
) without rowid;
-- The agent's counters (reads, publishes, sensor failures, ...) as of its last status write, so
-- they continue across restarts (edge.totals).
create table if not exists totals (name text primary key, value integer not null);
-- Tag sightings read but not yet part of a spooled read event (edge.journal): written as they
-- are read, deleted in the transaction that spools the event they end up in.
create table if not exists sightings (
    id integer primary key,
    reader text not null,
    epc text not null,
    antenna integer,
    rssi_dbm real,
    at real not null,
    id_kind text not null default 'epc'
);
create index if not exists sightings_reader on sightings (reader, at);
"""
# Columns a spool written by an agent before the end-to-end acknowledgement lacks.
_ADDED_COLUMNS = {
    "sent_at": "real",
    "attempts": "integer not null default 0",
    "next_send": "real not null default 0",
}
_DUE_INDEX = "create index if not exists outbox_due on outbox (next_send, created, device, seq)"
SeqRange = tuple[int, int]

EnvelopeBuilder = Callable[[int, str], bytes]
"""Builds the signed envelope for (sequence number, previous reading's hash)."""

Consumed = tuple[str, str, int | None, float]
"""Journaled sightings an appended reading accounts for: (reader, epc hex, antenna, up to and
including this time)."""


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
    #: The broker has acknowledged it before (this is a resend).
    sent: bool = False


@dataclass(frozen=True)
class Drop:
    """Readings ``first``..``last`` of ``device`` the spool dropped unacknowledged."""

    device: str
    first: int
    last: int
    reason: str  # "overflow" or "expired"
    at: float


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
        columns = {row[1] for row in self._db.execute("pragma table_info(outbox)")}
        for name, declaration in _ADDED_COLUMNS.items():
            if name not in columns:
                self._db.execute(f"alter table outbox add column {name} {declaration}")
        self._db.execute(_DUE_INDEX)
        self._depth, self._unsent = self._count_outbox()
        # Counters are saved several times a second: a commit that survives the process dying
        # (WAL write, no fsync) is enough for them; `sync()` bounds what a power cut takes.
        self._light = sqlite3.connect(
            path, timeout=30.0, check_same_thread=False, isolation_level=None
        )
        self._light.execute("pragma synchronous=normal")

    def close(self) -> None:
        with self._lock:
            self._light.close()
            self._db.close()

    def sync(self) -> None:
        """Make everything committed so far, on any connection, survive a power cut: a
        checkpoint syncs the write-ahead log (commits without fsync: counters, the journal)."""
        with self._lock:
            self._db.execute("pragma wal_checkpoint(passive)")

    def append(
        self, device: str, build: EnvelopeBuilder, *, now: float | None = None
    ) -> SpooledReading:
        """Assign the device's next sequence number, sign via ``build``, store durably."""
        return self.append_many([(device, build)], now=now)[0]

    def append_many(
        self,
        items: Iterable[tuple[str, EnvelopeBuilder]],
        *,
        now: float | None = None,
        consumed: Iterable[Consumed] = (),
    ) -> list[SpooledReading]:
        """Append several readings in one transaction (one fsync), deleting in the same
        transaction the journaled sightings they account for (``consumed``): a crash leaves
        either the sightings or the readings, never both nor neither."""
        created = time.time() if now is None else now
        stored: list[SpooledReading] = []
        with self._lock:
            try:
                self._append_all(items, created, stored, consumed)
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
        consumed: Iterable[Consumed] = (),
    ) -> None:
        with self._transaction():
            self._db.executemany(
                "delete from sightings where reader = ? and epc = ? and antenna is ? and at <= ?",
                list(consumed),
            )
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
                self._unsent += 1
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
        self._delete("where device = ? and seq = ?", oldest)
        self._note_dropped([tuple(oldest)], "overflow", time.time())
        self._count("dropped_oldest", 1)
        log.warning("spool full: dropped unacknowledged reading %s #%d to make room", *oldest)

    def pending(
        self,
        *,
        limit: int = 100,
        exclude: Collection[tuple[str, int]] = (),
        now: float | None = None,
    ) -> list[SpooledReading]:
        """Readings due for (re)sending, oldest first, leaving out ``exclude`` (in flight):
        never sent, or sent and still unacknowledged by the hub when their resend is due."""
        due = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute(
                "select device, seq, envelope, sent_at is not null from outbox"
                " where next_send <= ? order by next_send, created, device, seq limit ?",
                (due, limit + len(exclude)),
            ).fetchall()
        fresh = [
            SpooledReading(device, seq, bytes(envelope), bool(sent))
            for device, seq, envelope, sent in rows
            if (device, seq) not in exclude
        ]
        return fresh[:limit]

    def mark_sent(
        self,
        readings: Iterable[SpooledReading],
        *,
        resend_after_s: float,
        max_resend_after_s: float,
        now: float | None = None,
    ) -> int:
        """The broker acknowledged these: keep them, due again after ``resend_after_s``,
        doubled for each earlier attempt up to ``max_resend_after_s``, unless the hub
        acknowledges them first. Returns how many are still in the spool."""
        sent_at = time.time() if now is None else now
        batch = list(readings)
        with self._lock, self._transaction():
            marked = self._db.executemany(
                "update outbox set sent_at = ?1, attempts = attempts + 1,"
                " next_send = ?1 + min(?2, ?3 * (1 << min(attempts, 20)))"
                " where device = ?4 and seq = ?5",
                [(sent_at, max_resend_after_s, resend_after_s, r.device, r.seq) for r in batch],
            ).rowcount
            if marked == len(batch):
                self._unsent -= sum(1 for r in batch if not r.sent)
            else:  # some were settled meanwhile: count again
                self._depth, self._unsent = self._count_outbox()
        return marked

    def settle(self, device: str, ranges: Iterable[SeqRange]) -> int:
        """The hub has stored (or accounted for) these ranges of ``device``'s readings: remove
        them. Returns how many readings were removed."""
        removed = 0
        with self._lock, self._transaction():
            for first, last in ranges:
                removed += self._delete(
                    "where device = ? and seq between ? and ?", (device, first, last)
                )
        return removed

    def resend(self, device: str, ranges: Iterable[SeqRange], *, grace_s: float) -> int:
        """The hub says the readings of ``ranges`` are missing: resend each ``grace_s`` after
        it was last sent, if its resend is due later than that. Returns how many moved."""
        changed = 0
        with self._lock, self._transaction():
            for first, last in ranges:
                changed += self._db.execute(
                    "update outbox set next_send = sent_at + ?"
                    " where device = ? and seq between ? and ? and next_send > sent_at + ?",
                    (grace_s, device, first, last, grace_s),
                ).rowcount
        return changed

    def resend_all(self) -> int:
        """Make every sent, unacknowledged reading due at once (a new broker connection: the
        broker may have lost what it held)."""
        with self._lock, self._transaction():
            changed: int = self._db.execute(
                "update outbox set next_send = 0 where next_send > 0"
            ).rowcount
        return changed

    def held(self, device: str, first: int, last: int) -> list[int]:
        """The sequence numbers of ``first``..``last`` the spool still holds, ascending."""
        with self._lock:
            rows = self._db.execute(
                "select seq from outbox where device = ? and seq between ? and ? order by seq",
                (device, first, last),
            ).fetchall()
        return [seq for (seq,) in rows]

    def expire(self, *, now: float | None = None) -> int:
        """Drop readings older than ``max_age_s`` (counted, logged and recorded as dropped)."""
        at = time.time() if now is None else now
        cutoff = at - self.max_age_s
        with self._lock, self._transaction():
            keys = self._db.execute(
                "select device, seq from outbox where created < ? order by device, seq",
                (cutoff,),
            ).fetchall()
            removed = self._delete("where created < ?", (cutoff,))
            if removed:
                self._count("expired", removed)
                self._note_dropped([tuple(k) for k in keys], "expired", at)
            # The record of drops already reported is kept as long as readings would be.
            self._db.execute("delete from dropped where reported = 1 and at < ?", (cutoff,))
        if removed:
            log.warning(
                "spool: %d unacknowledged readings older than %.0f s expired",
                removed,
                self.max_age_s,
            )
        return removed

    # -- dropped ranges

    def _note_dropped(self, keys: list[tuple[str, int]], reason: str, at: float) -> None:
        """Record dropped (device, seq) keys, sorted, as ranges: extending the device's last
        unreported range of the same reason when they follow on from it."""
        for device, first, last in _ranges(keys):
            row = self._db.execute(
                "select first from dropped where device = ? and last = ? and reason = ?"
                " and reported = 0",
                (device, first - 1, reason),
            ).fetchone()
            if row is not None:
                self._db.execute(
                    "update dropped set last = ?, at = ? where device = ? and first = ?",
                    (last, at, device, row[0]),
                )
            else:
                self._db.execute(
                    "insert into dropped (device, first, last, reason, at) values (?, ?, ?, ?, ?)",
                    (device, first, last, reason, at),
                )

    def unreported(self, *, limit: int = 100) -> list[Drop]:
        """Dropped ranges not yet reported to the hub, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "select device, first, last, reason, at from dropped where reported = 0"
                " order by at, device, first limit ?",
                (limit,),
            ).fetchall()
        return [Drop(*row) for row in rows]

    def mark_reported(self, drop: Drop) -> None:
        """The broker took the report of ``drop`` (if the range grew since, it is reported
        again with its new end)."""
        with self._lock, self._transaction():
            self._db.execute(
                "update dropped set reported = 1 where device = ? and first = ? and last = ?",
                (drop.device, drop.first, drop.last),
            )

    def drop_reasons(self, device: str, first: int, last: int) -> list[tuple[int, int, str]]:
        """The recorded drops of ``device`` inside ``first``..``last``, clipped to it."""
        with self._lock:
            rows = self._db.execute(
                "select max(first, ?), min(last, ?), reason from dropped"
                " where device = ? and first <= ? and last >= ? order by first",
                (first, last, device, last, first),
            ).fetchall()
        return [(a, b, reason) for a, b, reason in rows]

    # -- bookkeeping

    def _delete(self, where: str, params: Sequence[object]) -> int:
        """Delete outbox rows (inside a transaction), keeping the in-memory counts right."""
        # Plain columns only: SQLite 3.40 returns wrong values for an expression such as
        # "sent_at is not null" in RETURNING of a delete that uses an index.
        sent = self._db.execute(f"delete from outbox {where} returning sent_at", params).fetchall()
        self._depth -= len(sent)
        self._unsent -= sum(1 for (sent_at,) in sent if sent_at is None)
        return len(sent)

    def _count_outbox(self) -> tuple[int, int]:
        depth, unsent = self._db.execute(
            "select count(*), count(*) - count(sent_at) from outbox"
        ).fetchone()
        return int(depth), int(unsent)

    def depth(self) -> int:
        """Readings the hub has not acknowledged as stored (sent or not)."""
        return self._depth

    def unsent(self) -> int:
        """Readings the broker has not acknowledged yet."""
        return self._unsent

    def last(self, device: str) -> tuple[int, str] | None:
        """The device's last assigned sequence number and hash."""
        with self._lock:
            row = self._db.execute(
                "select seq, hash from chain where device = ?", (device,)
            ).fetchone()
        return (row[0], row[1]) if row else None

    def load_totals(self) -> dict[str, int]:
        """The agent's counters as last saved."""
        with self._lock:
            return dict(self._db.execute("select name, value from totals").fetchall())

    def save_totals(self, totals: dict[str, int]) -> None:
        """Replace the saved counters, in one transaction (all or none of them)."""
        with self._lock:
            self._light.execute("begin immediate")
            try:
                self._light.executemany(
                    "insert into totals (name, value) values (?, ?)"
                    " on conflict (name) do update set value = excluded.value",
                    sorted(totals.items()),
                )
            except BaseException:
                self._light.execute("rollback")
                raise
            self._light.execute("commit")

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
            self._depth, self._unsent = self._count_outbox()
            raise
        self._db.execute("commit")


def _ranges(keys: Iterable[tuple[str, int]]) -> Iterator[tuple[str, int, int]]:
    """(device, first, last) runs of consecutive sequence numbers in sorted (device, seq) keys."""
    run: tuple[str, int, int] | None = None
    for device, seq in keys:
        if run is not None and device == run[0] and seq == run[2] + 1:
            run = (device, run[1], seq)
            continue
        if run is not None:
            yield run
        run = (device, seq, seq)
    if run is not None:
        yield run
