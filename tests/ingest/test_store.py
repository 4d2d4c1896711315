"""The ingest storage layer against the stack's real PostgreSQL.

Everything runs in a schema of its own (``test_<random>``, migrated via ``search_path`` and
dropped at the end), under device and batch ids unique to each run, so the suite can run again
and again against the same database without touching the real tables.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from ingest.schema import (
    MIGRATIONS_DIR,
    Migration,
    MigrationError,
    ensure_partitions,
    load_migrations,
    migrate,
    partition_name,
)
from ingest.store import (
    BatchConflictError,
    BatchStateError,
    ChainGap,
    QuarantineRow,
    ReadingKey,
    ReadingStore,
    StoreError,
    UnknownBatchError,
    VerifiedRow,
    _Device,
)
from tests.support.db import Connect, connector, drop_schema, new_schema
from tests.support.pki import T0, TestPKI
from tracehub import db
from tracehub.config import Settings
from tracehub.envelope import sign_reading
from tracehub.reading import GENESIS_PREV, Reading
from tracehub.verify import InMemoryDirectory, TrustStore, verify_envelope

pytestmark = pytest.mark.integration

CERT = hashlib.sha256(b"test certificate").hexdigest()
# Device timestamps of the bulk tests; other tests use other months, so partitions differ.
JUNE = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def connect(stack: Settings) -> Iterator[Connect]:
    """Connections into a freshly migrated schema of this test session."""
    schema = new_schema(stack.postgres_dsn)
    try:
        factory = connector(stack.postgres_dsn, schema)
        with factory() as conn:
            assert migrate(conn) == [m.version for m in load_migrations()]
        yield factory
    finally:
        drop_schema(stack.postgres_dsn, schema)


@pytest.fixture()
def store(connect: Connect) -> Iterator[ReadingStore]:
    with ReadingStore(connect) as s:
        yield s


def device_id() -> str:
    return f"t-{secrets.token_hex(6)}"


def chain(
    device: str, n: int, *, t0: datetime = JUNE, size: int = 600, first: int = 1
) -> list[VerifiedRow]:
    """Readings first..first+n-1 of a device, correctly linked, with ~``size``-byte envelopes."""
    rows, prev = [], GENESIS_PREV
    now = datetime.now(UTC)
    for seq in range(first, first + n):
        envelope = (f"{device}.{seq}.".encode() + secrets.token_urlsafe(size).encode())[:size]
        digest = hashlib.sha256(envelope).hexdigest()
        rows.append(
            VerifiedRow(
                device_id=device,
                seq=seq,
                ts=t0 + timedelta(seconds=seq),
                kind="environment",
                data={"temperature_c": 4.25, "humidity_pct": 61.5, "sensor": f"s{seq % 7}"},
                loc="4006381333931",
                prev_hash=prev,
                reading_hash=digest,
                envelope=envelope,
                certificate_sha256=CERT,
                received_at=now,
            )
        )
        prev = digest
    return rows


def forged(row: VerifiedRow) -> VerifiedRow:
    """Another envelope for the same (device, seq): what a replay with altered bytes looks like."""
    envelope = row.envelope[:-8] + secrets.token_hex(4).encode()
    return replace(row, envelope=envelope, reading_hash=hashlib.sha256(envelope).hexdigest())


def count(connect: Connect, query: str, *params: object) -> int:
    with connect() as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])


# ---------------------------------------------------------------------- migrations


def test_migrations_are_idempotent_and_safe_to_run_concurrently(stack: Settings) -> None:
    schema = new_schema(stack.postgres_dsn)
    try:
        factory = connector(stack.postgres_dsn, schema)
        results: list[list[str]] = []
        failures: list[BaseException] = []
        barrier = threading.Barrier(2)

        def run() -> None:
            try:
                with factory() as conn:
                    barrier.wait()
                    results.append(migrate(conn))
            except BaseException as exc:  # reported below
                failures.append(exc)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not failures
        everything = [m.version for m in load_migrations()]
        assert sorted(results) == [[], everything]
        with factory() as conn:
            assert migrate(conn) == []
            versions = conn.execute(
                "SELECT version FROM schema_migrations ORDER BY version"
            ).fetchall()
            assert [v for (v,) in versions] == everything
            tables = {
                name
                for (name,) in conn.execute(
                    "SELECT tablename::text FROM pg_tables WHERE schemaname = %s", (schema,)
                )
            }
            assert {
                "devices",
                "readings",
                "reading_keys",
                "chain_gaps",
                "quarantine",
                "batches",
                "anchor_outbox",
                "schema_migrations",
            } <= tables
            kind = conn.execute(
                "SELECT relkind::text FROM pg_class WHERE oid = 'readings'::regclass"
            )
            row = kind.fetchone()
            assert row is not None
            # This machine has no TimescaleDB: native partitioning with a default partition.
            assert row[0] == ("r" if db.timescaledb_available(conn) else "p")
    finally:
        drop_schema(stack.postgres_dsn, schema)


def test_an_applied_migration_must_not_change(stack: Settings, tmp_path: Path) -> None:
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE t1 (id int);\n")
    schema = new_schema(stack.postgres_dsn)
    try:
        with connector(stack.postgres_dsn, schema)() as conn:
            assert migrate(conn, tmp_path) == ["0001_first"]
            (tmp_path / "0002_second.sql").write_text("CREATE TABLE t2 (id int);\n")
            assert migrate(conn, tmp_path) == ["0002_second"]
            (tmp_path / "0001_first.sql").write_text("CREATE TABLE t1 (id bigint);\n")
            with pytest.raises(MigrationError, match="must never be edited"):
                migrate(conn, tmp_path)
            # A failing migration rolls back entirely and is not recorded.
            (tmp_path / "0001_first.sql").write_text("CREATE TABLE t1 (id int);\n")
            (tmp_path / "0003_bad.sql").write_text("CREATE TABLE t3 (id int);\nSELECT nope;\n")
            with pytest.raises(psycopg.errors.UndefinedColumn):
                migrate(conn, tmp_path)
            assert conn.execute("SELECT to_regclass('t3')").fetchone() == (None,)
            with pytest.raises(MigrationError, match="inside a transaction"):
                migrate(conn, tmp_path)
            conn.rollback()
            assert migrate(conn, tmp_path / "nothing") == []
    finally:
        drop_schema(stack.postgres_dsn, schema)


def test_conditional_sections_follow_the_timescaledb_flag() -> None:
    text = "A\n--#if timescaledb\nT\n--#else\nN\n--#endif\n--#if native\nN2\n--#endif\nB\n"
    migration = Migration("0001_x", text)
    assert migration.sql(timescaledb=True).split() == ["A", "T", "B"]
    assert migration.sql(timescaledb=False).split() == ["A", "N", "N2", "B"]
    for bad in ("--#if timescaledb\nA\n", "--#endif\n", "--#if mysql\n--#endif\n", "--#else\n"):
        with pytest.raises(MigrationError):
            Migration("0001_x", bad).sql(timescaledb=False)
    real = Migration("0001_initial", (MIGRATIONS_DIR / "0001_initial.sql").read_text())
    assert "create_hypertable" in real.sql(timescaledb=True)
    assert "create_hypertable" not in real.sql(timescaledb=False)
    assert "PARTITION BY RANGE (ts)" in real.sql(timescaledb=False)


def test_partitions_are_created_on_demand_and_catch_early_rows(connect: Connect) -> None:
    with connect() as conn:
        around = datetime(2025, 2, 14, 9, 30, tzinfo=UTC)
        created = ensure_partitions(conn, around)
        assert created == ["readings_y2025m01", "readings_y2025m02", "readings_y2025m03"]
        assert ensure_partitions(conn, around) == []

    # A store that creates no partition that far back: its rows land in the default partition.
    dev = device_id()
    rows = chain(dev, 30, t0=datetime(2019, 3, 31, 23, 59, 50, tzinfo=UTC))  # Mar and Apr 2019
    with ReadingStore(connect, partition_months_back=0) as narrow:
        assert len(narrow.store_verified(rows).stored) == 30
    where = (
        "SELECT tableoid::regclass::text, count(*) FROM readings WHERE device_id = %s GROUP BY 1"
    )
    with connect() as conn:
        assert conn.execute(where, (dev,)).fetchall() == [("readings_default", 30)]
        # Attaching April moves April's rows out of the default partition.
        assert ensure_partitions(conn, rows[-1].ts, months_before=0, months_after=0) == [
            partition_name(datetime(2019, 4, 1, tzinfo=UTC))
        ]
        assert sorted(conn.execute(where, (dev,)).fetchall()) == [
            ("readings_default", 9),
            ("readings_y2019m04", 21),
        ]
        # The partition got the parent's indexes (device and ts, batch, unbatched: no key, 0019).
        indexes = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'readings_y2019m04'"
            " AND schemaname = current_schema()"
        ).fetchone()
        assert indexes is not None and indexes[0] == 3

    # A store with the default window makes the partition of each month it writes to.
    dev2 = device_id()
    later = chain(dev2, 3, t0=datetime.now(UTC).replace(microsecond=0) - timedelta(days=40))
    with ReadingStore(connect) as wide:
        assert len(wide.store_verified(later).stored) == 3
        back = wide.reading(dev2, 2)
        assert back is not None and back.key == later[1].key
    with connect() as conn:
        parts = {name for (name, _) in conn.execute(where, (dev2,)).fetchall()}
    assert parts == {partition_name(r.ts) for r in later}


# ---------------------------------------------------------------------- readings


def test_ten_thousand_readings_stored_and_read_back(
    store: ReadingStore, connect: Connect, capsys: pytest.CaptureFixture[str]
) -> None:
    devices = [device_id() for _ in range(10)]
    rows = [r for d in devices for r in chain(d, 1000)]
    store.store_verified(rows[:1])  # the connection and partition exist before timing
    start = time.perf_counter()
    stored = 1
    for i in range(1, len(rows), 1000):
        result = store.store_verified(rows[i : i + 1000])
        assert (result.duplicates, result.conflicts, result.gaps, result.chain_breaks) == (
            0,
            [],
            [],
            [],
        )
        stored += len(result.stored)
    elapsed = time.perf_counter() - start
    with capsys.disabled():
        print(
            f"\n[store_verified] {len(rows) - 1} rows of {len(rows[0].envelope)}-byte envelopes"
            f" in batches of 1000: {(len(rows) - 1) / elapsed:,.0f} rows/s"
        )
    assert stored == 10_000
    query = "SELECT count(*) FROM readings WHERE device_id = ANY(%s)"
    assert count(connect, query, devices) == 10_000
    for row in (rows[0], rows[4321], rows[-1]):
        back = store.reading(row.device_id, row.seq)
        assert back is not None
        assert back.envelope == row.envelope
        assert back.key == row.key
        assert (back.ts, back.kind, back.data, back.loc) == (row.ts, row.kind, row.data, row.loc)
        assert (back.prev_hash, back.certificate_sha256) == (row.prev_hash, CERT)
        assert (back.batch_id, back.batch_index) == (None, None)
    for d in devices:
        state = store.device(d)
        assert state is not None
        assert (state.last_seq, state.last_hash) == (
            1000,
            rows[devices.index(d) * 1000 + 999].reading_hash,
        )
    assert store.reading(devices[0], 1001) is None


def test_duplicates_are_counted_and_not_stored_twice(store: ReadingStore, connect: Connect) -> None:
    dev = device_id()
    rows = chain(dev, 50)
    first = store.store_verified(rows[:30])
    assert first.stored == [r.key for r in rows[:30]]
    again = store.store_verified(rows[20:50] + rows[40:45])  # 10 stored, 5 repeated in the batch
    assert again.stored == [r.key for r in rows[30:50]]
    assert again.duplicates == 15
    assert again.conflicts == []
    assert store.store_verified(rows).duplicates == 50
    assert count(connect, "SELECT count(*) FROM readings WHERE device_id = %s", dev) == 50
    assert count(connect, "SELECT count(*) FROM reading_keys WHERE device_id = %s", dev) == 50


def test_a_key_the_insert_returns_twice_stores_nothing(
    store: ReadingStore, connect: Connect
) -> None:
    """readings has no primary key of its own (migration 0019): if a caller bug ever put one key
    into the statement twice, the store refuses the group rather than store the reading twice."""
    dev = device_id()
    row = chain(dev, 1)[0]
    devices = {dev: _Device(row.received_at, row.received_at, row)}
    store._prepare_partitions([row.ts])
    with pytest.raises(StoreError, match="stored a reading key twice"):
        store._transaction(lambda conn: store._store(conn, {(dev, 1): [row]}, [row, row], devices))
    assert count(connect, "SELECT count(*) FROM readings WHERE device_id = %s", dev) == 0
    assert count(connect, "SELECT count(*) FROM reading_keys WHERE device_id = %s", dev) == 0
    store.store_verified([row])  # the same reading, passed once, is stored
    assert count(connect, "SELECT count(*) FROM readings WHERE device_id = %s", dev) == 1


def test_a_different_hash_for_a_stored_key_is_a_conflict(store: ReadingStore) -> None:
    dev = device_id()
    rows = chain(dev, 5)
    store.store_verified(rows)
    fake = forged(rows[2])
    result = store.store_verified([fake, rows[3]])
    assert result.stored == []
    assert result.duplicates == 1
    assert [(c.row, c.stored_hash) for c in result.conflicts] == [(fake, rows[2].reading_hash)]
    back = store.reading(dev, 3)
    assert back is not None and back.envelope == rows[2].envelope

    # Within one batch the first one wins; a row whose stored twin comes later is a duplicate.
    dev2 = device_id()
    rows2 = chain(dev2, 2)
    twin = forged(rows2[1])
    result = store.store_verified([rows2[0], twin, rows2[1]])
    assert result.stored == [rows2[0].key, twin.key]
    assert [(c.row, c.stored_hash) for c in result.conflicts] == [(rows2[1], twin.reading_hash)]
    result = store.store_verified([rows2[1], twin])
    assert (result.duplicates, [c.row for c in result.conflicts]) == (1, [rows2[1]])

    # A hash that is not its envelope's (a caller bug; here one stored under another key) is
    # refused when the row is built: the key table keeps no unique index on hashes (decision 0039).
    with pytest.raises(ValueError, match="not the SHA-256 of the envelope"):
        replace(chain(device_id(), 1)[0], reading_hash=rows[0].reading_hash)


def test_gaps_and_chain_breaks_are_recorded_not_fatal(store: ReadingStore) -> None:
    dev = device_id()
    rows = chain(dev, 10)
    assert store.store_verified(rows[:3]).gaps == []
    result = store.store_verified(rows[5:7])  # 6, 7: readings 4 and 5 are missing
    assert result.gaps == [ChainGap(dev, "gap", 3, 6)]
    assert len(result.stored) == 2
    bad8 = replace(rows[7], prev_hash="f" * 64)  # its prev is not reading 7's hash
    result = store.store_verified([bad8, rows[9]])  # and 9 never comes
    assert result.chain_breaks == [
        ChainGap(dev, "break", 7, 8, expected_prev=rows[6].reading_hash, actual_prev="f" * 64)
    ]
    assert result.gaps == [ChainGap(dev, "gap", 8, 10)]
    assert len(result.stored) == 2
    # 4 and 5 arrive late and link correctly on both sides: nothing new to record.
    late = store.store_verified([rows[4], rows[3]])
    assert (late.gaps, late.chain_breaks, len(late.stored)) == ([], [], 2)
    state = store.device(dev)
    assert state is not None and (state.last_seq, state.last_hash) == (10, rows[9].reading_hash)
    assert store.chain_gaps(dev) == [
        ChainGap(dev, "gap", 3, 6),
        ChainGap(dev, "break", 7, 8, rows[6].reading_hash, "f" * 64),
        ChainGap(dev, "gap", 8, 10),
    ]

    # A late arrival that links to neither neighbour breaks the chain on both sides.
    dev2 = device_id()
    rows2 = chain(dev2, 4)
    store.store_verified([rows2[0], rows2[1], rows2[3]])
    odd = chain(dev2, 3)[2]  # a reading 3 from another history
    result = store.store_verified([odd])
    assert result.chain_breaks == [
        ChainGap(dev2, "break", 2, 3, rows2[1].reading_hash, odd.prev_hash),
        ChainGap(dev2, "break", 3, 4, odd.reading_hash, rows2[3].prev_hash),
    ]
    assert result.gaps == []
    # A device first seen mid-chain: a gap from 0.
    dev3 = device_id()
    assert store.store_verified(chain(dev3, 9)[4:]).gaps == [ChainGap(dev3, "gap", 0, 5)]


def test_device_state_only_moves_forward(store: ReadingStore, connect: Connect) -> None:
    dev = device_id()
    rows = chain(dev, 10)
    assert store.store_verified(rows[5:]).gaps == [ChainGap(dev, "gap", 0, 6)]
    late = store.store_verified(rows[:5])
    assert (late.gaps, late.chain_breaks) == ([], [])  # 5 links to the stored 6
    state = store.device(dev)
    assert state is not None and (state.last_seq, state.last_hash) == (10, rows[9].reading_hash)

    # Two gateways storing interleaved batches of the same devices at once.
    devices = [device_id() for _ in range(4)]
    chains = {d: chain(d, 400) for d in devices}
    halves = [[r for d in devices for r in chains[d] if (r.seq - 1) // 50 % 2 == k] for k in (0, 1)]
    failures: list[BaseException] = []

    def run(rows: list[VerifiedRow]) -> None:
        try:
            with ReadingStore(connect) as own:
                for i in range(0, len(rows), 100):
                    own.store_verified(rows[i : i + 100])
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(half,)) for half in halves]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures
    for d in devices:
        state = store.device(d)
        assert state is not None
        assert (state.last_seq, state.last_hash) == (400, chains[d][-1].reading_hash)
        assert [g for g in store.chain_gaps(d) if g.kind == "break"] == []
    assert (
        count(connect, "SELECT count(*) FROM readings WHERE device_id = ANY(%s)", devices) == 1600
    )


def test_real_envelopes_round_trip_through_the_store(store: ReadingStore) -> None:
    pki = TestPKI("Store")
    dev = device_id()
    device = pki.device(dev)
    trust = TrustStore(pki.roots, pki.intermediates, [pki.crl()], allow_stale_crls=True)
    directory = InMemoryDirectory([device.cert])
    rows, prev = [], GENESIS_PREV
    for seq in range(1, 4):
        data = {"temperature_c": 3.5 + seq, "humidity_pct": 60, "sensor": "Kühlraum-3"}
        reading = Reading(dev, seq, T0 + timedelta(minutes=seq), "environment", data, prev)
        envelope = sign_reading(reading, device.key, device.cert)
        verified = verify_envelope(envelope, trust, directory)
        rows.append(VerifiedRow.from_verified(verified, envelope, datetime.now(UTC)))
        prev = verified.hash
    result = store.store_verified(rows)
    assert (len(result.stored), result.gaps, result.chain_breaks) == (3, [], [])
    back = store.reading(dev, 2)
    assert back is not None
    assert verify_envelope(back.envelope, trust, directory).hash == rows[1].reading_hash
    assert back.data["sensor"] == "Kühlraum-3"


def test_rows_are_checked_on_construction() -> None:
    good = chain("dev-x", 1)[0]
    with pytest.raises(ValueError, match="reading_hash"):
        replace(good, reading_hash="A" * 64)
    with pytest.raises(ValueError, match="not the SHA-256 of the envelope"):
        replace(good, reading_hash="a" * 64)
    with pytest.raises(ValueError, match="not the SHA-256 of the envelope"):
        replace(good, envelope=good.envelope + b"x")
    with pytest.raises(ValueError, match="timezone"):
        replace(good, ts=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="device id"):
        replace(good, device_id="bad/id")
    with pytest.raises(ValueError, match="kind"):
        replace(good, kind="weather")


def test_nul_in_data_does_not_fail_the_batch(store: ReadingStore) -> None:
    row = replace(chain(device_id(), 1)[0], kind="event", data={"note": "a\x00b", "k\x00": [1]})
    assert len(store.store_verified([row]).stored) == 1
    back = store.reading(row.device_id, 1)
    assert back is not None
    assert back.data == {"note": "a\ufffdb", "k\ufffd": [1]}
    assert back.envelope == row.envelope  # the exact bytes are what counts


# ---------------------------------------------------------------------- quarantine


def test_quarantine_bulk_insert(store: ReadingStore, connect: Connect) -> None:
    dev = device_id()
    now = datetime.now(UTC).replace(microsecond=0)
    rows = [
        QuarantineRow(
            f"tracehub/v1/devices/{dev}/readings",
            "bad_signature",
            b"\x00\xffraw",
            detail="the ES256 signature does not verify",
            device_id=dev,
            received_at=now,
        ),
        QuarantineRow("tracehub/v1/devices/?/readings", "malformed", b"", detail="nul \x00 \udcff"),
        QuarantineRow(f"tracehub/v1/devices/{dev}/readings", "conflict", b"x" * 20_000),
    ]
    ids = store.quarantine(rows)
    assert len(ids) == 3 and ids == sorted(ids)
    assert store.quarantine([]) == []
    with connect() as conn:
        stored = conn.execute(
            "SELECT id, received_at, topic, device_id, reason, detail, raw FROM quarantine"
            " WHERE id = ANY(%s) ORDER BY id",
            (ids,),
        ).fetchall()
    assert [r[4] for r in stored] == ["bad_signature", "malformed", "conflict"]
    assert stored[0][1] == now and stored[0][3] == dev and bytes(stored[0][6]) == b"\x00\xffraw"
    assert stored[1][3] is None and stored[1][5] == "nul \ufffd ?"
    assert len(stored[2][6]) == 20_000


# ---------------------------------------------------------------------- batches


def stored_keys(store: ReadingStore, n: int, t0: datetime = JUNE) -> list[ReadingKey]:
    result = store.store_verified(chain(device_id(), n, t0=t0) + chain(device_id(), n, t0=t0))
    return result.stored


def test_batch_and_outbox_transitions_are_idempotent(store: ReadingStore) -> None:
    keys = stored_keys(store, 10)
    batch_id = f"b-{secrets.token_hex(8)}"
    root = secrets.token_hex(32)
    sealed_at = datetime.now(UTC).replace(microsecond=0)
    assert all(k in store.unbatched(100_000) for k in keys)

    batch = store.seal_batch(batch_id, keys, root, sealed_at=sealed_at)
    assert (batch.state, batch.count, batch.devices, batch.root) == ("sealed", 20, 2, root)
    assert (batch.first_ts, batch.last_ts) == (
        JUNE + timedelta(seconds=1),
        JUNE + timedelta(seconds=10),
    )
    assert (batch.sealed_at, batch.ipfs_cid, batch.tx_id) == (sealed_at, None, None)
    assert store.seal_batch(batch_id, keys, root) == batch
    assert store.assign_batch(batch_id, keys, root) == batch
    members = store.readings_in_batch(batch_id)
    assert [m.key for m in members] == keys
    assert [m.batch_index for m in members] == list(range(20))
    assert {m.batch_id for m in members} == {batch_id}
    assert not any(k in store.unbatched(100_000) for k in keys)

    with pytest.raises(BatchConflictError, match="sealed with root"):
        store.seal_batch(batch_id, keys, secrets.token_hex(32))
    others = stored_keys(store, 2)
    other_id = f"b-{secrets.token_hex(8)}"
    with pytest.raises(BatchConflictError, match="another batch") as exc:
        store.seal_batch(other_id, [*others, *keys[:3]], root)
    assert exc.value.keys == keys[:3]
    assert store.batch(other_id) is None  # nothing of it was kept
    wrong = ReadingKey(others[0].device_id, others[0].seq, "0" * 64)
    with pytest.raises(BatchConflictError, match="not stored with that hash") as exc:
        store.seal_batch(other_id, [wrong, ReadingKey("t-nobody", 1, "1" * 64)], root)
    assert len(exc.value.keys) == 2

    # The outbox: claimed once per lease, oldest first.
    far = datetime.now(UTC) + timedelta(days=3650)
    due = {i.batch.batch_id: i for i in store.outbox_due(far, 1000)}
    assert due[batch_id].attempts == 1 and due[batch_id].batch == batch
    assert batch_id not in {i.batch.batch_id for i in store.outbox_due(far, 1000)}
    later = far + timedelta(minutes=6)
    assert store.outbox_failed(batch_id, "kubo: connection refused", later)
    assert store.outbox_failed(batch_id, "kubo: connection refused", later)
    assert batch_id not in {i.batch.batch_id for i in store.outbox_due(later - timedelta(1), 1000)}
    again = {i.batch.batch_id: i for i in store.outbox_due(later, 1000)}[batch_id]
    assert (again.attempts, again.last_error) == (2, "kubo: connection refused")

    with pytest.raises(BatchStateError, match="not on IPFS"):
        store.mark_anchored(batch_id, "tx-1", 7)
    cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    stored = store.mark_stored(batch_id, cid)
    assert (stored.state, stored.ipfs_cid) == ("stored", cid)
    assert store.mark_stored(batch_id, cid) == stored
    with pytest.raises(BatchStateError, match="CID"):
        store.mark_stored(batch_id, "bafyother")
    anchored = store.mark_anchored(batch_id, "tx-1", 7)
    assert (anchored.state, anchored.tx_id, anchored.block_number) == ("anchored", "tx-1", 7)
    assert anchored.anchored_at is not None
    assert store.mark_anchored(batch_id, "tx-1", 7) == anchored
    assert store.mark_stored(batch_id, cid) == anchored
    with pytest.raises(BatchStateError, match="anchored by"):
        store.mark_anchored(batch_id, "tx-2", 8)
    assert not store.outbox_failed(batch_id, "late failure", later)
    assert batch_id not in {i.batch.batch_id for i in store.outbox_due(later + timedelta(1), 1000)}
    assert store.batch(batch_id) == anchored

    for call in (
        lambda: store.mark_stored("b-nope", cid),
        lambda: store.mark_anchored("b-nope", "tx", 1),
        lambda: store.readings_in_batch("b-nope"),
        lambda: store.batch_envelopes("b-nope"),
    ):
        with pytest.raises(UnknownBatchError):
            call()


def test_concurrent_workers_never_claim_the_same_batch(
    store: ReadingStore, connect: Connect
) -> None:
    ids = []
    for _ in range(6):
        batch_id = f"b-{secrets.token_hex(8)}"
        store.seal_batch(batch_id, stored_keys(store, 2), secrets.token_hex(32))
        ids.append(batch_id)
    far = datetime.now(UTC) + timedelta(days=7300)
    claims: list[list[str]] = []

    def work() -> None:
        with ReadingStore(connect) as own:
            claims.append([i.batch.batch_id for i in own.outbox_due(far, 1000)])

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    mine = [b for claim in claims for b in claim if b in ids]
    assert sorted(mine) == sorted(ids)  # each batch claimed exactly once


def test_recent_certificates_name_the_devices_seen_lately(store: ReadingStore) -> None:
    """What a gateway's registry cache loads at start: one fingerprint per recently seen device."""
    dev, certificate = device_id(), secrets.token_hex(32)
    store.store_verified([replace(r, certificate_sha256=certificate) for r in chain(dev, 3)])
    now = datetime.now(UTC)
    recent = store.recent_certificates(now - timedelta(minutes=5))
    assert recent.count(certificate) == 1
    assert certificate not in store.recent_certificates(now + timedelta(minutes=5))
