"""`python -m ingest repin` on a schema of the test's own and two Kubo nodes of its own: every
stored or anchored batch's object is copied to the node that lacks it; sealed batches (no CID
yet) are left alone; an unreachable node makes the pass fail."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.repin import recorded_cids
from tests.support.db import connector, migrated_schema
from tests.support.kubo import KuboPair, kubo_pair
from tracehub import db
from tracehub.config import PROJECT_DIR, Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[KuboPair]:
    with kubo_pair(tmp_path / "kubo") as nodes:
        yield nodes


def _insert_batch(conn: db.Connection, table: str, state: str, cid: str | None) -> None:
    prefix = "ev-" if table == "epcis_batches" else "b-"
    times = ("first_time", "last_time") if table == "epcis_batches" else ("first_ts", "last_ts")
    devices = "" if table == "epcis_batches" else ", devices"
    anchored = state == "anchored"
    now = datetime.now(UTC)
    conn.execute(
        f"INSERT INTO {table} (batch_id, sealed_at, count, {times[0]}, {times[1]}{devices},"
        " root, ipfs_cid, state, tx_id, block_number, anchored_at)"
        f" VALUES (%s, %s, 1, %s, %s{', 1' if devices else ''}, %s, %s, %s, %s, %s, %s)",
        (
            prefix + secrets.token_hex(6),
            now,
            now,
            now,
            secrets.token_hex(32),
            cid,
            state,
            "tx" if anchored else None,
            1 if anchored else None,
            now if anchored else None,
        ),
    )


def _repin(settings: Settings, schema: str, pair: KuboPair) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TRACEHUB_POSTGRES_DSN": db.with_search_path(settings.postgres_dsn, schema),
        "TRACEHUB_IPFS_APIS": ",".join(pair.urls),
    }
    return subprocess.run(
        [str(PROJECT_DIR / ".venv/bin/python"), "-m", "ingest", "repin"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_repin_copies_what_the_database_records(stack: Settings, pair: KuboPair) -> None:
    with pair.client(1) as one:  # on node 1 only, as a node that was away left them
        cids = [one.add(b"object " + secrets.token_bytes(8)) for _ in range(3)]
    with migrated_schema(stack.postgres_dsn) as schema:
        with connector(stack.postgres_dsn, schema)() as conn:
            _insert_batch(conn, "batches", "anchored", cids[0])
            _insert_batch(conn, "batches", "stored", cids[1])
            _insert_batch(conn, "epcis_batches", "anchored", cids[2])
            _insert_batch(conn, "batches", "sealed", None)
            conn.commit()
            assert sorted(recorded_cids(conn)) == sorted(cids)

        pair.kill(2)
        down = _repin(stack, schema, pair)
        assert down.returncode == 1 and f"node {pair.urls[1]} unreachable" in down.stderr

        pair.start(2)
        done = _repin(stack, schema, pair)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "3 objects checked" in done.stdout and f"{pair.urls[1]}: 3" in done.stdout
        with pair.client(2) as two:
            assert set(cids) <= two.pinned()
        again = _repin(stack, schema, pair)
        assert f"{pair.urls[1]}: 0" in again.stdout
