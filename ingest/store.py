"""PostgreSQL storage of verified readings, their chain state, quarantine, batches and the outbox.

The gateway hands :meth:`ReadingStore.store_verified` a batch of readings whose envelopes
verified; the store writes them in one transaction with the per-device chain state, and tells
the caller what was new, what it had already (``duplicates``), what contradicts a stored reading
(``conflicts``: same device and seq, another hash -- a replay or forgery, for the quarantine),
and where a device's chain has holes (``gaps``) or does not link (``chain_breaks``). Gaps and
breaks are recorded in ``chain_gaps`` and are not errors: the readings are stored anyway.

Holes are also kept as state, in ``missing_readings``: recorded when a device's sequence jumps
past them, shrunk or split when their readings arrive late, in the same transaction. With the
devices' signed dropped-range reports (:meth:`ReadingStore.record_dropped`) they give what the
gateway acknowledges to each device (:meth:`ReadingStore.ack_states`: stored through N, and the
ranges below N still missing) and what is lost (:meth:`ReadingStore.gap_state`): only the part
of a hole that the device itself reported dropped. See ``docs/acknowledgement.md``.

The batcher then seals the newly stored keys into Merkle batches (:meth:`ReadingStore.seal_batch`,
which also enqueues the batch in ``anchor_outbox``), and the anchoring worker drains the outbox
(:meth:`~ReadingStore.outbox_due`, :meth:`~ReadingStore.mark_stored`,
:meth:`~ReadingStore.mark_anchored`, :meth:`~ReadingStore.outbox_failed`). Every state transition
is idempotent: repeating a call with the same arguments changes nothing and does not fail.

Schema: ``ingest/migrations``; why it is shaped so: ``docs/decisions/0007-reading-storage.md``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple, TypeVar

import psycopg
from psycopg import errors
from psycopg.types.json import set_json_dumps

from ingest.errors import IngestError
from ingest.schema import ensure_partitions
from tracehub import db
from tracehub.acks import SeqRange
from tracehub.dropped import VerifiedDropped
from tracehub.errors import ConflictError, NotFoundError
from tracehub.merkle import MerkleTree
from tracehub.reading import DEVICE_ID_PATTERN, GENESIS_PREV
from tracehub.verify import VerifiedReading

__all__ = [
    "AckState",
    "BatchConflictError",
    "BatchRecord",
    "BatchState",
    "BatchStateError",
    "ChainGap",
    "DeviceState",
    "DroppedRow",
    "GapState",
    "OutboxItem",
    "QuarantineRow",
    "ReadingConflict",
    "ReadingKey",
    "ReadingStore",
    "StoreError",
    "StoreResult",
    "StoredReading",
    "UnknownBatchError",
    "VerifiedRow",
]

log = logging.getLogger(__name__)

_HEX64 = re.compile(r"[0-9a-f]{64}")
_KINDS = frozenset({"rfid", "environment", "event", "health"})
_MAX_SEQ = 2**63 - 1
T = TypeVar("T")

BatchState = Literal["sealed", "stored", "anchored"]

#: A batch's reading hashes in Merkle leaf order, by (batch_id, first_ts, last_ts): the time
#: bounds keep the scan to the batch's partitions.
BATCH_LEAVES = (
    "SELECT reading_hash FROM readings"
    " WHERE batch_id = %s AND ts BETWEEN %s AND %s ORDER BY batch_index"
)
_BATCH_ENVELOPES = (
    "SELECT envelope FROM readings"
    " WHERE batch_id = %s AND ts BETWEEN %s AND %s ORDER BY batch_index"
)


class StoreError(IngestError):
    """A storage operation was refused; nothing was changed. (Root of the store's errors; each
    takes its own kind.)"""


class UnknownBatchError(StoreError, NotFoundError):
    """No batch has this id."""


class BatchConflictError(StoreError, ConflictError):
    """The batch contradicts what is stored: another root or size under the same id, or keys
    that are unknown, carry another hash, or already belong to a batch (``keys`` lists them)."""

    def __init__(self, message: str, keys: Sequence[ReadingKey] = ()) -> None:
        super().__init__(message)
        self.keys = list(keys)


class BatchStateError(StoreError, ConflictError):
    """The transition does not apply to the batch's state (e.g. anchoring before storing, or a
    second, different CID or transaction for the same batch)."""


# ---------------------------------------------------------------------- values


class ReadingKey(NamedTuple):
    """A stored reading's identity: a Merkle leaf is built from ``reading_hash``."""

    device_id: str
    seq: int
    reading_hash: str


@dataclass(frozen=True, slots=True)
class VerifiedRow:
    """A reading whose envelope verified, as the gateway hands it to the store.

    Construction checks the shape of each field (not the signature: that is the gateway's job),
    so a bad row fails here rather than failing a whole batch in the database.
    """

    device_id: str
    seq: int
    ts: datetime
    kind: str
    data: dict[str, Any]
    loc: str | None
    prev_hash: str
    reading_hash: str
    envelope: bytes
    certificate_sha256: str
    received_at: datetime

    def __post_init__(self) -> None:
        if not DEVICE_ID_PATTERN.fullmatch(self.device_id):
            raise ValueError(f"device_id {self.device_id!r} is not a device id")
        if isinstance(self.seq, bool) or not isinstance(self.seq, int):
            raise ValueError("seq must be an integer")
        if not 1 <= self.seq <= _MAX_SEQ:
            raise ValueError(f"seq {self.seq} is out of range")
        if self.ts.utcoffset() is None or self.received_at.utcoffset() is None:
            raise ValueError("ts and received_at must be timezone-aware")
        if self.kind not in _KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {sorted(_KINDS)}")
        if not isinstance(self.data, dict):
            raise ValueError("data must be a dict")
        if self.loc is not None and "\x00" in self.loc:
            raise ValueError("loc must not contain NUL")
        for name in ("prev_hash", "reading_hash", "certificate_sha256"):
            if not _HEX64.fullmatch(getattr(self, name)):
                raise ValueError(f"{name} must be 64 lowercase hex digits")
        if not isinstance(self.envelope, bytes) or not self.envelope:
            raise ValueError("envelope must be non-empty bytes")
        # The key table does not refuse a hash stored under another key (decision 0039): one
        # hash is one envelope, and so one key, only if the hash is the envelope's.
        if hashlib.sha256(self.envelope).hexdigest() != self.reading_hash:
            raise ValueError("reading_hash is not the SHA-256 of the envelope")

    @property
    def key(self) -> ReadingKey:
        return ReadingKey(self.device_id, self.seq, self.reading_hash)

    def copy_row(self) -> tuple[object, ...]:
        """The row in the order of the readings' COPY columns (``_COPY_TYPES``)."""
        return (
            self.device_id,
            self.seq,
            self.ts,
            self.received_at,
            self.kind,
            self.data,
            self.loc,
            self.prev_hash,
            self.reading_hash,
            self.envelope,
            self.certificate_sha256,
        )

    @classmethod
    def from_verified(
        cls, verified: VerifiedReading, envelope: bytes, received_at: datetime
    ) -> VerifiedRow:
        """The row for an envelope :func:`tracehub.verify.verify_envelope` accepted.

        Built without ``__post_init__``'s checks: ``Reading`` has already checked every field
        they cover (the same device id pattern, seq range, kinds, aware ``ts``, hex ``prev``,
        no NUL in ``loc``), and the two hashes are SHA-256 hex digests computed by the verifier.
        The checks are there for rows built any other way.
        """
        if received_at.utcoffset() is None:  # the one field that comes from the caller
            raise ValueError("received_at must be timezone-aware")
        r = verified.reading
        row = object.__new__(cls)
        values = (
            r.device,
            r.seq,
            r.ts,
            r.kind,
            r.data,
            r.loc,
            r.prev,
            verified.hash,
            envelope,
            verified.fingerprint,
            received_at,
        )
        for set_slot, value in zip(_VERIFIED_ROW_SLOTS, values, strict=True):
            set_slot(row, value)
        return row


