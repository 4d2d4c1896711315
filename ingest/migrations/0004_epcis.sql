-- 0004_epcis: EPCIS 2.0 events captured through the API or mapped from readings, the capture
-- jobs the REST binding reports on, and the batches that anchor event hashes on the ledger.
-- Layout of an event batch on IPFS and of event proofs: docs/epcis.md.

-- Event batches: sealed (root known) -> stored (on IPFS) -> anchored (on Fabric). Batch ids
-- start with "ev-" so they never collide with reading batches on the ledger.
CREATE TABLE epcis_batches (
    batch_id     text        PRIMARY KEY CHECK (batch_id LIKE 'ev-%'),
    sealed_at    timestamptz NOT NULL,
    count        integer     NOT NULL CHECK (count > 0),
    first_time   timestamptz NOT NULL,
    last_time    timestamptz NOT NULL,
    root         text        NOT NULL CHECK (root ~ '^[0-9a-f]{64}$'),
    ipfs_cid     text,
    state        text        NOT NULL DEFAULT 'sealed'
                             CHECK (state IN ('sealed', 'stored', 'anchored')),
    tx_id        text,
    block_number bigint      CHECK (block_number >= 0),
    anchored_at  timestamptz,
    CHECK (first_time <= last_time),
    CHECK (state = 'sealed' OR ipfs_cid IS NOT NULL),
    CHECK ((state = 'anchored') =
           (tx_id IS NOT NULL AND block_number IS NOT NULL AND anchored_at IS NOT NULL))
);

-- Durable queue of event batches not yet anchored (inserted with the batch, deleted when the
-- batch is anchored); the anchoring loop claims due rows with FOR UPDATE SKIP LOCKED.
CREATE TABLE epcis_anchor_outbox (
    batch_id        text        PRIMARY KEY REFERENCES epcis_batches (batch_id) ON DELETE CASCADE,
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text
);
CREATE INDEX epcis_anchor_outbox_due ON epcis_anchor_outbox (next_attempt_at);

-- One row per event. event_json holds the exact bytes stored (the event as captured, with the
-- document's @context copied in so each event stands alone); event_hash its CBV 2.0 hash URI,
-- hash_hex the 64 hex digits. event_id is the eventID, or the hash URI for an event without one
-- -- or for an event whose eventID was already taken by different content (GS1's own examples
-- give one eventID to two different events). Different eventIDs may share a hash (CBV 2.0
-- ignores comments and error declarations), so event_hash is indexed, not unique.
-- seq orders events by capture and is the page cursor of queries.
CREATE TABLE epcis_events (
    seq          bigserial   UNIQUE,
    event_id     text        PRIMARY KEY,
    event_type   text        NOT NULL,
    event_time   timestamptz NOT NULL,
    record_time  timestamptz NOT NULL DEFAULT now(),
    event_json   bytea       NOT NULL,
    event_hash   text        NOT NULL CHECK (event_hash ~ '^ni:///sha-256;[0-9a-f]{64}\?ver=CBV2\.0$'),
    hash_hex     text        NOT NULL CHECK (hash_hex ~ '^[0-9a-f]{64}$'),
    epcs         text[]      NOT NULL DEFAULT '{}',
    direct_epcs  text[]      NOT NULL DEFAULT '{}',
    biz_step     text,
    read_point   text,
    biz_location text,
    disposition  text,
    source       text        NOT NULL,
    capture_id   text,
    batch_id     text        REFERENCES epcis_batches (batch_id),
    batch_index  integer     CHECK (batch_index >= 0),
    CHECK ((batch_id IS NULL) = (batch_index IS NULL))
);
CREATE INDEX epcis_events_hash ON epcis_events (event_hash);
CREATE INDEX epcis_events_time ON epcis_events (event_time);
CREATE INDEX epcis_events_record ON epcis_events (record_time);
CREATE INDEX epcis_events_epcs ON epcis_events USING gin (epcs);
CREATE INDEX epcis_events_biz_step ON epcis_events (biz_step);
CREATE INDEX epcis_events_read_point ON epcis_events (read_point);
CREATE INDEX epcis_events_biz_location ON epcis_events (biz_location);
CREATE INDEX epcis_events_batch ON epcis_events (batch_id, batch_index) WHERE batch_id IS NOT NULL;
CREATE INDEX epcis_events_unbatched ON epcis_events (seq) WHERE batch_id IS NULL;

-- Capture jobs of the REST binding (GET /epcis/capture/{captureID}).
CREATE TABLE epcis_capture_jobs (
    capture_id  text        PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    running     boolean     NOT NULL DEFAULT true,
    success     boolean,
    captured    integer     NOT NULL DEFAULT 0,
    errors      jsonb       NOT NULL DEFAULT '[]',
    source      text        NOT NULL
);
