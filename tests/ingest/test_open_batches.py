"""Readings that join an open batch as they are stored, and the seal that closes it.

Against the stack's PostgreSQL, in a migrated schema of this module's own. The gateway appends
what it stores to an open batch (``store_verified(..., batch_into=...)``) and seals it later
(``seal_open_batch``): the reading rows are written once, never updated by the seal.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from ingest.schema import migrate
from ingest.store import ReadingStore
from tests.ingest.test_store import chain, device_id
from tests.support.db import Connect, connector, drop_schema, new_schema
from tracehub.config import Settings
from tracehub.merkle import MerkleTree

pytestmark = pytest.mark.integration

# A month no other test module of this schema writes, so partitions stay apart.
AUGUST = datetime(2026, 8, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def connect(stack: Settings) -> Iterator[Connect]:
    schema = new_schema(stack.postgres_dsn)
    try:
        factory = connector(stack.postgres_dsn, schema)
        with factory() as conn:
            migrate(conn)
        yield factory
    finally:
        drop_schema(stack.postgres_dsn, schema)


@pytest.fixture()
def store(connect: Connect) -> Iterator[ReadingStore]:
    with ReadingStore(connect) as s:
        yield s


def tuples_updated(connect: Connect) -> int:
    """Row versions written by UPDATEs of readings in this schema (statistics are per table)."""
    with connect() as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT coalesce(sum(n_tup_upd), 0) FROM pg_stat_user_tables"
            " WHERE schemaname = current_schema() AND relname LIKE 'readings%'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_appended_readings_are_sealed_without_rewriting_them(
    store: ReadingStore, connect: Connect
) -> None:
    a, b = device_id(), device_id()
    batch_id = f"o-{secrets.token_hex(8)}"
    first = store.store_verified(chain(a, 5, t0=AUGUST), batch_into=batch_id)
    second = store.store_verified(chain(b, 3, t0=AUGUST), batch_into=batch_id)
    assert (first.batch_id, first.batch_size) == (batch_id, 5)
    assert (second.batch_id, second.batch_size) == (batch_id, 8)
    assert not any(k in store.unbatched(100_000) for k in first.stored + second.stored)
    assert batch_id in store.open_batches_due(timedelta(0))
    before = tuples_updated(connect)

    record = store.seal_open_batch(batch_id)
    assert record is not None
    keys = first.stored + second.stored
    assert (record.state, record.count, record.devices) == ("sealed", 8, 2)
    assert record.root == MerkleTree([bytes.fromhex(k.reading_hash) for k in keys]).root.hex()
    assert (record.first_ts, record.last_ts) == (
        AUGUST + timedelta(seconds=1),
        AUGUST + timedelta(seconds=5),
    )
    members = store.readings_in_batch(batch_id)
    assert [m.key for m in members] == keys
    # What the gateway puts on IPFS: the same envelopes, in the same leaf order.
    assert store.batch_envelopes(batch_id) == [m.envelope for m in members]
    assert [m.batch_index for m in members] == list(range(8))
    # Queued for anchoring, closed to appends, and no reading row was rewritten.
    assert batch_id in [i.batch.batch_id for i in store.outbox_due(limit=1000)]
    assert batch_id not in store.open_batches_due(timedelta(0))
    assert tuples_updated(connect) == before
    # Idempotent.
    assert store.seal_open_batch(batch_id) == store.batch(batch_id)


def test_readings_offered_to_a_sealed_batch_are_stored_unbatched(store: ReadingStore) -> None:
    device = device_id()
    rows = chain(device, 6, t0=AUGUST)
    batch_id = f"o-{secrets.token_hex(8)}"
    store.store_verified(rows[:3], batch_into=batch_id)
    assert store.seal_open_batch(batch_id) is not None
    late = store.store_verified(rows[3:], batch_into=batch_id)
    assert (late.batch_id, len(late.stored)) == (None, 3)
    assert all(k in store.unbatched(100_000) for k in late.stored)
    sealed = store.batch(batch_id)
    assert sealed is not None and sealed.count == 3
    # Duplicates offered to an open batch do not grow it.
    again = store.store_verified(rows[:3], batch_into=f"o-{secrets.token_hex(8)}")
    assert (again.duplicates, again.stored, again.batch_size) == (3, [], 0)


def test_an_empty_open_batch_seals_to_nothing(store: ReadingStore) -> None:
    assert store.seal_open_batch(f"o-{secrets.token_hex(8)}") is None


def test_concurrent_appends_and_seals_lose_and_repeat_nothing(connect: Connect) -> None:
    """Two writers append to one open batch while a third seals it (and then whatever opens
    after it): every reading ends up in exactly one batch, at distinct leaf positions, and each
    sealed root is that of its readings in leaf order."""
    devices = [device_id() for _ in range(2)]
    rows = {d: chain(d, 200, t0=AUGUST) for d in devices}
    ids = [f"o-{secrets.token_hex(8)}" for _ in range(3)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(device: str) -> None:
        try:
            with ReadingStore(connect) as s:
                current = 0
                for i in range(0, 200, 10):
                    result = s.store_verified(rows[device][i : i + 10], batch_into=ids[current])
                    if result.batch_id is None and current < len(ids) - 1:
                        current += 1  # sealed under us: the next id
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def sealer() -> None:
        try:
            with ReadingStore(connect) as s:
                while not stop.is_set():
                    s.seal_open_batch(ids[0])
                    stop.wait(0.01)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(d,)) for d in devices]
    seal = threading.Thread(target=sealer)
    seal.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stop.set()
    seal.join(60)
    assert not errors
    with ReadingStore(connect) as s:
        for batch_id in ids:
            s.seal_open_batch(batch_id)
        left = [k for k in s.unbatched(100_000) if k.device_id in devices]
        if left:  # offered to a batch already sealed: stored unbatched, sealed the old way
            root = MerkleTree([bytes.fromhex(k.reading_hash) for k in left]).root.hex()
            s.seal_batch(f"b-{secrets.token_hex(8)}", left, root)
        with connect() as conn:
            batch_ids = [
                row[0]
                for row in conn.execute(
                    "SELECT DISTINCT batch_id FROM readings WHERE device_id = ANY(%s)", (devices,)
                )
            ]
        seen: list[tuple[str, int]] = []
        for batch_id in batch_ids:
            record = s.batch(batch_id)
            assert record is not None, batch_id
            members = s.readings_in_batch(batch_id)
            assert [m.batch_index for m in members] == list(range(record.count))
            leaves = [bytes.fromhex(m.reading_hash) for m in members]
            assert record.root == MerkleTree(leaves).root.hex()
            seen.extend((m.device_id, m.seq) for m in members if m.device_id in devices)
    assert sorted(seen) == sorted((d, seq) for d in devices for seq in range(1, 201))
    assert ids[0] in batch_ids  # the sealer did close a batch under the writers
