"""ReadingStore.backlog: what the gateways' metrics report from the shared store (the anchor
outbox, the oldest unanchored batch, silent devices), in a schema of its own."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from ingest.schema import migrate
from ingest.store import Backlog, ReadingStore
from tests.ingest.test_store import chain, device_id
from tests.support.db import connector, drop_schema, new_schema
from tracehub.config import Settings

pytestmark = pytest.mark.integration

HOUR = timedelta(hours=1)


@pytest.fixture()
def store(stack: Settings) -> Iterator[ReadingStore]:
    schema = new_schema(stack.postgres_dsn)
    try:
        connect = connector(stack.postgres_dsn, schema)
        with connect() as conn:
            migrate(conn)
        with ReadingStore(connect) as s:
            yield s
    finally:
        drop_schema(stack.postgres_dsn, schema)


def test_backlog_follows_batches_and_devices(store: ReadingStore) -> None:
    assert store.backlog(HOUR) == Backlog(0, 0.0, 0)
    now = datetime.now(UTC)
    quiet = [replace(r, received_at=now - 2 * HOUR) for r in chain(device_id(), 3)]
    long_gone = [replace(r, received_at=now - 3 * 24 * HOUR) for r in chain(device_id(), 3)]
    recent = chain(device_id(), 4)
    stored = store.store_verified(quiet + long_gone + recent).stored
    # Seen today but not for an hour: one; the one gone for days is not counted any more.
    assert store.backlog(HOUR).silent_devices == 1
    # With no grace every device seen today is silent, still not the one gone for days.
    assert store.backlog(timedelta(0)).silent_devices == 2

    batch_id = f"b-{secrets.token_hex(8)}"
    store.seal_batch(batch_id, stored, secrets.token_hex(32), sealed_at=now - timedelta(seconds=90))
    backlog = store.backlog(HOUR)
    assert backlog.outbox_depth == 1
    assert 90 <= backlog.oldest_unanchored_s < 90 + 60
    store.mark_stored(batch_id, "bafy" + secrets.token_hex(8))
    store.mark_anchored(batch_id, secrets.token_hex(32), 7)
    backlog = store.backlog(HOUR)
    assert (backlog.outbox_depth, backlog.oldest_unanchored_s) == (0, 0.0)
