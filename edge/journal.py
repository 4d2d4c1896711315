"""The sighting journal: every tag sighting is written to the spool's database as it is read.

The smoother holds a tag's sightings in memory until its read event closes (one smoothing window
after the last sighting); without the journal a crash loses them. Each sighting is committed
here before it reaches the smoother, and deleted in the transaction that spools the read event
it ends up in (`Spool.append_many(consumed=...)`), so at any moment a sighting is in exactly
one of the journal or a spooled reading. On start the agent replays what the journal holds into
its smoothers, with the sightings' own times.

Durability: by default the journal has its own connection with ``synchronous=normal`` in WAL
mode, so a commit is a write to the WAL without an fsync. That survives the process dying
(kill -9, a crash): the data is in the kernel's page cache. A power cut can lose the sightings
committed since the WAL was last synced, which the spool's full-sync commits (every read event
and sample) and the agent's checkpoint every second (`Spool.sync`) bound to about a second.
``[spool] journal_sync = "full"`` makes every sighting survive a power cut too, at an fsync
each. Measured with bench/journal_bench.py (3000 sightings, the development machine's SSD):
full 186 us a sighting (5.4k/s), normal 27 us (38k/s), batches of 50 with full sync 11 us. On
an SD card or eMMC an fsync takes milliseconds, which a reader reporting hundreds of sightings a
second would feel; batching would need a delay in which a crash loses sightings, so it was not
chosen.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BUSY_TIMEOUT_S", "Journal", "Sighting"]

#: How long a write waits for another connection's transaction before it fails.
BUSY_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Sighting:
    """One journaled tag sighting (``epc`` upper-case hex: an EPC or a card id)."""

    reader: str
    epc: str
    antenna: int | None
    rssi_dbm: float | None
    at: float
    id_kind: str = "epc"


class Journal:
    """Appends sightings durably; safe to share between threads."""

    def __init__(self, path: Path, *, synchronous: str = "normal") -> None:
        if synchronous not in ("off", "normal", "full"):
            raise ValueError("synchronous is off, normal or full")
        # The spool has created the table (edge.spool.SCHEMA) before the journal opens.
        # A long busy timeout: the spool's fsyncs hold the write lock, and a sighting that gives
        # up waiting is lost.
        self._db = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None
        )
        self._db.execute("pragma journal_mode=wal")
        self._db.execute(f"pragma synchronous={synchronous}")
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def record(self, sighting: Sighting) -> None:
        """Commit one sighting (autocommit: one transaction)."""
        with self._lock:
            self._db.execute(
                "insert into sightings (reader, epc, antenna, rssi_dbm, at, id_kind)"
                " values (?, ?, ?, ?, ?, ?)",
                (
                    sighting.reader,
                    sighting.epc,
                    sighting.antenna,
                    sighting.rssi_dbm,
                    sighting.at,
                    sighting.id_kind,
                ),
            )

    def pending(self, reader: str) -> list[Sighting]:
        """The reader's sightings not yet in a spooled reading, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "select reader, epc, antenna, rssi_dbm, at, id_kind from sightings"
                " where reader = ? order by at, id",
                (reader,),
            ).fetchall()
        return [Sighting(*row) for row in rows]

    def discard(self, consumed: Iterable[tuple[str, str, int | None, float]]) -> None:
        """Forget sightings whose reading the spool refused (its full policy dropped them)."""
        with self._lock:
            self._db.execute("begin immediate")
            try:
                self._db.executemany(
                    "delete from sightings where reader = ? and epc = ? and antenna is ?"
                    " and at <= ?",
                    list(consumed),
                )
            except BaseException:
                self._db.execute("rollback")
                raise
            self._db.execute("commit")

    def count(self) -> int:
        with self._lock:
            row = self._db.execute("select count(*) from sightings").fetchone()
        return int(row[0])
