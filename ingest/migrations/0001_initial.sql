-- 0001_initial: what the gateway writes and the anchoring worker drains.
--
-- Applied by ingest/schema.py into the first schema of the connection's search_path (so a test
-- can migrate into a schema of its own). Names are never schema-qualified here.
--
-- Lines between "--#if timescaledb" / "--#else" / "--#endif" (or "--#if native") are kept only
-- when the condition holds: TimescaleDB where the server has it (a hypertable), native
-- declarative RANGE partitioning by month otherwise (docs/decisions/0007-reading-storage.md).
-- Hashes, roots and certificate fingerprints are lowercase hex SHA-256 (64 characters).

-- Per-device chain state: what the next reading's seq and prev are checked against. last_seq
-- and last_hash move forward only, in the same transaction as the readings that move them.
-- (0, 64 zeros) is the state before a device's first reading, so seq 1 with the genesis prev
-- follows it like any other reading.
CREATE TABLE devices (
    device_id          text        PRIMARY KEY,
    certificate_sha256 text        NOT NULL CHECK (certificate_sha256 ~ '^[0-9a-f]{64}$'),
    first_seen         timestamptz NOT NULL,
    last_seen          timestamptz NOT NULL,
    last_seq           bigint      NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    last_hash          text        NOT NULL DEFAULT repeat('0', 64)
                                   CHECK (last_hash ~ '^[0-9a-f]{64}$')
);

-- Merkle batches: sealed (root known, envelopes not yet on IPFS) -> stored (ipfs_cid known)
-- -> anchored (root, CID, count and time range on Fabric: tx_id, block_number).
CREATE TABLE batches (
    batch_id     text        PRIMARY KEY,
    sealed_at    timestamptz NOT NULL,
    count        integer     NOT NULL CHECK (count > 0),
    first_ts     timestamptz NOT NULL,
    last_ts      timestamptz NOT NULL,
    devices      integer     NOT NULL CHECK (devices > 0),
    root         text        NOT NULL CHECK (root ~ '^[0-9a-f]{64}$'),
    ipfs_cid     text,
    state        text        NOT NULL DEFAULT 'sealed'
                             CHECK (state IN ('sealed', 'stored', 'anchored')),
    tx_id        text,
    block_number bigint      CHECK (block_number >= 0),
    anchored_at  timestamptz,
    CHECK (first_ts <= last_ts),
    CHECK (state = 'sealed' OR ipfs_cid IS NOT NULL),
    CHECK ((state = 'anchored') =
           (tx_id IS NOT NULL AND block_number IS NOT NULL AND anchored_at IS NOT NULL))
);
CREATE INDEX batches_pending ON batches (sealed_at) WHERE state <> 'anchored';

-- The durable queue the anchoring worker drains: one row per batch not yet anchored, inserted
-- in the transaction that seals the batch and deleted in the one that marks it anchored.
-- attempts counts how often a worker claimed it (ReadingStore.outbox_due).
CREATE TABLE anchor_outbox (
    batch_id        text        PRIMARY KEY REFERENCES batches (batch_id) ON DELETE CASCADE,
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text
);
CREATE INDEX anchor_outbox_due ON anchor_outbox (next_attempt_at);

-- Uniqueness of (device_id, seq) and of reading_hash across the whole partitioned readings
-- table. A unique index on a partitioned table must contain the partition key (ts), so
-- readings' own primary key (device_id, seq, ts) would accept the same (device, seq) twice
-- with two different device timestamps -- exactly what a replayed or forged reading looks like.
-- This small, unpartitioned table is inserted in the same transaction as readings (INSERT ...
-- ON CONFLICT DO NOTHING first; only the rows it accepts are copied into readings), so its
-- primary key is the global constraint. It also maps (device_id, seq) to ts, which lets a
-- lookup by key prune readings to one partition. Keys are kept for as long as readings are.
CREATE TABLE reading_keys (
    device_id    text        NOT NULL,
    seq          bigint      NOT NULL CHECK (seq >= 1),
    ts           timestamptz NOT NULL,
    reading_hash text        NOT NULL CHECK (reading_hash ~ '^[0-9a-f]{64}$'),
    PRIMARY KEY (device_id, seq),
    UNIQUE (reading_hash)
);

-- Every verified reading, with the exact signed bytes. ts is the device's timestamp (the
-- partition key); received_at is when the gateway got it. batch_id / batch_index (the Merkle
-- leaf position) are set when the reading's batch is sealed.
CREATE TABLE readings (
    device_id          text        NOT NULL,
    seq                bigint      NOT NULL CHECK (seq >= 1),
    ts                 timestamptz NOT NULL,
    received_at        timestamptz NOT NULL,
    kind               text        NOT NULL CHECK (kind IN ('rfid', 'environment', 'event')),
    data               jsonb       NOT NULL,
    loc                text,
    prev_hash          text        NOT NULL,
    reading_hash       text        NOT NULL,
    envelope           bytea       NOT NULL,
    certificate_sha256 text        NOT NULL,
    batch_id           text        REFERENCES batches (batch_id),
    batch_index        integer     CHECK (batch_index >= 0),
    PRIMARY KEY (device_id, seq, ts),
    CHECK ((batch_id IS NULL) = (batch_index IS NULL))
)
--#if native
PARTITION BY RANGE (ts)
--#endif
;
--#if timescaledb
CREATE EXTENSION IF NOT EXISTS timescaledb;
SELECT create_hypertable('readings', 'ts', chunk_time_interval => INTERVAL '7 days');
--#else
-- Monthly partitions (readings_yYYYYmMM) are attached on demand by ingest.schema
-- .ensure_partitions; whatever has no partition yet lands here, so an insert never fails.
CREATE TABLE readings_default PARTITION OF readings DEFAULT;
--#endif
CREATE INDEX readings_device_ts ON readings (device_id, ts);
CREATE INDEX readings_batch ON readings (batch_id, batch_index) WHERE batch_id IS NOT NULL;
-- Readings stored but not yet in a batch: what a restarted batcher picks up.
CREATE INDEX readings_unbatched ON readings (received_at) WHERE batch_id IS NULL;

-- Holes and breaks in a device's chain. Recorded, never fatal: the readings are stored anyway.
--   gap:   the device's sequence jumped from after_seq to next_seq (readings in between were
--          not received, or not yet: they may still arrive later, e.g. from the edge spool);
--   break: next_seq = after_seq + 1, but reading next_seq's prev (actual_prev) is not the hash
--          of reading after_seq (expected_prev).
CREATE TABLE chain_gaps (
    id            bigserial   PRIMARY KEY,
    device_id     text        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('gap', 'break')),
    after_seq     bigint      NOT NULL CHECK (after_seq >= 0),
    next_seq      bigint      NOT NULL,
    expected_prev text,
    actual_prev   text,
    detected_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (after_seq < next_seq),
    CHECK (kind = 'gap' OR next_seq = after_seq + 1),
    UNIQUE (device_id, kind, after_seq, next_seq)
);

-- Messages the gateway rejected (or the store found to conflict), with the raw bytes as
-- received. device_id is whatever the topic claimed, if anything: it is not trusted.
CREATE TABLE quarantine (
    id          bigserial   PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    topic       text        NOT NULL,
    device_id   text,
    reason      text        NOT NULL,
    detail      text        NOT NULL DEFAULT '',
    raw         bytea       NOT NULL
);
CREATE INDEX quarantine_received ON quarantine (received_at);
CREATE INDEX quarantine_device ON quarantine (device_id, received_at) WHERE device_id IS NOT NULL;
