-- 0017_open_batches: a reading's batch is written when the reading is stored, not afterwards
-- (docs/decisions/0028-ingest-near-the-limits.md).
--
-- A gateway appends what it stores to a batch of its own that is still open: the readings rows
-- are inserted with batch_id and batch_index already set, so sealing no longer rewrites them
-- (an UPDATE of every reading doubled PostgreSQL's work per reading and left a dead row
-- version and index entries behind each one). Sealing an open batch computes its Merkle root from
-- its leaves in batch_index order, inserts the batches row and its anchor_outbox row, and
-- deletes the open_batches row, in one transaction.
--
-- size is the number of readings appended so far (the next batch_index); first_ts / last_ts
-- bound their device timestamps, so reading the leaves prunes readings to those partitions.
-- An append locks the row (SELECT ... FOR UPDATE) for its transaction, so a seal never misses
-- a committed append, and an append never lands in a sealed batch.
CREATE TABLE open_batches (
    batch_id  text        PRIMARY KEY,
    opened_at timestamptz NOT NULL DEFAULT now(),
    size      integer     NOT NULL DEFAULT 0 CHECK (size >= 0),
    first_ts  timestamptz,
    last_ts   timestamptz,
    CHECK ((size = 0) = (first_ts IS NULL)),
    CHECK ((first_ts IS NULL) = (last_ts IS NULL)),
    CHECK (first_ts <= last_ts)
);
CREATE INDEX open_batches_opened ON open_batches (opened_at);

-- readings.batch_id now names an open batch until it is sealed, and the batches row only exists
-- from the seal on, so the foreign key cannot hold in between. The store keeps the invariant
-- instead: every batch_id in readings is in open_batches or in batches, never in both (the seal
-- moves it in one transaction).
ALTER TABLE readings DROP CONSTRAINT IF EXISTS readings_batch_id_fkey;