# The slots' own setters, in field order: they fill a frozen row without __setattr__'s refusal.
_VERIFIED_ROW_SLOTS = tuple(getattr(VerifiedRow, f.name).__set__ for f in fields(VerifiedRow))


@dataclass(frozen=True, slots=True)
class ReadingConflict:
    """An incoming row whose (device_id, seq) is stored with another hash: replay or forgery.

    ``stored_hash`` is the hash on record for that (device_id, seq). Conflicts are not stored;
    the caller quarantines ``row.envelope``.
    """

    row: VerifiedRow
    stored_hash: str


@dataclass(frozen=True, slots=True)
class ChainGap:
    """A hole (``kind="gap"``: nothing between after_seq and next_seq was received) or a break
    (``kind="break"``: reading next_seq's ``prev`` is ``actual_prev``, not the hash of reading
    after_seq, ``expected_prev``) in a device's chain."""

    device_id: str
    kind: Literal["gap", "break"]
    after_seq: int
    next_seq: int
    expected_prev: str | None = None
    actual_prev: str | None = None


@dataclass(frozen=True, slots=True)
class StoreResult:
    #: Keys of the readings stored by this call, in (device_id, seq) order.
    stored: list[ReadingKey]
    #: Rows already stored with the same hash (or repeated within the batch): not stored again.
    duplicates: int
    conflicts: list[ReadingConflict]
    gaps: list[ChainGap]
    chain_breaks: list[ChainGap]
    #: The open batch the stored readings joined (``batch_into``), or ``None``: not asked for,
    #: or that batch was sealed already, so they wait unbatched for :meth:`ReadingStore.seal_batch`.
    batch_id: str | None = None
    #: Readings in that open batch after this call.
    batch_size: int = 0


@dataclass(frozen=True, slots=True)
class StoredReading:
    device_id: str
    seq: int
    ts: datetime
    received_at: datetime
    kind: str
    data: dict[str, Any]
    loc: str | None
    prev_hash: str
    reading_hash: str
    envelope: bytes
    certificate_sha256: str
    batch_id: str | None
    batch_index: int | None

    @property
    def key(self) -> ReadingKey:
        return ReadingKey(self.device_id, self.seq, self.reading_hash)


@dataclass(frozen=True, slots=True)
class DeviceState:
    device_id: str
    certificate_sha256: str
    first_seen: datetime
    last_seen: datetime
    last_seq: int
    last_hash: str


@dataclass(frozen=True, slots=True)
class DroppedRow:
    """A device's verified dropped-range report, as the gateway hands it to the store."""

    report_hash: str
    device_id: str
    first_seq: int
    last_seq: int
    reason: str
    reported_at: datetime
    received_at: datetime
    certificate_sha256: str
    envelope: bytes

    @classmethod
    def from_verified(
        cls, verified: VerifiedDropped, envelope: bytes, received_at: datetime
    ) -> DroppedRow:
        r = verified.report
        return cls(
            verified.hash,
            r.device,
            r.first,
            r.last,
            r.reason,
            r.ts,
            received_at,
            verified.fingerprint,
            envelope,
        )


@dataclass(frozen=True, slots=True)
class AckState:
    """What the hub has of a device: every seq up to ``through`` is stored, recorded lost, or
    inside one of the ``missing`` ranges (ascending, inclusive), which the hub asks for again."""

    device_id: str
    through: int
    missing: list[SeqRange]


@dataclass(frozen=True, slots=True)
class GapState:
    """A device's holes: ``missing`` (asked for again) and ``lost`` (covered by its report)."""

    missing: list[SeqRange]
    lost: list[SeqRange]


@dataclass(frozen=True, slots=True)
class QuarantineRow:
    """A rejected message, kept as received. ``device_id`` is whatever the topic claimed."""

    topic: str
    reason: str
    raw: bytes
    detail: str = ""
    device_id: str | None = None
    #: ``None``: the database's clock at insertion.
    received_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class BatchRecord:
    batch_id: str
    sealed_at: datetime
    count: int
    first_ts: datetime
    last_ts: datetime
    devices: int
    root: str
    ipfs_cid: str | None
    state: BatchState
    tx_id: str | None
    block_number: int | None
    anchored_at: datetime | None


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A batch the anchoring worker must (still) put on IPFS and/or anchor on the ledger."""

    batch: BatchRecord
    #: Times a worker has claimed it, this claim included.
    attempts: int
    #: Until then the claim is this worker's; after it, another worker may take the batch.
    lease_until: datetime
    last_error: str | None


# ---------------------------------------------------------------------- SQL

_READING_COLUMNS = (
    "device_id, seq, ts, received_at, kind, data, loc, prev_hash, reading_hash, envelope,"
    " certificate_sha256"
)
# The batch goes into a per-connection temp table in one binary COPY; the server then splits it
# into new keys and readings (bench/store_bench.py --compare: faster than sending the keys as
# arrays and COPYing the new readings straight into readings, and than pipelined executemany).
_CREATE_INCOMING = """
CREATE TEMP TABLE IF NOT EXISTS ingest_incoming (
    device_id text, seq bigint, ts timestamptz, received_at timestamptz, kind text, data jsonb,
    loc text, prev_hash text, reading_hash text, envelope bytea, certificate_sha256 text
) ON COMMIT DELETE ROWS
"""
_COPY_INCOMING = f"COPY ingest_incoming ({_READING_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_COPY_TYPES = [
    "text",
    "int8",
    "timestamptz",
    "timestamptz",
    "text",
    "jsonb",
    "text",
    "text",
    "text",
    "bytea",
    "text",
]
# The global uniqueness check: reading_keys takes the keys it has not seen, and exactly those
# readings are inserted; the keys returned are the readings stored by this transaction.
_INSERT_NEW = f"""
WITH new AS (
    INSERT INTO reading_keys (device_id, seq, ts, reading_hash)
    SELECT device_id, seq, ts, reading_hash FROM ingest_incoming
    ON CONFLICT DO NOTHING
    RETURNING device_id, seq
)
INSERT INTO readings ({_READING_COLUMNS})
SELECT {_READING_COLUMNS} FROM ingest_incoming JOIN new USING (device_id, seq)
RETURNING device_id, seq
"""
# The same, for readings that join an open batch as they are stored: their leaf positions follow
# the batch's size so far, in (device_id, seq) order, so sealing never has to rewrite them.
_INSERT_NEW_INTO_BATCH = f"""
WITH new AS (
    INSERT INTO reading_keys (device_id, seq, ts, reading_hash)
    SELECT device_id, seq, ts, reading_hash FROM ingest_incoming
    ON CONFLICT DO NOTHING
    RETURNING device_id, seq
)
INSERT INTO readings ({_READING_COLUMNS}, batch_id, batch_index)
SELECT {_READING_COLUMNS}, %(batch)s,
       %(base)s + row_number() OVER (ORDER BY device_id, seq) - 1
