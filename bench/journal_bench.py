"""What journaling each tag sighting costs, by durability (edge.journal).

    .venv/bin/python -m bench.journal_bench [--sightings 5000]

Writes ``--sightings`` sightings into a fresh spool database's journal, one committed
transaction per sighting, with ``synchronous`` full (an fsync per sighting: survives a power
cut) and normal (a write to the WAL: survives the process dying, which is what a kill -9 or a
crash does), and, for comparison, in batches of 50 with full sync (what a bounded-delay
batching writer would do). Reports sightings/s and the mean cost per sighting; writes
bench/results/journal.json. The directory is a temporary one on the same file system as the
project (not tmpfs), so the fsyncs are real.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path

from edge.journal import Journal, Sighting
from edge.spool import Spool

RESULTS = Path(__file__).resolve().parent / "results"


def _sighting(n: int) -> Sighting:
    return Sighting("dock-door-1", f"3074257BF7194E4000{n % 4096:06X}", 1, -55.0, time.time())


def _one_by_one(path: Path, synchronous: str, count: int) -> float:
    journal = Journal(path, synchronous=synchronous)
    start = time.perf_counter()
    for n in range(count):
        journal.record(_sighting(n))
    elapsed = time.perf_counter() - start
    journal.close()
    return elapsed


def _batched(path: Path, count: int, batch: int = 50) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("pragma synchronous=full")
    start = time.perf_counter()
    for first in range(0, count, batch):
        db.execute("begin immediate")
        db.executemany(
            "insert into sightings (reader, epc, antenna, rssi_dbm, at, id_kind)"
            " values (?, ?, ?, ?, ?, ?)",
            [
                (s.reader, s.epc, s.antenna, s.rssi_dbm, s.at, s.id_kind)
                for s in map(_sighting, range(first, min(first + batch, count)))
            ],
        )
        db.execute("commit")
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sightings", type=int, default=5000)
    args = parser.parse_args()
    count = args.sightings
    results: dict[str, dict[str, float]] = {}
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=RESULTS) as tmp:
        for name, run in (
            ("per_sighting_full_fsync", lambda p: _one_by_one(p, "full", count)),
            ("per_sighting_normal_wal_write", lambda p: _one_by_one(p, "normal", count)),
            ("batch_50_full_fsync", lambda p: _batched(p, count)),
        ):
            path = Path(tmp) / f"{name}.sqlite3"
            Spool(path).close()  # creates the schema, WAL mode
            elapsed = run(path)
            results[name] = {
                "sightings_per_s": round(count / elapsed),
                "us_per_sighting": round(elapsed / count * 1e6, 1),
            }
            print(f"{name:32s} {results[name]}")
    (RESULTS / "journal.json").write_text(json.dumps({"sightings": count, **results}, indent=2))


if __name__ == "__main__":
    main()
