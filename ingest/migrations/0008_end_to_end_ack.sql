-- 0008_end_to_end_ack: what the hub tells devices it has stored, and what it knows is lost
-- (docs/acknowledgement.md, docs/decisions/0014-end-to-end-ack.md).
--
-- Written with IF NOT EXISTS so that applying it to a schema that already has these objects
-- (under another migration number) changes nothing.

-- The holes in each device's sequence: readings first_seq..last_seq (inclusive) have not been
-- stored. A hole is recorded when a device's sequence jumps past it (the same moment chain_gaps
-- records the gap) and shrinks or splits as its readings arrive late, in the transaction that
-- stores them, under the device row's lock; a filled hole has no row. So, for a device, every
-- seq up to devices.last_seq is either stored or inside exactly one hole. The acknowledgement
-- a gateway sends a device is computed from devices.last_seq, these holes and the reports below.
CREATE TABLE IF NOT EXISTS missing_readings (
    device_id   text        NOT NULL,
    first_seq   bigint      NOT NULL CHECK (first_seq >= 1),
    last_seq    bigint      NOT NULL,
    detected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, first_seq),
    CHECK (first_seq <= last_seq)
);

-- A device's signed statement that it no longer has readings first_seq..last_seq (its spool
-- dropped them before the hub acknowledged them: overflow, expiry; or it was asked for readings
-- it has no record of: unavailable). envelope is the report as received (tracehub/dropped.py,
-- docs/dropped-report.md); reported_at is the device's clock in it.
CREATE TABLE IF NOT EXISTS dropped_reports (
    report_hash        text        PRIMARY KEY CHECK (report_hash ~ '^[0-9a-f]{64}$'),
    device_id          text        NOT NULL,
    first_seq          bigint      NOT NULL CHECK (first_seq >= 1),
    last_seq           bigint      NOT NULL,
    reason             text        NOT NULL CHECK (reason IN ('overflow', 'expired', 'unavailable')),
    reported_at        timestamptz NOT NULL,
    received_at        timestamptz NOT NULL DEFAULT now(),
    certificate_sha256 text        NOT NULL CHECK (certificate_sha256 ~ '^[0-9a-f]{64}$'),
    envelope           bytea       NOT NULL,
    CHECK (first_seq <= last_seq)
);
CREATE INDEX IF NOT EXISTS dropped_reports_device ON dropped_reports (device_id, first_seq);

-- Lost readings: the parts of holes that a device's report covers. Everything else in a hole is
-- missing: the hub asks the device for it again. (Overlapping reports give overlapping rows.)
CREATE OR REPLACE VIEW lost_readings AS
SELECT m.device_id,
       greatest(m.first_seq, r.first_seq) AS first_seq,
       least(m.last_seq, r.last_seq)      AS last_seq,
       r.reason,
       r.report_hash
FROM missing_readings m
JOIN dropped_reports r
  ON r.device_id = m.device_id AND r.first_seq <= m.last_seq AND m.first_seq <= r.last_seq;

-- Holes in what was stored before this migration: the gaps between consecutive stored keys
-- (and before a device's first stored seq).
INSERT INTO missing_readings (device_id, first_seq, last_seq)
SELECT device_id, coalesce(previous, 0) + 1, seq - 1
FROM (
    SELECT device_id, seq, lag(seq) OVER (PARTITION BY device_id ORDER BY seq) AS previous
    FROM reading_keys
) AS k
WHERE seq > coalesce(previous, 0) + 1
ON CONFLICT DO NOTHING;