FROM ingest_incoming JOIN new USING (device_id, seq)
RETURNING device_id, seq
"""
_GROW_OPEN_BATCH = """
UPDATE open_batches SET size = size + %(n)s, first_ts = least(first_ts, %(first)s),
    last_ts = greatest(last_ts, %(last)s)
WHERE batch_id = %(batch)s
"""
_SELECT_READING = f"r.{_READING_COLUMNS.replace(', ', ', r.')}, r.batch_id, r.batch_index"
_BATCH_COLUMNS = (
    "batch_id, sealed_at, count, first_ts, last_ts, devices, root, ipfs_cid, state, tx_id,"
    " block_number, anchored_at"
)

# Creates unseen devices and locks every device row of the batch, in device_id order (so two
# gateways storing overlapping devices cannot deadlock); returns the chain state before the batch.
_UPSERT_DEVICES = """
INSERT INTO devices AS d (device_id, certificate_sha256, first_seen, last_seen)
SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[]) ORDER BY 1
ON CONFLICT (device_id) DO UPDATE
    SET first_seen = least(d.first_seen, excluded.first_seen),
        last_seen = greatest(d.last_seen, excluded.last_seen)
RETURNING d.device_id, d.last_seq, d.last_hash
"""
_KEY_HASHES = """
SELECT k.device_id, k.seq, k.reading_hash
FROM unnest(%s::text[], %s::int8[]) AS u(device_id, seq)
JOIN reading_keys k ON k.device_id = u.device_id AND k.seq = u.seq
"""
_SUCCESSOR_PREVS = """
SELECT k.device_id, k.seq, r.prev_hash
FROM unnest(%s::text[], %s::int8[]) AS u(device_id, seq)
JOIN reading_keys k ON k.device_id = u.device_id AND k.seq = u.seq
JOIN readings r ON r.device_id = k.device_id AND r.seq = k.seq AND r.ts = k.ts
"""
# Holes (missing_readings) that late arrivals fall into, and their replacement pieces.
_HOLES_HIT = """
SELECT DISTINCT m.device_id, m.first_seq, m.last_seq, m.detected_at
FROM missing_readings m
JOIN unnest(%s::text[], %s::int8[]) AS u(device_id, seq)
  ON m.device_id = u.device_id AND u.seq BETWEEN m.first_seq AND m.last_seq
"""
_DELETE_HOLES = """
DELETE FROM missing_readings m
USING unnest(%s::text[], %s::int8[]) AS u(device_id, first_seq)
WHERE m.device_id = u.device_id AND m.first_seq = u.first_seq
"""
_INSERT_HOLES = """
INSERT INTO missing_readings (device_id, first_seq, last_seq, detected_at)
SELECT u.device_id, u.first_seq, u.last_seq, coalesce(u.detected_at, now())
FROM unnest(%s::text[], %s::int8[], %s::int8[], %s::timestamptz[])
    AS u(device_id, first_seq, last_seq, detected_at)
ON CONFLICT DO NOTHING
"""
_INSERT_DROPPED = """
INSERT INTO dropped_reports (report_hash, device_id, first_seq, last_seq, reason, reported_at,
                             received_at, certificate_sha256, envelope)
SELECT * FROM unnest(%s::text[], %s::text[], %s::int8[], %s::int8[], %s::text[],
                     %s::timestamptz[], %s::timestamptz[], %s::text[], %s::bytea[])
ON CONFLICT DO NOTHING
"""
# A device's holes and reported drops as multiranges; one statement, so one snapshot.
_HOLES = """coalesce((SELECT range_agg(int8range(m.first_seq, m.last_seq, '[]'))
    FROM missing_readings m WHERE m.device_id = d.device_id), '{}'::int8multirange)"""
_REPORTED = """coalesce((SELECT range_agg(int8range(r.first_seq, r.last_seq, '[]'))
    FROM dropped_reports r WHERE r.device_id = d.device_id), '{}'::int8multirange)"""
_ACK_STATES = f"""
SELECT d.device_id, d.last_seq, {_HOLES} - {_REPORTED}
FROM devices d WHERE d.device_id = ANY(%s) ORDER BY d.device_id
"""
_GAP_STATE = f"""
SELECT {_HOLES} - {_REPORTED}, {_HOLES} * {_REPORTED}
FROM devices d WHERE d.device_id = %s
"""
_INSERT_GAPS = """
INSERT INTO chain_gaps (device_id, kind, after_seq, next_seq, expected_prev, actual_prev)
SELECT * FROM unnest(%s::text[], %s::text[], %s::int8[], %s::int8[], %s::text[], %s::text[])
ON CONFLICT DO NOTHING
"""
# Monotonic: a device's state only moves forward, whatever order batches commit in.
_ADVANCE_DEVICES = """
UPDATE devices d
SET last_seq = u.seq, last_hash = u.reading_hash, certificate_sha256 = u.certificate_sha256
FROM unnest(%s::text[], %s::int8[], %s::text[], %s::text[])
    AS u(device_id, seq, reading_hash, certificate_sha256)
