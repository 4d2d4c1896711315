"""HA PostgreSQL: a primary with a synchronous hot standby (network/postgres/standby.sh), the
primary killed (SIGKILL) during a steady ingest of signed readings and failed over with
network/postgres/failover.sh, the writers following through their multi-host connection string.

The pair is the test's own (tests/support/postgres_pair.py): a temporary run dir, free ports.
Readings are signed by a device of a temporary PKI, verified as the gateway verifies them, and
written by the gateway's own path: ReadingStore.store_verified on the gateway role's connection,
written again by gateway.reconnect.until_committed while no server takes writes, and counted as
acknowledged only once that returned (the gateway acknowledges then, not before).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import pairwise
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from api.config import ApiConfig
from api.db import make_read_pool
from certs.pki import PKI
from gateway.reconnect import until_committed
from ingest.schema import migrate
from ingest.store import ReadingStore, VerifiedRow
from tests.support.postgres_pair import PostgresPair, postgres_pair
from tests.support.processes import wait_until
from tracehub import db
from tracehub.envelope import reading_hash, sign_reading
from tracehub.reading import GENESIS_PREV, Reading
from tracehub.verify import InMemoryDirectory, TrustStore, verify_envelope

pytestmark = pytest.mark.integration

SCHEMA = "ha_pg"
GROUP = 10  # readings per committed group, as the gateway drains them
#: groups that must be acknowledged after the failover, through the promoted standby
AFTER_FAILOVER = 40
#: a pause longer than this means the failover did not work (kill, promote, reconnect: ~2 s)
MAX_PAUSE_S = 20.0


@pytest.fixture(scope="module")
def pair() -> Iterator[PostgresPair]:
    with postgres_pair() as pair:
        with pair.connect("postgres", autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {SCHEMA}")
        with pair.connect("postgres", options=f"-c search_path={SCHEMA}") as conn:
            migrate(conn)  # grants the gateway's role its rights too (ingest/roles.py)
        yield pair


def signed_rows(run_dir: Path, device_id: str, count: int) -> list[VerifiedRow]:
    """``count`` hash-chained readings signed by ``device_id`` (enrolled in a PKI of the run
    dir), each verified as the gateway does before storing it."""
    pki = PKI(run_dir / "pki")
    pki.init()
    issued = pki.enrol_simulated_device(device_id, not_before=datetime.now(UTC) - timedelta(1))
    key = serialization.load_pem_private_key(
        pki.device_paths(device_id)[1].read_bytes(), password=None
    )
    trust = TrustStore.from_pem_files(pki.ca_bundle_path, pki.crl_path)
    directory = InMemoryDirectory([issued.certificate])
    start = datetime.now(UTC).replace(microsecond=0)
    rows, prev = [], GENESIS_PREV
    for seq in range(1, count + 1):
        reading = Reading(
            device=device_id,
            seq=seq,
            ts=start + timedelta(milliseconds=10 * seq),
            kind="environment",
            data={"temperature_c": 4.0 + seq % 10 / 10, "humidity_pct": 60.0},
            prev=prev,
        )
        envelope = sign_reading(reading, key, issued.certificate)  # type: ignore[arg-type]
        verified = verify_envelope(envelope, trust, directory, topic_device_id=device_id)
        rows.append(VerifiedRow.from_verified(verified, envelope, datetime.now(UTC)))
        prev = reading_hash(envelope)
    return rows


def gateway_connection(pair: PostgresPair) -> Callable[[], db.Connection]:
    """New connections as the gateway makes them: its own role, the multi-host string."""
    dsn = pair.settings.postgres_dsn_for("gateway")
    return lambda: db.connect(dsn, options=f"-c search_path={SCHEMA}")


@dataclass
class Ingest:
    """Writes groups of readings one after another from a thread, as the gateway's store loop
    does; ``acked`` holds (time of the acknowledgement, the group's keys) in order."""

    pair: PostgresPair
    rows: list[VerifiedRow]
    acked: list[tuple[float, list[tuple[str, int]]]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        try:
            with ReadingStore(gateway_connection(self.pair)) as store:
                for i in range(0, len(self.rows), GROUP):
                    group = self.rows[i : i + GROUP]
                    if until_committed(partial(store.store_verified, group), self.stop) is None:
                        return  # stopped while no server took writes: not acknowledged
                    self.acked.append((time.monotonic(), [(r.device_id, r.seq) for r in group]))
                    if self.stop.wait(0.01):
                        return
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ingest", daemon=True)
        self._thread.start()

    def finish(self) -> None:
        self.stop.set()
        assert self._thread is not None
        self._thread.join(60)
        assert not self._thread.is_alive()
        assert not self.errors, self.errors

    def keys(self) -> list[tuple[str, int]]:
        return [key for _, keys in list(self.acked) for key in keys]


def stored_counts(conn: db.Connection, device_id: str) -> dict[int, int]:
    """seq -> how many readings rows ``device_id`` has for it."""
    rows = conn.execute(
        f"SELECT seq, count(*) FROM {SCHEMA}.readings WHERE device_id = %s GROUP BY seq",
        (device_id,),
    ).fetchall()
    return {int(seq): int(n) for seq, n in rows}


def test_without_its_standby_the_primary_does_not_acknowledge(pair: PostgresPair) -> None:
    """Synchronous means synchronous: with the standby down, a commit waits (it does not quietly
    go asynchronous), and returns once the standby is back and has applied it."""
    rows = signed_rows(pair.run_dir, "ha-pg-sync-1", 5)
    assert pair.sync_standby() == "postgres-standby"
    pair.kill("postgres-standby")
    done = threading.Event()

    def write() -> None:
        with ReadingStore(gateway_connection(pair)) as store:
            store.store_verified(rows)
        done.set()

    writer = threading.Thread(target=write, daemon=True)
    started = time.monotonic()
    writer.start()
    assert not done.wait(3), "the primary acknowledged a commit its standby never saw"
    pair.start("postgres-standby")
    assert done.wait(60), "the commit did not return after the standby came back"
    print(f"\nHA PostgreSQL: a commit waited {time.monotonic() - started:.1f} s for the standby")
    with pair.connect("postgres-standby") as standby:
        assert stored_counts(standby, "ha-pg-sync-1") == {seq: 1 for seq in range(1, 6)}


def test_api_reads_on_the_standby_see_what_was_acknowledged(pair: PostgresPair) -> None:
    """The API's read-only pages read through a pool that prefers the standby; the primary
    waited for the standby to apply each commit, so a reading just stored is there at once."""
    config = ApiConfig(stack=pair.settings, token_key=b"k" * 32, search_path=SCHEMA)
    rows = signed_rows(pair.run_dir, "ha-pg-read-1", 20)

    async def read_after_write() -> tuple[object, object]:
        pool = make_read_pool(config)
        assert pool is not None
        await pool.open(wait=True, timeout=30)
        try:
            async with pool.connection() as conn:
                where = await (await conn.execute("SELECT pg_is_in_recovery()")).fetchone()
                with ReadingStore(gateway_connection(pair)) as store:
                    store.store_verified(rows)  # committed on the primary: acknowledged now
                count = await (
                    await conn.execute(
                        "SELECT count(*) FROM readings WHERE device_id = 'ha-pg-read-1'"
                    )
                ).fetchone()
        finally:
            await pool.close()
        return where, count

    where, count = asyncio.run(read_after_write())
    assert where == (True,), "the read pool is not on the standby"
    assert count == (20,)


def test_primary_killed_during_ingest_nothing_acknowledged_is_lost(pair: PostgresPair) -> None:
    device = "ha-pg-kill-1"
    wait_until(lambda: pair.sync_standby() == "postgres-standby", 60, "the standby in sync")
    ingest = Ingest(pair, signed_rows(pair.run_dir, device, 1500))
    ingest.start()
    try:
        wait_until(lambda: len(ingest.acked) >= 20, 60, "20 groups acknowledged")
        killed_at = time.monotonic()
        pair.kill("postgres")  # SIGKILL to the primary's process group
        # Everything acknowledged was acknowledged before the kill: it must be on the standby
        # already, applied, before anything is promoted (synchronous_commit=remote_apply).
        before = ingest.keys()
        with pair.connect("postgres-standby") as standby:
            on_standby = stored_counts(standby, device)
        assert all(on_standby.get(seq) == 1 for _, seq in before), "acked, not on the standby"

        failover = pair.script("failover.sh", "promote")
        assert failover.returncode == 0, failover.stdout + failover.stderr
        promoted_in = time.monotonic() - killed_at
        acked_at_kill = len(ingest.acked)
        wait_until(
            lambda: len(ingest.acked) >= acked_at_kill + AFTER_FAILOVER,
            60,
            f"{AFTER_FAILOVER} groups acknowledged by the promoted standby",
        )
    finally:
        ingest.finish()

    # Exactly once: every acknowledged reading is stored once on the new primary; a group the
    # dead primary may have committed without acknowledging it was written again, stored once.
    acked = ingest.keys()
    with pair.connect("postgres-standby") as primary:
        in_recovery = primary.execute("SELECT pg_is_in_recovery()").fetchone()
        stored = stored_counts(primary, device)
    assert in_recovery == (False,)
    assert len(set(acked)) == len(acked)
    missing = [seq for _, seq in acked if seq not in stored]
    assert not missing, f"acknowledged but lost: {missing[:10]}"
    assert set(stored.values()) == {1}, "a reading stored twice"
    assert set(stored) == {seq for _, seq in acked}  # the ingest ends on an acknowledgement

    # The pause: the longest stretch without an acknowledgement that ends after the kill.
    times = [t for t, _ in ingest.acked]
    pause = max(b - a for a, b in pairwise(times) if b > killed_at)
    print(
        f"\nHA PostgreSQL: primary killed; failover.sh promote done {promoted_in:.2f} s after "
        f"the kill; longest pause between acknowledgements {pause:.2f} s; "
        f"{len(acked)} readings acknowledged, {len(stored)} stored, each once"
    )
    assert pause < MAX_PAUSE_S

    # Fenced: the old primary's own script refuses to start it as a second primary.
    refused = pair.script("postgres.sh")
    assert refused.returncode != 0 and "fenced" in refused.stderr, refused.stderr


def test_the_fenced_primary_rejoins_as_the_new_primarys_standby(pair: PostgresPair) -> None:
    """After the failover above: the old primary's data is set aside, a fresh copy of the new
    primary streams from it, and the new primary waits for that standby again."""
    assert (pair.run_dir / "postgres" / "FENCED").exists(), "runs after the failover test"
    rejoin = pair.script("failover.sh", "rejoin", "postgres")
    assert rejoin.returncode == 0, rejoin.stderr
    pair.start("postgres", "standby.sh", follows="postgres-standby")
    synced = pair.script("failover.sh", "sync", str(pair.port["postgres-standby"]))
    assert synced.returncode == 0, synced.stderr
    assert pair.sync_standby("postgres-standby") == "postgres"

    rows = signed_rows(pair.run_dir, "ha-pg-rejoin-1", 5)
    with ReadingStore(gateway_connection(pair)) as store:
        assert len(store.store_verified(rows).stored) == 5
    with pair.connect("postgres") as rejoined:  # applied there before the commit returned
        assert stored_counts(rejoined, "ha-pg-rejoin-1") == {seq: 1 for seq in range(1, 6)}
    kept = [p.name for p in (pair.run_dir / "postgres").iterdir() if p.name.startswith("data.")]
    assert len(kept) == 1 and kept[0].startswith("data.fenced-")
