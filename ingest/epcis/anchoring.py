"""Anchoring of EPCIS event hashes: seal pending events into batches, put each batch on IPFS,
anchor its Merkle root on Fabric (``AnchorBatch``, batch ids ``ev-...``).

Like the readings' pipeline (gateway/service.py): sealing writes the batch, its events' leaf
positions and an outbox row in one transaction; the outbox is drained with row leases
(``FOR UPDATE SKIP LOCKED`` + ``next_attempt_at``), retried with exponential backoff, and a batch
the ledger already holds (a crash after commit, before we recorded it) is confirmed through
``GetAnchor`` (same root) instead of failing.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from tracehub import db
from tracehub.anchoring import AnchorContract, submit_anchor
from tracehub.epcis.batch import encode_event_batch
from tracehub.merkle import MerkleTree

__all__ = ["EventAnchorLoop", "anchor_on", "anchor_pending", "drain_outbox", "seal_pending"]

log = logging.getLogger(__name__)
#: How long a claimed outbox row stays invisible to other workers (a crashed worker's lease).
LEASE = timedelta(seconds=60)
MAX_BACKOFF_S = 300.0


class _Ipfs(Protocol):
    def add(self, data: bytes, *, pin: bool = True, filename: str = "data") -> str: ...


ConnFactory = Callable[[], db.Connection]


def seal_pending(conn: db.Connection, *, max_events: int, max_age_s: float = 0.0) -> str | None:
    """Seal up to ``max_events`` unbatched events into a new batch (one transaction, committed).

    With ``max_age_s`` > 0 a batch smaller than ``max_events`` is sealed only once its oldest
    event has waited that long. Returns the batch id, or None when nothing was sealed.
    """
    with conn.transaction():
        rows = conn.execute(
            "SELECT seq, hash_hex, event_time, record_time FROM epcis_events"
            " WHERE batch_id IS NULL ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED",
            (max_events,),
        ).fetchall()
        if not rows:
            return None
        oldest = min(r[3] for r in rows)
        young = datetime.now(UTC) - oldest < timedelta(seconds=max_age_s)
        if len(rows) < max_events and max_age_s > 0 and young:
            return None
        tree = MerkleTree([bytes.fromhex(r[1]) for r in rows])
        now = datetime.now(UTC)
        batch_id = f"ev-{now:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"
        conn.execute(
            "INSERT INTO epcis_batches (batch_id, sealed_at, count, first_time, last_time, root)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (
                batch_id,
                now,
                len(rows),
                min(r[2] for r in rows),
                max(r[2] for r in rows),
                tree.root.hex(),
            ),
        )
        with conn.cursor() as cur:
            cur.executemany(
                "UPDATE epcis_events SET batch_id = %s, batch_index = %s WHERE seq = %s",
                [(batch_id, i, r[0]) for i, r in enumerate(rows)],
            )
        conn.execute("INSERT INTO epcis_anchor_outbox (batch_id) VALUES (%s)", (batch_id,))
    return batch_id


def _claim(conn: db.Connection) -> tuple[str, int] | None:
    with conn.transaction():
        row = conn.execute(
            "SELECT batch_id, attempts FROM epcis_anchor_outbox WHERE next_attempt_at <= now()"
            " ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED"
        ).fetchone()
        if row is None:
            return None
        conn.execute(
            "UPDATE epcis_anchor_outbox SET attempts = attempts + 1, next_attempt_at = %s"
            " WHERE batch_id = %s",
            (datetime.now(UTC) + LEASE, row[0]),
        )
    return str(row[0]), int(row[1]) + 1


def _anchor_one(
    conn: db.Connection,
    batch_id: str,
    ipfs: _Ipfs,
    contract: AnchorContract,
    block_lookup: AnchorContract | None,
    channel: str,
) -> None:
    batch = conn.execute(
        "SELECT root, count, first_time, last_time, ipfs_cid FROM epcis_batches"
        " WHERE batch_id = %s",
        (batch_id,),
    ).fetchone()
    conn.commit()
    if batch is None:
        raise LookupError(f"batch {batch_id} vanished")
    root, count, first_time, last_time, cid = batch
    if cid is None:
        events = [
            bytes(r[0])
            for r in conn.execute(
                "SELECT event_json FROM epcis_events WHERE batch_id = %s ORDER BY batch_index",
                (batch_id,),
            ).fetchall()
        ]
        conn.commit()
        cid = ipfs.add(encode_event_batch(batch_id, root, events), filename=f"{batch_id}.jsonl")
        with conn.transaction():
            conn.execute(
                "UPDATE epcis_batches SET ipfs_cid = %s, state = 'stored' WHERE batch_id = %s",
                (cid, batch_id),
            )
    anchor = {
        "batch_id": batch_id,
        "root": root,
        "ipfs_cid": cid,
        "count": count,
        "first_ts": first_time.isoformat(),
        "last_ts": last_time.isoformat(),
        "devices": 0,  # events come from organisations, not devices
    }
    tx_id, block_number = submit_anchor(
        contract, anchor, block_lookup=block_lookup, channel=channel
    )
    with conn.transaction():
        conn.execute(
            "UPDATE epcis_batches SET state = 'anchored', tx_id = %s, block_number = %s,"
            " anchored_at = now() WHERE batch_id = %s",
            (tx_id, block_number, batch_id),
        )
        conn.execute("DELETE FROM epcis_anchor_outbox WHERE batch_id = %s", (batch_id,))


def drain_outbox(
    conn: db.Connection,
    ipfs: _Ipfs,
    contract: AnchorContract,
    *,
    block_lookup: AnchorContract | None = None,
    channel: str = "trace",
    limit: int = 100,
) -> list[str]:
    """Anchor due outbox batches; failures are recorded with a backoff, not raised."""
    anchored: list[str] = []
    for _ in range(limit):
        claimed = _claim(conn)
        if claimed is None:
            break
        batch_id, attempts = claimed
        try:
            _anchor_one(conn, batch_id, ipfs, contract, block_lookup, channel)
            anchored.append(batch_id)
        except Exception as exc:  # any failure: keep the batch queued and back off
            conn.rollback()
            delay = min(MAX_BACKOFF_S, 2.0**attempts)
            with conn.transaction():
                conn.execute(
                    "UPDATE epcis_anchor_outbox SET last_error = %s, next_attempt_at = %s"
                    " WHERE batch_id = %s",
                    (str(exc)[:2000], datetime.now(UTC) + timedelta(seconds=delay), batch_id),
                )
            log.warning("anchoring event batch %s failed (attempt %d): %s", batch_id, attempts, exc)
    return anchored


def anchor_on(
    conn: db.Connection,
    ipfs: _Ipfs,
    contract: AnchorContract,
    *,
    max_events: int = 1000,
    max_age_s: float = 0.0,
    block_lookup: AnchorContract | None = None,
    channel: str = "trace",
) -> list[str]:
    """:func:`anchor_pending` on a connection the caller keeps open."""
    while seal_pending(conn, max_events=max_events, max_age_s=max_age_s):
        pass
    return drain_outbox(conn, ipfs, contract, block_lookup=block_lookup, channel=channel)


def anchor_pending(
    conn_factory: ConnFactory,
    ipfs: _Ipfs,
    contract: AnchorContract,
    *,
    max_events: int = 1000,
    max_age_s: float = 0.0,
    block_lookup: AnchorContract | None = None,
    channel: str = "trace",
) -> list[str]:
    """Seal every pending event into batches of at most ``max_events`` and anchor all due
    batches; returns the ids of the batches anchored by this call."""
    with conn_factory() as conn:
        return anchor_on(
            conn,
            ipfs,
            contract,
            max_events=max_events,
            max_age_s=max_age_s,
            block_lookup=block_lookup,
            channel=channel,
        )


class EventAnchorLoop:
    """A daemon thread running :func:`anchor_pending` every ``interval_s`` until stopped."""

    def __init__(
        self,
        conn_factory: ConnFactory,
        ipfs: _Ipfs,
        contract: AnchorContract,
        *,
        block_lookup: AnchorContract | None = None,
        channel: str = "trace",
        max_events: int = 1000,
        max_age_s: float = 5.0,
        interval_s: float = 1.0,
    ) -> None:
        self._factory = conn_factory
        self._args = (ipfs, contract)
        self._kwargs: dict[str, Any] = {
            "block_lookup": block_lookup,
            "channel": channel,
            "max_events": max_events,
            "max_age_s": max_age_s,
        }
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="epcis-anchor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        conn: db.Connection | None = None
        while not self._stop.is_set():
            try:
                # One connection kept across passes; a new one after any failure.
                conn = conn if conn is not None and not conn.closed else self._factory()
                anchor_on(conn, *self._args, **self._kwargs)
            except Exception:  # the database may be down for a moment: log, keep looping
                log.exception("event anchoring pass failed")
                if conn is not None:
                    conn.close()
                conn = None
            self._stop.wait(self._interval)
        if conn is not None:
            conn.close()