WHERE d.device_id = u.device_id AND d.last_seq < u.seq
"""
_INSERT_QUARANTINE = """
INSERT INTO quarantine (received_at, topic, device_id, reason, detail, raw)
SELECT coalesce(received_at, now()), topic, device_id, reason, detail, raw
FROM unnest(%s::timestamptz[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bytea[])
    WITH ORDINALITY AS u(received_at, topic, device_id, reason, detail, raw, ord)
ORDER BY ord
RETURNING id
"""
_BATCH_MEMBERS = """
SELECT u.device_id, u.seq, k.reading_hash, k.ts
FROM unnest(%s::text[], %s::int8[]) WITH ORDINALITY AS u(device_id, seq, ord)
LEFT JOIN reading_keys k ON k.device_id = u.device_id AND k.seq = u.seq
ORDER BY u.ord
"""
_ASSIGN_BATCH = """
UPDATE readings r SET batch_id = %s, batch_index = u.ord - 1
FROM unnest(%s::text[], %s::int8[], %s::timestamptz[]) WITH ORDINALITY AS u(device_id, seq, ts, ord)
WHERE r.device_id = u.device_id AND r.seq = u.seq AND r.ts = u.ts AND r.batch_id IS NULL
"""
_ALREADY_BATCHED = """
SELECT r.device_id, r.seq, r.reading_hash
FROM unnest(%s::text[], %s::int8[], %s::timestamptz[]) WITH ORDINALITY AS u(device_id, seq, ts, ord)
JOIN readings r ON r.device_id = u.device_id AND r.seq = u.seq AND r.ts = u.ts
WHERE r.batch_id IS NOT NULL AND r.batch_id <> %s
ORDER BY u.ord
"""
_OUTBOX_BATCH_COLUMNS = ", ".join(f"b.{c.strip()}" for c in _BATCH_COLUMNS.split(","))
_CLAIM_OUTBOX = f"""
WITH due AS (
    SELECT batch_id FROM anchor_outbox
    WHERE next_attempt_at <= coalesce(%(now)s, now())
    ORDER BY next_attempt_at, batch_id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE anchor_outbox o
SET attempts = o.attempts + 1, next_attempt_at = coalesce(%(now)s, now()) + %(lease)s
FROM due, batches b
WHERE o.batch_id = due.batch_id AND b.batch_id = o.batch_id
RETURNING o.attempts, o.next_attempt_at, o.last_error, {_OUTBOX_BATCH_COLUMNS}
"""


# ---------------------------------------------------------------------- helpers


def _strip_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_strip_nul(k): _strip_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_nul(v) for v in value]
    return value


# Built once, as json.dumps would build it on every call with these options.
_JSONB = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _jsonb_dumps(obj: Any) -> str:
    """JSON for ``data``. PostgreSQL's jsonb cannot hold U+0000, which a valid ``event`` reading
    may contain; it becomes U+FFFD in the queryable copy (the envelope keeps the exact bytes)."""
    text = _JSONB.encode(obj)
    if "\\u0000" in text:
        text = json.dumps(_strip_nul(obj), ensure_ascii=False, separators=(",", ":"))
    return text


def _clean_text(text: str) -> str:
    """Text PostgreSQL accepts: no NUL, no lone surrogates (quarantined input is untrusted)."""
    text = text.replace("\x00", "\ufffd")
    return text.encode("utf-8", "replace").decode("utf-8")


def _month_index(ts: datetime) -> int:
    ts = ts.astimezone(UTC)
    return ts.year * 12 + ts.month - 1


def _seq_ranges(multirange: Any) -> list[SeqRange]:
    """Inclusive (first, last) pairs of an int8multirange as psycopg returns it."""
    pairs = []
    for r in multirange:
        first = r.lower if r.lower_inc else r.lower + 1
        last = r.upper - 1 if not r.upper_inc else r.upper
        pairs.append((int(first), int(last)))
    return pairs


def _split_holes(
    hit: Sequence[Sequence[Any]], filled: dict[str, set[int]]
) -> list[tuple[str, int, int, datetime]]:
    """What is left of holes (device, first, last, detected_at) once ``filled`` seqs arrived."""
    pieces = []
    for device, first, last, detected in hit:
        low = first
        for seq in sorted(s for s in filled[device] if first <= s <= last):
            if seq > low:
                pieces.append((device, low, seq - 1, detected))
            low = seq + 1
        if low <= last:
            pieces.append((device, low, last, detected))
    return pieces


def _batch(row: Sequence[Any]) -> BatchRecord:
    return BatchRecord(*row)


def _stored_reading(row: Sequence[Any]) -> StoredReading:
    return StoredReading(
        device_id=row[0],
        seq=row[1],
        ts=row[2],
        received_at=row[3],
        kind=row[4],
        data=row[5],
        loc=row[6],
        prev_hash=row[7],
        reading_hash=row[8],
        envelope=bytes(row[9]),
        certificate_sha256=row[10],
        batch_id=row[11],
        batch_index=row[12],
    )


@dataclass
class _Device:
    first_seen: datetime
    last_seen: datetime
    top: VerifiedRow


@dataclass(frozen=True)
class Backlog:
    """The store's backlog as the gateway's metrics show it (ReadingStore.backlog)."""

    outbox_depth: int
    oldest_unanchored_s: float  # 0 when every batch is anchored
    silent_devices: int


class ReadingStore:
    """Readings, chain state, quarantine, batches and outbox in PostgreSQL.

    ``conn_factory`` returns a new connection whose ``search_path`` leads to the migrated schema
    (e.g. ``lambda: tracehub.db.connect(dsn)``). The store opens one connection lazily, keeps it,
    and opens another after it breaks. Calls are serialized by a lock, so a store may be shared
    between threads, but one store writes at a time: use one store per writer thread for
    parallelism. Transactions that lose a deadlock or serialization race are retried.

    Monthly partitions of ``readings`` are attached on demand before a batch is written, for
    months within ``partition_months_back`` / ``partition_months_ahead`` of the current one;
    readings outside that window (a device clock far off) land in the default partition.
    """

    def __init__(
        self,
        conn_factory: Callable[[], db.Connection],
        *,
        partition_months_back: int = 24,
        partition_months_ahead: int = 2,
        retries: int = 3,
    ) -> None:
        self._factory = conn_factory
        self._conn: db.Connection | None = None
        self._lock = threading.RLock()
        self._months_ready: set[int] = set()
        self._months_back = partition_months_back
        self._months_ahead = partition_months_ahead
        self._retries = retries

    # -- connection

    def __enter__(self) -> ReadingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> db.Connection:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if conn is not None:
            conn.close()
            self._conn = None
        conn = self._factory()
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        conn.autocommit = True  # transactions are explicit: conn.transaction()
        set_json_dumps(_jsonb_dumps, context=conn)
        conn.execute(_CREATE_INCOMING)
        self._conn = conn
        return conn

    def _transaction(self, work: Callable[[db.Connection], T]) -> T:
        with self._lock:
            attempt = 0
            while True:
                conn = self._connection()
                try:
                    with conn.transaction():
                        return work(conn)
                except (errors.DeadlockDetected, errors.SerializationFailure):
                    attempt += 1
                    if attempt > self._retries:
                        raise
                    log.warning("store transaction lost a race; retrying (%d)", attempt)
                except psycopg.Error:
                    if conn.closed or conn.broken:
                        self._conn = None
                    raise

    # -- readings

    def store_verified(
        self, batch: Sequence[VerifiedRow], *, batch_into: str | None = None
    ) -> StoreResult:
        """Store a batch of verified readings in one transaction; see the module docstring.

        With ``batch_into``, the readings stored join that open Merkle batch (created on first
        use) at the next leaf positions, sealed later by :meth:`seal_open_batch`; if that batch
        is sealed already they are stored unbatched and the result's ``batch_id`` is ``None``.

        Exact duplicates (same device, seq and hash, whether stored before or repeated within
        the batch) are counted and skipped. A row whose (device, seq) is stored -- or earlier in
        the batch -- with another hash is returned in ``conflicts`` and not stored. Every stored
        reading's ``prev`` is checked against its predecessor's hash whenever both are known,
        whatever order they arrive in; holes in the sequence are recorded as gaps when the
        device's sequence moves past them.
        """
        if not batch:
            return StoreResult([], 0, [], [], [])
        groups: dict[tuple[str, int], list[VerifiedRow]] = {}
        devices: dict[str, _Device] = {}
        for row in batch:
            groups.setdefault((row.device_id, row.seq), []).append(row)
            dev = devices.get(row.device_id)
            if dev is None:
                devices[row.device_id] = _Device(row.received_at, row.received_at, row)
            else:
                dev.first_seen = min(dev.first_seen, row.received_at)
                dev.last_seen = max(dev.last_seen, row.received_at)
                if row.seq > dev.top.seq:
                    dev.top = row
        firsts = sorted((rows[0] for rows in groups.values()), key=lambda r: (r.device_id, r.seq))
        self._prepare_partitions(r.ts for r in firsts)
        return self._transaction(
            lambda conn: self._store(conn, groups, firsts, devices, batch_into)
        )

    def _prepare_partitions(self, stamps: Iterable[datetime]) -> None:
        now = _month_index(datetime.now(UTC))
        wanted = {_month_index(ts) for ts in stamps} - self._months_ready
        for index in sorted(wanted):
            if not now - self._months_back <= index <= now + self._months_ahead:
                continue  # outside the window: the default partition takes it
            month = datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)
            with self._lock:
                conn = self._connection()
                try:
                    created = ensure_partitions(conn, month, months_before=0, months_after=0)
                except errors.LockNotAvailable:
                    log.warning("partition for %s not attached yet (lock busy)", month.date())
                    continue
                except errors.InsufficientPrivilege:
                    # The gateway's own role may not create tables (ingest/roles.py): the
                    # owner attaches partitions (`python -m ingest migrate`); until then the
                    # default partition holds the month's readings.
                    log.info("partition for %s left to the schema's owner", month.date())
                    self._months_ready.add(index)
                    continue
                except psycopg.Error:
                    if conn.closed or conn.broken:
                        self._conn = None
                    raise
            if created:
                log.info("attached readings partition(s) %s", ", ".join(created))
            self._months_ready.add(index)

    def _store(
        self,
        conn: db.Connection,
        groups: dict[tuple[str, int], list[VerifiedRow]],
        firsts: list[VerifiedRow],
        devices: dict[str, _Device],
        batch_into: str | None = None,
    ) -> StoreResult:
        cur = conn.cursor()
        ids = sorted(devices)
        cur.execute(
            _UPSERT_DEVICES,
            (
                ids,
                [devices[d].top.certificate_sha256 for d in ids],
                [devices[d].first_seen for d in ids],
                [devices[d].last_seen for d in ids],
            ),
        )
        state: dict[str, tuple[int, str]] = {d: (s, h) for d, s, h in cur.fetchall()}

        with cur.copy(_COPY_INCOMING) as copy:
            copy.set_types(_COPY_TYPES)
            for r in firsts:
                copy.write_row(r.copy_row())
        base = self._open_batch_size(cur, batch_into) if batch_into else None
        if base is None:
            batch_into = None
            cur.execute(_INSERT_NEW)
        else:
            cur.execute(_INSERT_NEW_INTO_BATCH, {"batch": batch_into, "base": base})
        stored = cur.fetchall()
        new_keys = {(d, s) for d, s in stored}
        if len(new_keys) != len(stored):  # what readings' own primary key refused (0019)
            raise StoreError("the insert stored a reading key twice; nothing was stored")
        new = [r for r in firsts if (r.device_id, r.seq) in new_keys]
        if base is not None and new:
            stamps = [r.ts for r in new]
            cur.execute(
                _GROW_OPEN_BATCH,
                {"n": len(new), "first": min(stamps), "last": max(stamps), "batch": batch_into},
            )

        # Classify everything that was not stored by this call.
        on_record: dict[tuple[str, int], str] = {}
        if len(new) < len(firsts):
            old = [r for r in firsts if (r.device_id, r.seq) not in new_keys]
            cur.execute(_KEY_HASHES, ([r.device_id for r in old], [r.seq for r in old]))
            on_record = {(d, s): h for d, s, h in cur.fetchall()}
        duplicates = 0
        conflicts: list[ReadingConflict] = []
        for key, rows in groups.items():
            if key in new_keys:
                stored_hash = rows[0].reading_hash
                rest = rows[1:]
            else:
                # Not inserted: the primary key (the only unique key) is taken, so its row is on
                # record, committed (ON CONFLICT waited for any other transaction to end), and
                # keys are never deleted.
                stored_hash = on_record[key]
                rest = rows
            for row in rest:
                if row.reading_hash == stored_hash:
                    duplicates += 1
                else:
                    conflicts.append(ReadingConflict(row, stored_hash))

        gaps, breaks, advances = self._check_chains(cur, new, state)
        self._track_holes(cur, new, state, gaps)
        found = gaps + breaks
        if found:
            cur.execute(
                _INSERT_GAPS,
                (
                    [g.device_id for g in found],
                    [g.kind for g in found],
                    [g.after_seq for g in found],
                    [g.next_seq for g in found],
                    [g.expected_prev for g in found],
                    [g.actual_prev for g in found],
                ),
            )
        if advances:
            cur.execute(
                _ADVANCE_DEVICES,
                (
                    [r.device_id for r in advances],
                    [r.seq for r in advances],
                    [r.reading_hash for r in advances],
                    [r.certificate_sha256 for r in advances],
                ),
            )
        return StoreResult(
            [r.key for r in new],
            duplicates,
            conflicts,
            gaps,
            breaks,
            batch_id=batch_into,
            batch_size=(base or 0) + len(new),
        )

    @staticmethod
    def _open_batch_size(cur: psycopg.Cursor[Any], batch_id: str) -> int | None:
        """Lock open batch ``batch_id`` (opening it if new) and return its size; ``None`` if it
        has been sealed. The lock lasts until commit: a seal waits for this append."""
        if not batch_id or "\x00" in batch_id:
            raise ValueError("batch_id must be a non-empty string")
        while True:
            row = cur.execute(
                "SELECT size FROM open_batches WHERE batch_id = %s FOR UPDATE", (batch_id,)
            ).fetchone()
            if row is not None:
                return int(row[0])
            if cur.execute("SELECT 1 FROM batches WHERE batch_id = %s", (batch_id,)).fetchone():
                return None
            # Another writer opening the same id at once: it wins, and this one locks its row.
            opened = cur.execute(
                "INSERT INTO open_batches (batch_id) VALUES (%s) ON CONFLICT DO NOTHING"
                " RETURNING size",
                (batch_id,),
            ).fetchone()
            if opened is not None:
                return 0

    @staticmethod
    def _track_holes(
        cur: psycopg.Cursor[Any],
        new: list[VerifiedRow],
        state: dict[str, tuple[int, str]],
        gaps: list[ChainGap],
    ) -> None:
        """Keep missing_readings right: late arrivals (seq at or below the device's last_seq
        before this batch) shrink or split the hole they fall into; each new gap is a hole."""
        late = [r for r in new if r.seq <= state[r.device_id][0]]
        pieces: list[tuple[str, int, int, datetime | None]] = []
        if late:
            cur.execute(_HOLES_HIT, ([r.device_id for r in late], [r.seq for r in late]))
            hit = cur.fetchall()
            if hit:
                filled: dict[str, set[int]] = {}
                for r in late:
                    filled.setdefault(r.device_id, set()).add(r.seq)
                cur.execute(_DELETE_HOLES, ([h[0] for h in hit], [h[1] for h in hit]))
                pieces.extend(_split_holes(hit, filled))
        pieces.extend((g.device_id, g.after_seq + 1, g.next_seq - 1, None) for g in gaps)
        if pieces:
            cur.execute(
                _INSERT_HOLES,
                (
                    [p[0] for p in pieces],
                    [p[1] for p in pieces],
                    [p[2] for p in pieces],
                    [p[3] for p in pieces],
                ),
            )

    @staticmethod
    def _check_chains(
        cur: psycopg.Cursor[Any], new: list[VerifiedRow], state: dict[str, tuple[int, str]]
    ) -> tuple[list[ChainGap], list[ChainGap], list[VerifiedRow]]:
        """Gaps and breaks around the newly stored rows, and each device's new top reading.

        Every link (s-1 -> s) is checked once, when the later of its two readings arrives: the
        predecessor's hash comes from the batch, the device state (s-1 == last_seq) or, for a
        late arrival, reading_keys; a late arrival's stored successor is checked too.
        ``last_seq`` is the highest seq ever stored, so nothing above it needs looking up.
        """
        by_device: dict[str, list[VerifiedRow]] = {}
        for r in new:  # sorted by (device_id, seq)
            by_device.setdefault(r.device_id, []).append(r)
        want_pred: list[tuple[str, int]] = []
        want_succ: list[tuple[str, int]] = []
        for device, rows in by_device.items():
            last_seq = state[device][0]
            seqs = {r.seq for r in rows}
            for r in rows:
                before = r.seq - 1
                if 1 <= before < last_seq and before not in seqs:
                    want_pred.append((device, before))
                if r.seq + 1 <= last_seq and r.seq + 1 not in seqs:
                    want_succ.append((device, r.seq + 1))
        pred_hash: dict[tuple[str, int], str] = {}
        succ_prev: dict[tuple[str, int], str] = {}
        if want_pred:
            cur.execute(_KEY_HASHES, ([d for d, _ in want_pred], [s for _, s in want_pred]))
            pred_hash = {(d, s): h for d, s, h in cur.fetchall()}
        if want_succ:
            cur.execute(_SUCCESSOR_PREVS, ([d for d, _ in want_succ], [s for _, s in want_succ]))
            succ_prev = {(d, s): p for d, s, p in cur.fetchall()}

        gaps: list[ChainGap] = []
        breaks: list[ChainGap] = []
        advances: list[VerifiedRow] = []
        for device, rows in by_device.items():
            last_seq, last_hash = state[device]
            hash_of = {r.seq: r.reading_hash for r in rows}
            high = last_seq
            for r in rows:
                if r.seq > high:
                    if r.seq > high + 1:
                        gaps.append(ChainGap(device, "gap", high, r.seq))
                    high = r.seq
                before = r.seq - 1
                expected: str | None
                if r.seq == 1:
                    expected = GENESIS_PREV
                elif before in hash_of:
                    expected = hash_of[before]
                elif before == last_seq:
                    expected = last_hash
                else:
                    expected = pred_hash.get((device, before))  # None: not received (yet)
                if expected is not None and r.prev_hash != expected:
                    breaks.append(ChainGap(device, "break", before, r.seq, expected, r.prev_hash))
                after = succ_prev.get((device, r.seq + 1))
                if after is not None and r.seq + 1 not in hash_of and after != r.reading_hash:
                    breaks.append(
                        ChainGap(device, "break", r.seq, r.seq + 1, r.reading_hash, after)
                    )
            if rows[-1].seq > last_seq:
                advances.append(rows[-1])
        return gaps, breaks, advances

    def reading(self, device_id: str, seq: int) -> StoredReading | None:
        """One stored reading by its key.

        reading_keys gives its ts; as an InitPlan parameter that prunes readings to a single
        partition when the query starts (a join on ts would probe every partition).
        """

        def work(conn: db.Connection) -> StoredReading | None:
            row = conn.execute(
                f"SELECT {_SELECT_READING} FROM readings r"
                " WHERE r.device_id = %(d)s AND r.seq = %(s)s AND r.ts = (SELECT k.ts FROM"
                " reading_keys k WHERE k.device_id = %(d)s AND k.seq = %(s)s)",
                {"d": device_id, "s": seq},
            ).fetchone()
            return None if row is None else _stored_reading(row)

        return self._transaction(work)

    def readings_in_batch(self, batch_id: str) -> list[StoredReading]:
        """A batch's readings in Merkle leaf order (batch_index); raises UnknownBatchError."""

        def work(conn: db.Connection) -> list[StoredReading]:
            span = conn.execute(
                "SELECT first_ts, last_ts FROM batches WHERE batch_id = %s", (batch_id,)
            ).fetchone()
            if span is None:
                raise UnknownBatchError(f"no batch {batch_id!r}")
            rows = conn.execute(
                f"SELECT {_SELECT_READING} FROM readings r"
                " WHERE r.batch_id = %s AND r.ts BETWEEN %s AND %s ORDER BY r.batch_index",
                (batch_id, *span),
            ).fetchall()
            return [_stored_reading(row) for row in rows]

        return self._transaction(work)

    def batch_leaf_hashes(self, batch_id: str) -> list[str]:
        """A batch's reading hashes in Merkle leaf order: enough to rebuild its tree, without
        fetching the envelopes; raises UnknownBatchError."""
        return self._batch_column(BATCH_LEAVES, batch_id)

    def batch_envelopes(self, batch_id: str) -> list[bytes]:
        """A batch's envelopes in Merkle leaf order: its IPFS object's lines, without building
        a reading per row as :meth:`readings_in_batch` does (which cost the gateway about 17 µs
        a reading); raises UnknownBatchError."""
        # Binary results: as text, the server hex-encodes every envelope and the client decodes
        # it again (about 2 µs a reading together, decision 0042).
        return [bytes(e) for e in self._batch_column(_BATCH_ENVELOPES, batch_id, binary=True)]

    def _batch_column(self, query: str, batch_id: str, *, binary: bool = False) -> list[Any]:
        """One column of a batch's readings, in leaf order (``query`` takes the batch id and its
        time span, which prunes the partitions read); ``binary``: in PostgreSQL's binary format."""

        def work(conn: db.Connection) -> list[Any]:
            span = conn.execute(
                "SELECT first_ts, last_ts FROM batches WHERE batch_id = %s", (batch_id,)
            ).fetchone()
            if span is None:
                raise UnknownBatchError(f"no batch {batch_id!r}")
            rows = conn.execute(query, (batch_id, *span), binary=binary).fetchall()
            return [row[0] for row in rows]

        return self._transaction(work)

    def unbatched(
        self, limit: int = 10_000, *, received_before: datetime | None = None
    ) -> list[ReadingKey]:
        """Stored readings in no batch yet, oldest first: what a restarted batcher must seal.

        ``received_before`` leaves out what arrived since (a running batcher still holds those).
        """

        def work(conn: db.Connection) -> list[ReadingKey]:
            rows = conn.execute(
                "SELECT device_id, seq, reading_hash FROM readings"
                " WHERE batch_id IS NULL AND (%s::timestamptz IS NULL OR received_at < %s)"
                " ORDER BY received_at, device_id, seq LIMIT %s",
                (received_before, received_before, limit),
            ).fetchall()
            return [ReadingKey(*row) for row in rows]

        return self._transaction(work)

    def device(self, device_id: str) -> DeviceState | None:
        def work(conn: db.Connection) -> DeviceState | None:
            row = conn.execute(
                "SELECT device_id, certificate_sha256, first_seen, last_seen, last_seq, last_hash"
                " FROM devices WHERE device_id = %s",
                (device_id,),
            ).fetchone()
            return None if row is None else DeviceState(*row)

        return self._transaction(work)

    def chain_gaps(self, device_id: str) -> list[ChainGap]:
        """The gaps and breaks recorded for a device, by position in its chain."""

        def work(conn: db.Connection) -> list[ChainGap]:
            rows = conn.execute(
                "SELECT device_id, kind, after_seq, next_seq, expected_prev, actual_prev"
                " FROM chain_gaps WHERE device_id = %s ORDER BY after_seq, next_seq, kind",
                (device_id,),
            ).fetchall()
            return [ChainGap(*row) for row in rows]

        return self._transaction(work)

    # -- acknowledgements and dropped ranges

    def record_dropped(self, rows: Sequence[DroppedRow]) -> int:
        """Store verified dropped-range reports (each once, by hash); returns how many were new.

        The readings a report covers count as lost only where they are also a hole; a report
        may arrive before or after the hole is seen, and stored readings it names stay stored.
        """
        if not rows:
            return 0
        params = (
            [r.report_hash for r in rows],
            [r.device_id for r in rows],
            [r.first_seq for r in rows],
            [r.last_seq for r in rows],
            [r.reason for r in rows],
            [r.reported_at for r in rows],
            [r.received_at for r in rows],
            [r.certificate_sha256 for r in rows],
            [r.envelope for r in rows],
        )
        return self._transaction(lambda conn: conn.execute(_INSERT_DROPPED, params).rowcount)

    def ack_states(self, device_ids: Iterable[str]) -> list[AckState]:
        """What to acknowledge to each of ``device_ids`` (devices never stored are left out)."""
        ids = sorted(set(device_ids))
        if not ids:
            return []

        def work(conn: db.Connection) -> list[AckState]:
            rows = conn.execute(_ACK_STATES, (ids,)).fetchall()
            return [AckState(d, int(n), _seq_ranges(m)) for d, n, m in rows]

        return self._transaction(work)

    def gap_state(self, device_id: str) -> GapState:
        """A device's holes, split into missing (asked for again) and lost (reported)."""

        def work(conn: db.Connection) -> GapState:
            row = conn.execute(_GAP_STATE, (device_id,)).fetchone()
            if row is None:
                return GapState([], [])
            return GapState(_seq_ranges(row[0]), _seq_ranges(row[1]))

        return self._transaction(work)

    def devices_with_holes(self, seen_since: datetime, limit: int = 1000) -> list[str]:
        """Devices seen since ``seen_since`` with a hole in their sequence (missing or lost)."""

        def work(conn: db.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT d.device_id FROM devices d WHERE d.last_seen >= %s AND EXISTS"
                " (SELECT 1 FROM missing_readings m WHERE m.device_id = d.device_id)"
                " ORDER BY d.device_id LIMIT %s",
                (seen_since, limit),
            ).fetchall()
            return [row[0] for row in rows]

        return self._transaction(work)

    def recent_certificates(self, seen_since: datetime, limit: int = 10_000) -> list[str]:
        """The certificate fingerprint recorded for each device seen since ``seen_since`` (its
        first), most recent first: what a gateway's registry cache loads at start."""

        def work(conn: db.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT certificate_sha256 FROM devices WHERE last_seen >= %s"
                " ORDER BY last_seen DESC LIMIT %s",
                (seen_since, limit),
            ).fetchall()
            return [row[0] for row in rows]

        return self._transaction(work)

    # -- quarantine

    def quarantine(self, rows: Sequence[QuarantineRow]) -> list[int]:
        """Insert rejected messages in one statement; returns their ids, in order."""
        if not rows:
            return []
        params = (
            [r.received_at for r in rows],
            [_clean_text(r.topic) for r in rows],
            [None if r.device_id is None else _clean_text(r.device_id) for r in rows],
            [_clean_text(r.reason) for r in rows],
            [_clean_text(r.detail) for r in rows],
            [bytes(r.raw) for r in rows],
        )

        def work(conn: db.Connection) -> list[int]:
            return [i for (i,) in conn.execute(_INSERT_QUARANTINE, params).fetchall()]

        return self._transaction(work)

    # -- batches and the outbox

    def seal_batch(
        self,
        batch_id: str,
        keys: Sequence[ReadingKey],
        root: str,
        *,
        sealed_at: datetime | None = None,
    ) -> BatchRecord:
        """Seal a batch: its readings get ``batch_id`` and their leaf index (position in
        ``keys``), the batch is recorded as ``sealed`` with count, time range and device count,
        and it is queued in ``anchor_outbox`` -- all in one transaction.

        ``keys`` are the Merkle leaves in order and ``root`` their Merkle root (computed by the
        caller); each key's hash must be the stored one. Sealing the same id again with the same
        root and count returns the stored batch; anything else that contradicts what is stored
        raises :class:`BatchConflictError` (and changes nothing).
        """
        if not batch_id or "\x00" in batch_id:
            raise ValueError("batch_id must be a non-empty string")
        if not _HEX64.fullmatch(root):
            raise ValueError("root must be 64 lowercase hex digits")
        if not keys:
            raise ValueError("a batch needs at least one reading")
        if len({(k.device_id, k.seq) for k in keys}) != len(keys):
            raise ValueError("keys repeat a (device_id, seq)")

        def work(conn: db.Connection) -> BatchRecord:
            row = conn.execute(
                f"SELECT {_BATCH_COLUMNS} FROM batches WHERE batch_id = %s FOR UPDATE",
                (batch_id,),
            ).fetchone()
            if row is not None:
                existing = _batch(row)
                if existing.root == root and existing.count == len(keys):
                    return existing
                raise BatchConflictError(
                    f"batch {batch_id!r} is sealed with root {existing.root} and "
                    f"{existing.count} readings"
                )
            members = conn.execute(
                _BATCH_MEMBERS, ([k.device_id for k in keys], [k.seq for k in keys])
            ).fetchall()
            bad = [k for k, m in zip(keys, members, strict=True) if m[2] != k.reading_hash]
            if bad:
                raise BatchConflictError(
                    f"{len(bad)} key(s) of batch {batch_id!r} are not stored with that hash", bad
                )
            stamps = [m[3] for m in members]
            conn.execute(
                "INSERT INTO batches (batch_id, sealed_at, count, first_ts, last_ts, devices,"
                " root) VALUES (%s, coalesce(%s, now()), %s, %s, %s, %s, %s)",
                (
                    batch_id,
                    sealed_at,
                    len(keys),
                    min(stamps),
                    max(stamps),
                    len({k.device_id for k in keys}),
                    root,
                ),
            )
            params = ([k.device_id for k in keys], [k.seq for k in keys], stamps)
            assigned = conn.execute(_ASSIGN_BATCH, (batch_id, *params)).rowcount
            if assigned != len(keys):
                taken = conn.execute(_ALREADY_BATCHED, (*params, batch_id)).fetchall()
                raise BatchConflictError(
                    f"{len(keys) - assigned} reading(s) of batch {batch_id!r} already belong to "
                    "another batch",
                    [ReadingKey(*t) for t in taken],
                )
            conn.execute(
                "INSERT INTO anchor_outbox (batch_id, next_attempt_at)"
                " SELECT batch_id, sealed_at FROM batches WHERE batch_id = %s",
                (batch_id,),
            )
            return self._get_batch(conn, batch_id)

        return self._transaction(work)

    #: The plan's name for sealing: membership, the batch row and its outbox entry are one
    #: transaction, so there is no separate "assign" step to expose.
    assign_batch = seal_batch

    def seal_open_batch(
        self, batch_id: str, *, sealed_at: datetime | None = None
    ) -> BatchRecord | None:
        """Seal an open batch (:meth:`store_verified` ``batch_into``) as it stands: its Merkle
        root over its leaves in batch_index order, the batch row and its outbox entry, in one
        transaction that also closes it to appends. Idempotent: a batch sealed already is
        returned as it is; ``None`` if no reading ever joined it.
        """

        def work(conn: db.Connection) -> BatchRecord | None:
            row = conn.execute(
                "SELECT size, first_ts, last_ts FROM open_batches WHERE batch_id = %s FOR UPDATE",
                (batch_id,),
            ).fetchone()
            if row is None:
                sealed = conn.execute(
                    f"SELECT {_BATCH_COLUMNS} FROM batches WHERE batch_id = %s", (batch_id,)
                ).fetchone()
                return None if sealed is None else _batch(sealed)
            size, first_ts, last_ts = row
            conn.execute("DELETE FROM open_batches WHERE batch_id = %s", (batch_id,))
            if size == 0:
                return None
            leaves = conn.execute(
                "SELECT reading_hash, device_id FROM readings"
                " WHERE batch_id = %s AND ts BETWEEN %s AND %s ORDER BY batch_index",
                (batch_id, first_ts, last_ts),
            ).fetchall()
            if len(leaves) != size:
                raise StoreError(
                    f"open batch {batch_id!r} records {size} readings but holds {len(leaves)}"
                )
            root = MerkleTree([bytes.fromhex(h) for h, _ in leaves]).root.hex()
            conn.execute(
                "INSERT INTO batches (batch_id, sealed_at, count, first_ts, last_ts, devices,"
                " root) VALUES (%s, coalesce(%s, now()), %s, %s, %s, %s, %s)",
                (batch_id, sealed_at, size, first_ts, last_ts, len({d for _, d in leaves}), root),
            )
            conn.execute(
                "INSERT INTO anchor_outbox (batch_id, next_attempt_at)"
                " SELECT batch_id, sealed_at FROM batches WHERE batch_id = %s",
                (batch_id,),
            )
            return self._get_batch(conn, batch_id)

        return self._transaction(work)

    def open_batches_due(self, opened_before: timedelta, limit: int = 100) -> list[str]:
        """Open batches opened more than ``opened_before`` ago (database clock), oldest first:
        what a batcher seals when their gateway has gone quiet or died."""

        def work(conn: db.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT batch_id FROM open_batches WHERE opened_at < now() - %s"
                " ORDER BY opened_at LIMIT %s",
                (opened_before, limit),
            ).fetchall()
            return [row[0] for row in rows]

        return self._transaction(work)

    def batch(self, batch_id: str) -> BatchRecord | None:
        def work(conn: db.Connection) -> BatchRecord | None:
            row = conn.execute(
                f"SELECT {_BATCH_COLUMNS} FROM batches WHERE batch_id = %s", (batch_id,)
            ).fetchone()
            return None if row is None else _batch(row)

        return self._transaction(work)

    def _get_batch(self, conn: db.Connection, batch_id: str) -> BatchRecord:
        row = conn.execute(
            f"SELECT {_BATCH_COLUMNS} FROM batches WHERE batch_id = %s FOR UPDATE", (batch_id,)
        ).fetchone()
        if row is None:
            raise UnknownBatchError(f"no batch {batch_id!r}")
        return _batch(row)

    def mark_stored(self, batch_id: str, cid: str) -> BatchRecord:
        """sealed -> stored: the batch's envelopes are on IPFS under ``cid``."""
        if not cid or "\x00" in cid:
            raise ValueError("cid must be a non-empty string")

        def work(conn: db.Connection) -> BatchRecord:
            batch = self._get_batch(conn, batch_id)
            if batch.state == "sealed":
                row = conn.execute(
                    "UPDATE batches SET state = 'stored', ipfs_cid = %s WHERE batch_id = %s"
                    f" RETURNING {_BATCH_COLUMNS}",
                    (cid, batch_id),
                ).fetchone()
                assert row is not None
                return _batch(row)
            if batch.ipfs_cid != cid:
                raise BatchStateError(
                    f"batch {batch_id!r} is {batch.state} with CID {batch.ipfs_cid}, not {cid}"
                )
            return batch

        return self._transaction(work)

    def mark_anchored(
        self,
        batch_id: str,
        tx_id: str,
        block_number: int,
        *,
        anchored_at: datetime | None = None,
    ) -> BatchRecord:
        """stored -> anchored: the root is on the ledger; the batch leaves the outbox."""
        if not tx_id or "\x00" in tx_id:
            raise ValueError("tx_id must be a non-empty string")
        if block_number < 0:
            raise ValueError("block_number must not be negative")

        def work(conn: db.Connection) -> BatchRecord:
            batch = self._get_batch(conn, batch_id)
            if batch.state == "sealed":
                raise BatchStateError(f"batch {batch_id!r} is not on IPFS yet (mark_stored)")
            if batch.state == "anchored":
                if (batch.tx_id, batch.block_number) != (tx_id, block_number):
                    raise BatchStateError(
                        f"batch {batch_id!r} is anchored by {batch.tx_id} in block "
                        f"{batch.block_number}, not {tx_id} in block {block_number}"
                    )
            else:
                row = conn.execute(
                    "UPDATE batches SET state = 'anchored', tx_id = %s, block_number = %s,"
                    " anchored_at = coalesce(%s, now()) WHERE batch_id = %s"
                    f" RETURNING {_BATCH_COLUMNS}",
                    (tx_id, block_number, anchored_at, batch_id),
                ).fetchone()
                assert row is not None
                batch = _batch(row)
            conn.execute("DELETE FROM anchor_outbox WHERE batch_id = %s", (batch_id,))
            return batch

        return self._transaction(work)

    def outbox_due(
        self,
        now: datetime | None = None,
        limit: int = 100,
        *,
        lease: timedelta = timedelta(minutes=5),
    ) -> list[OutboxItem]:
        """Claim up to ``limit`` outbox entries due at ``now`` (default: the database's clock).

        A claim pushes the entry's next attempt ``lease`` ahead and counts an attempt, so
        concurrent workers never get the same batch while the lease runs; a worker that dies
        simply lets it expire. Oldest due first.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")

        def work(conn: db.Connection) -> list[OutboxItem]:
            rows = conn.execute(
                _CLAIM_OUTBOX, {"now": now, "limit": limit, "lease": lease}
            ).fetchall()
            items = [OutboxItem(_batch(row[3:]), row[0], row[1], row[2]) for row in rows]
            return sorted(items, key=lambda i: (i.batch.sealed_at, i.batch.batch_id))

        return self._transaction(work)

    def backlog(self, silent_after: timedelta) -> Backlog:
        """What the gateway's metrics report from the shared store (database clock): the
        anchor outbox's depth, the age of the oldest batch not yet anchored, and how many
        devices seen in the last day have been silent for ``silent_after``."""

        def work(conn: db.Connection) -> Backlog:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM anchor_outbox),"
                " (SELECT coalesce(extract(epoch FROM now() - min(sealed_at)), 0)"
                "    FROM batches WHERE state <> 'anchored'),"
                " (SELECT count(*) FROM devices WHERE last_seen < now() - %s"
                "    AND last_seen > now() - interval '1 day')",
                (silent_after,),
            ).fetchone()
            assert row is not None
            return Backlog(int(row[0]), float(row[1]), int(row[2]))

        return self._transaction(work)

    def outbox_failed(self, batch_id: str, error: str, next_attempt_at: datetime) -> bool:
        """Record a failed attempt and when to try again; False if the batch is not queued
        (already anchored, or unknown)."""

        def work(conn: db.Connection) -> bool:
            cur = conn.execute(
                "UPDATE anchor_outbox SET last_error = %s, next_attempt_at = %s"
                " WHERE batch_id = %s",
                (_clean_text(error), next_attempt_at, batch_id),
            )
            return cur.rowcount == 1

        return self._transaction(work)
