"""Throughput of the ingest store (ingest/store.py) against the stack's PostgreSQL.

    .venv/bin/python -m bench.store_bench [--rows 50000] [--batch 1000] [--devices 100]
                                          [--envelope-bytes 600] [--compare] [--keep]
                                          [--keys N [--key-rounds 30]]
                                          [--by-statement [--gateways N]]

Stores ``--rows`` verified readings (synthetic ~600-byte envelopes, correctly chained, from
``--devices`` devices interleaved as a gateway sees them) with ``ReadingStore.store_verified`` in
batches of ``--batch``, one transaction each, and prints rows/s; then seals them into Merkle
batches of the same size (``seal_batch``) and prints that rate too. ``--compare`` also times the
bare write path (keys and readings only) three ways -- one binary COPY into a temp table, then
INSERT ... SELECT ... ON CONFLICT (what the store does); the keys as unnest() arrays, then a
binary COPY of the new rows straight into readings; pipelined executemany -- each into a fresh
schema. ``--keys N`` times inserts of new keys (rounds of twice ``--batch``) into two key
tables that already hold N keys, one as ``reading_keys`` is, one with the unique index on
``reading_hash`` that decision 0039 dropped: µs and WAL bytes a row each. ``--by-statement``
stores the rows again, appended to open batches of 4,000 as a gateway appends, and charges the
server process's own CPU (``/proc/<pid>/schedstat``: the stack's PostgreSQL runs on this
machine) to each statement of the store's transaction: µs a reading by statement, the commit
and the rest of the transaction under "commit and the rest" (decision 0042); with ``--gateways
N`` the readings are dealt at random to N stores taking turns, so a device's chain links cross
between them as when a shared subscription deals a backlog to N gateways. Everything runs in
schemas named ``bench_<random>``, dropped at the end unless ``--keep``. Writes
``bench/results/store.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import secrets
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from ingest.schema import ensure_partitions, migrate
from ingest.store import _COPY_TYPES, _READING_COLUMNS, ReadingStore, VerifiedRow
from tracehub import db
from tracehub.config import Settings
from tracehub.reading import GENESIS_PREV

RESULTS = Path(__file__).resolve().parent / "results" / "store.json"
CERT = hashlib.sha256(b"bench certificate").hexdigest()


def make_rows(n: int, devices: int, size: int) -> list[VerifiedRow]:
    """``n`` readings from ``devices`` devices, one reading per device per second, in arrival
    order (so each batch holds many devices), each device's chain correctly linked."""
    run = secrets.token_hex(4)
    names = [f"bench-{run}-{d:04d}" for d in range(devices)]
    prev = dict.fromkeys(names, GENESIS_PREV)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    rows = []
    for i in range(n):
        device, seq = names[i % devices], i // devices + 1
        envelope = (f"{device}.{seq}.".encode() + os.urandom(size).hex().encode())[:size]
        digest = hashlib.sha256(envelope).hexdigest()
        ts = t0 + timedelta(seconds=seq, milliseconds=i % devices)
        rows.append(
            VerifiedRow(
                device_id=device,
                seq=seq,
                ts=ts,
                kind="environment",
                data={"temperature_c": 4 + i % 40 / 10, "humidity_pct": 50 + i % 30},
                loc="4006381333931",
                prev_hash=prev[device],
                reading_hash=digest,
                envelope=envelope,
                certificate_sha256=CERT,
                received_at=ts + timedelta(milliseconds=150),
            )
        )
        prev[device] = digest
    return rows


@contextmanager
def bench_schema(dsn: str, keep: bool) -> Iterator[Callable[[], db.Connection]]:
    name = f"bench_{secrets.token_hex(5)}"
    with db.connect(dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:

        def factory() -> db.Connection:
            return db.connect(dsn, options=f"-c search_path={name}")

        with factory() as conn:
            migrate(conn)
            ensure_partitions(conn, datetime.now(UTC))
        yield factory
    finally:
        if keep:
            print(f"kept schema {name}")
        else:
            with db.connect(dsn, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def rate(n: int, seconds: float, per_batch: list[float]) -> dict[str, float]:
    return {
        "rows": n,
        "seconds": round(seconds, 3),
        "rows_per_second": round(n / seconds, 1),
        "batch_ms_median": round(statistics.median(per_batch) * 1000, 2),
        "batch_ms_max": round(max(per_batch) * 1000, 2),
    }


def bench_store(
    factory: Callable[[], db.Connection], rows: list[VerifiedRow], batch: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with ReadingStore(factory) as store:
        times, stored = [], []
        start = time.perf_counter()
        for i in range(0, len(rows), batch):
            t = time.perf_counter()
            result = store.store_verified(rows[i : i + batch])
            times.append(time.perf_counter() - t)
            stored.extend(result.stored)
            assert not result.conflicts and not result.chain_breaks and not result.duplicates
        out["store_verified"] = rate(len(stored), time.perf_counter() - start, times)
        assert len(stored) == len(rows)

        times = []
        start = time.perf_counter()
        for i in range(0, len(stored), batch):
            t = time.perf_counter()
            store.seal_batch(f"bench-{i}", stored[i : i + batch], secrets.token_hex(32))
            times.append(time.perf_counter() - t)
        out["seal_batch"] = rate(len(stored), time.perf_counter() - start, times)

        t = time.perf_counter()
        again = store.store_verified(rows[:batch])
        out["duplicate_batch_ms"] = round((time.perf_counter() - t) * 1000, 2)
        assert again.duplicates == min(batch, len(rows))
    return out


# ---------------------------------------------------------------------- by statement


def _server_cpu_ns(pid: int) -> int:
    """CPU time of server process ``pid`` so far (the first field of its schedstat)."""
    with open(f"/proc/{pid}/schedstat", encoding="ascii") as f:
        return int(f.read().split()[0])


class _TimedCursor(psycopg.Cursor[Any]):
    """Charges the server process's CPU during each execute and COPY to the statement's first
    words, in ``spent`` (ns) and ``calls``."""

    spent: dict[str, int] = {}  # noqa: RUF012 -- one table for the run, shared on purpose
    calls: dict[str, int] = {}  # noqa: RUF012

    def _charge(self, statement: object, started: int) -> None:
        name = " ".join(str(statement).split())[:48]
        spent = _server_cpu_ns(self.connection.info.backend_pid) - started
        self.spent[name] = self.spent.get(name, 0) + spent
        self.calls[name] = self.calls.get(name, 0) + 1

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> _TimedCursor:
        started = _server_cpu_ns(self.connection.info.backend_pid)
        super().execute(query, params, **kwargs)
        self._charge(query, started)
        return self

    @contextmanager
    def copy(self, statement: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        started = _server_cpu_ns(self.connection.info.backend_pid)
        with super().copy(statement, *args, **kwargs) as copy:
            yield copy
        self._charge(statement, started)


def bench_by_statement(
    factory: Callable[[], db.Connection], rows: list[VerifiedRow], batch: int, gateways: int = 1
) -> dict[str, Any]:
    """Server CPU of the store's transaction by statement, in µs a reading. With ``gateways``
    above 1, each reading is dealt at random (seeded) to one of that many stores, as a shared
    subscription deals a backlog, and the stores take turns storing a batch each: a device's
    consecutive readings land in different stores, and its chain links cross between them."""

    pids: list[int] = []

    def timed() -> db.Connection:
        conn = factory()
        conn.cursor_factory = _TimedCursor
        pids.append(conn.info.backend_pid)
        return conn

    per_batch = 4000  # readings per open Merkle batch (a gateway seals at 5,000 or after 2 s)
    dealer = random.Random(7)
    dealt: list[list[VerifiedRow]] = [[] for _ in range(gateways)]
    for row in rows[batch:]:
        dealt[dealer.randrange(gateways)].append(row)
    stores = [ReadingStore(timed) for _ in range(gateways)]
    try:
        stores[0].store_verified(rows[:batch], batch_into="by-statement-warm-up")
        for store in stores[1:]:
            store.device(rows[0].device_id)  # connected before the clock starts
        _TimedCursor.spent.clear()
        _TimedCursor.calls.clear()
        connected = list(pids)
        started = [_server_cpu_ns(pid) for pid in connected]
        for i in range(0, max(map(len, dealt)), batch):
            for number, (store, share) in enumerate(zip(stores, dealt, strict=True)):
                if share[i : i + batch]:
                    store.store_verified(
                        share[i : i + batch], batch_into=f"by-statement-{number}-{i // per_batch}"
                    )
        total = sum(_server_cpu_ns(pid) - t for pid, t in zip(connected, started, strict=True))
        assert pids == connected, "a store reconnected: its figures would mix processes"
    finally:
        for store in stores:
            store.close()
    stored = len(rows) - batch
    statements = dict(_TimedCursor.spent)
    statements["commit and the rest"] = total - sum(statements.values())
    return {
        "rows": stored,
        "batch": batch,
        "gateways": gateways,
        "server_us_per_reading": round(total / stored / 1e3, 2),
        "by_statement_us_per_reading": {
            name: round(ns / stored / 1e3, 2)
            for name, ns in sorted(statements.items(), key=lambda item: -item[1])
        },
        "calls": dict(_TimedCursor.calls),
    }


# ---------------------------------------------------------------------- bare write paths

# The store's own column list and COPY types, so the alternatives write exactly what it writes.
_COLUMNS = _READING_COLUMNS
_TYPES = _COPY_TYPES


def _tuple(r: VerifiedRow, data: Any = None) -> tuple[Any, ...]:
    """A readings row; ``data`` replaces r.data (plain executemany needs a Jsonb wrapper)."""
    return (
        r.device_id,
        r.seq,
        r.ts,
        r.received_at,
        r.kind,
        r.data if data is None else data,
        r.loc,
        r.prev_hash,
        r.reading_hash,
        r.envelope,
        r.certificate_sha256,
    )


def write_unnest_copy(conn: db.Connection, rows: list[VerifiedRow]) -> None:
    """Keys through unnest() arrays, then binary COPY of the new rows straight into readings."""
    new = {
        (d, s)
        for d, s in conn.execute(
            "INSERT INTO reading_keys (device_id, seq, ts, reading_hash)"
            " SELECT * FROM unnest(%s::text[], %s::int8[], %s::timestamptz[], %s::text[])"
            " ON CONFLICT DO NOTHING RETURNING device_id, seq",
            (
                [r.device_id for r in rows],
                [r.seq for r in rows],
                [r.ts for r in rows],
                [r.reading_hash for r in rows],
            ),
        )
    }
    with conn.cursor().copy(f"COPY readings ({_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(_TYPES)
        for r in rows:
            if (r.device_id, r.seq) in new:
                copy.write_row(_tuple(r))


def write_temp_copy(conn: db.Connection, rows: list[VerifiedRow]) -> None:
    """The store's way: one binary COPY into a temp table, then INSERT ... SELECT ... ON CONFLICT
    into reading_keys and readings in one statement."""
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS incoming"
        " (LIKE readings INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    with conn.cursor().copy(f"COPY incoming ({_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(_TYPES)
        for r in rows:
            copy.write_row(_tuple(r))
    conn.execute(
        "WITH new AS (INSERT INTO reading_keys (device_id, seq, ts, reading_hash)"
        " SELECT device_id, seq, ts, reading_hash FROM incoming"
        " ON CONFLICT DO NOTHING RETURNING device_id, seq)"
        f" INSERT INTO readings ({_COLUMNS}) SELECT {_COLUMNS} FROM incoming"
        " JOIN new USING (device_id, seq)"
    )


def write_executemany(conn: db.Connection, rows: list[VerifiedRow]) -> None:
    """Pipelined executemany: one INSERT per key, then one per new reading."""
    cur = conn.cursor()
    cur.executemany(
        "INSERT INTO reading_keys (device_id, seq, ts, reading_hash) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT DO NOTHING RETURNING device_id, seq",
        [(r.device_id, r.seq, r.ts, r.reading_hash) for r in rows],
        returning=True,
    )
    new: set[tuple[str, int]] = set()
    while True:
        new.update((d, s) for d, s in cur.fetchall())
        if not cur.nextset():
            break
    cur.executemany(
        f"INSERT INTO readings ({_COLUMNS}) VALUES ({', '.join(['%s'] * 11)})",
        [_tuple(r, Jsonb(r.data)) for r in rows if (r.device_id, r.seq) in new],
    )


WRITERS: dict[str, Callable[[db.Connection, list[VerifiedRow]], None]] = {
    "temp_table_copy+insert_select": write_temp_copy,
    "unnest_keys+copy_readings": write_unnest_copy,
    "pipelined_executemany": write_executemany,
}


def bench_writer(
    factory: Callable[[], db.Connection],
    write: Callable[[db.Connection, list[VerifiedRow]], None],
    rows: list[VerifiedRow],
    batch: int,
) -> dict[str, float]:
    with factory() as conn:
        conn.autocommit = True
        times = []
        start = time.perf_counter()
        for i in range(0, len(rows), batch):
            t = time.perf_counter()
            with conn.transaction():
                write(conn, rows[i : i + batch])
            times.append(time.perf_counter() - t)
        return rate(len(rows), time.perf_counter() - start, times)


# ---------------------------------------------------------------------- the key table's indexes

_KEY_TABLES = {
    # Today's key table (decision 0039), and the same with migration 0001's unique hash index.
    "primary_key_only": "CREATE TABLE {t} (LIKE reading_keys INCLUDING ALL)",
    "with_unique_hash": "CREATE TABLE {t} (LIKE reading_keys INCLUDING ALL, UNIQUE (reading_hash))",
}
_FILL_KEYS = """
INSERT INTO {t} (device_id, seq, ts, reading_hash)
SELECT 'fill-' || (i %% 1000), i, now(), encode(sha256(int8send(i)), 'hex')
FROM generate_series(1, %s) AS i
"""
_INSERT_KEYS = """
INSERT INTO {t} (device_id, seq, ts, reading_hash)
SELECT * FROM unnest(%s::text[], %s::int8[], %s::timestamptz[], %s::text[])
ON CONFLICT DO NOTHING
"""


def bench_key_index(
    factory: Callable[[], db.Connection], existing: int, rounds: int, batch: int, devices: int
) -> dict[str, Any]:
    """Inserts into two key tables that already hold ``existing`` keys, one with the unique
    index on reading_hash, one without, in alternating rounds of ``batch`` new keys (sequential
    per device, random hashes, as a gateway writes them): µs a row and WAL bytes a row each.

    The rounds start after a checkpoint, so the first write to each index page carries a full
    page image: random keys touch a new page nearly every row until the cycle has touched them
    all, sequential keys a few pages in all.
    """
    with factory() as conn:
        conn.autocommit = True
        for name, create in _KEY_TABLES.items():
            table = sql.Identifier(f"keys_{name}")
            conn.execute(sql.SQL(create).format(t=table))
            print(f"  filling keys_{name} with {existing:,} keys ...", flush=True)
            conn.execute(sql.SQL(_FILL_KEYS).format(t=table), (existing,))
            conn.execute(sql.SQL("VACUUM ANALYZE {t}").format(t=table))
        sizes: dict[str, int] = {}
        for name in _KEY_TABLES:
            size = conn.execute(
                "SELECT pg_indexes_size(%s::regclass)", (f"keys_{name}",)
            ).fetchone()
            sizes[name] = int(size[0]) if size else 0
        try:
            conn.execute("CHECKPOINT")
            checkpoint = True
        except psycopg.errors.InsufficientPrivilege:
            checkpoint = False
        per_row: dict[str, list[float]] = {name: [] for name in _KEY_TABLES}
        wal: dict[str, int] = dict.fromkeys(_KEY_TABLES, 0)
        names = [f"key-{d:04d}" for d in range(devices)]
        for round_ in range(rounds):
            order = list(_KEY_TABLES) if round_ % 2 == 0 else list(reversed(_KEY_TABLES))
            for name in order:
                keys = [
                    (names[i % devices], existing + round_ * batch + i, secrets.token_hex(32))
                    for i in range(batch)
                ]
                stamp = datetime.now(UTC)
                lsn = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
                start = time.perf_counter()
                conn.execute(
                    sql.SQL(_INSERT_KEYS).format(t=sql.Identifier(f"keys_{name}")),
                    (
                        [k[0] for k in keys],
                        [k[1] for k in keys],
                        [stamp] * batch,
                        [k[2] for k in keys],
                    ),
                )
                per_row[name].append((time.perf_counter() - start) / batch * 1e6)
                written = conn.execute(
                    "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", (lsn[0] if lsn else None,)
                ).fetchone()
                wal[name] += int(written[0]) if written else 0
    rows = rounds * batch
    return {
        "existing_keys": existing,
        "rows_per_table": rows,
        "batch": batch,
        "after_checkpoint": checkpoint,
        "tables": {
            name: {
                "us_per_row_median": round(statistics.median(per_row[name]), 1),
                "wal_bytes_per_row": round(wal[name] / rows),
                "index_mb": round(sizes[name] / 2**20),
            }
            for name in _KEY_TABLES
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--envelope-bytes", type=int, default=600)
    parser.add_argument("--compare", action="store_true", help="also time the bare write paths")
    parser.add_argument("--keep", action="store_true", help="keep the bench schemas")
    parser.add_argument(
        "--keys",
        type=int,
        default=0,
        metavar="N",
        help="also time inserts into a key table of N keys with and without a unique hash index",
    )
    parser.add_argument("--key-rounds", type=int, default=30)
    parser.add_argument(
        "--by-statement",
        action="store_true",
        help="also charge the server's CPU to each statement of the store's transaction",
    )
    parser.add_argument(
        "--gateways",
        type=int,
        default=1,
        help="with --by-statement: deal the readings at random to this many stores",
    )
    args = parser.parse_args()
    dsn = Settings.from_env().postgres_dsn

    rows = make_rows(args.rows, args.devices, args.envelope_bytes)
    report: dict[str, Any] = {
        "rows": args.rows,
        "batch": args.batch,
        "devices": args.devices,
        "envelope_bytes": len(rows[0].envelope),
        "python": platform.python_version(),
        "psycopg": version("psycopg"),
        "cpus": os.cpu_count(),
    }
    with bench_schema(dsn, args.keep) as factory:
        with factory() as conn:
            server = conn.execute("SHOW server_version").fetchone()
            commit = conn.execute("SHOW synchronous_commit").fetchone()
        report["postgres"] = server[0] if server else "?"
        report["synchronous_commit"] = commit[0] if commit else "?"
        report |= bench_store(factory, rows, args.batch)
    if args.compare:
        report["write_paths"] = {}
        for name, write in WRITERS.items():
            with bench_schema(dsn, args.keep) as factory:
                report["write_paths"][name] = bench_writer(factory, write, rows, args.batch)

    print(
        f"{args.rows:,} readings ({report['envelope_bytes']}-byte envelopes, {args.devices}"
        f" devices) in batches of {args.batch:,}, one transaction each"
        f" (PostgreSQL {report['postgres']}, synchronous_commit={report['synchronous_commit']},"
        f" {report['cpus']} CPUs):"
    )
    lines = [("store_verified", report["store_verified"]), ("seal_batch", report["seal_batch"])]
    lines += [(f"  write path: {k}", v) for k, v in report.get("write_paths", {}).items()]
    width = max(len(name) for name, _ in lines)
    print(f"{'':<{width}}  {'rows/s':>9}  {'ms/batch (median, max)':>22}")
    for name, r in lines:
        print(
            f"{name:<{width}}  {r['rows_per_second']:>9,.0f}"
            f"  {r['batch_ms_median']:>10.1f}, {r['batch_ms_max']:>9.1f}"
        )
    print(f"a batch of {args.batch:,} duplicates: {report['duplicate_batch_ms']:.1f} ms")
    if args.keys:
        with bench_schema(dsn, args.keep) as factory:
            keys = bench_key_index(
                factory, args.keys, args.key_rounds, 2 * args.batch, args.devices
            )
        report["key_index"] = keys
        print(
            f"key table of {args.keys:,} keys, {keys['rows_per_table']:,} more in rounds of"
            f" {keys['batch']:,}{' after a checkpoint' if keys['after_checkpoint'] else ''}:"
        )
        for name, figures in keys["tables"].items():
            print(
                f"  {name:<17} {figures['us_per_row_median']:>6.1f} µs/row (median)"
                f"  {figures['wal_bytes_per_row']:>6,} B of WAL/row"
                f"  indexes {figures['index_mb']} MB"
            )
    if args.by_statement:
        with bench_schema(dsn, args.keep) as factory:
            timed = bench_by_statement(factory, rows, args.batch, args.gateways)
        report["by_statement"] = timed
        print(
            f"server CPU of the store's transaction, appending to open batches"
            f" ({args.gateways} store(s)):"
            f" {timed['server_us_per_reading']} µs a reading"
        )
        for name, us in timed["by_statement_us_per_reading"].items():
            print(f"  {us:>7.2f} µs  {name}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
