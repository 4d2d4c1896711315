-- 0006_inspections: inspection reports (PDF) uploaded by inspectors. The report's exact bytes
-- live on IPFS (report_cid); report_sha256 is their SHA-256 (hex), checked again before the
-- bytes are served. Each report is also an EPCIS ObjectEvent (bizStep inspecting) naming the
-- report's hash and CID, so the report is anchored with the event batches (event_id,
-- event_hash: its CBV 2.0 hash URI).
CREATE TABLE inspections (
    inspection_id uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    gtin          text        NOT NULL,
    lot           text        NOT NULL,
    shipment_id   text        REFERENCES shipments (shipment_id),
    inspector     text        NOT NULL,
    result        text        NOT NULL CHECK (result IN ('pass', 'fail')),
    summary       text        NOT NULL DEFAULT '' CHECK (length(summary) <= 4000),
    report_sha256 text        NOT NULL CHECK (report_sha256 ~ '^[0-9a-f]{64}$'),
    report_cid    text        NOT NULL,
    report_size   integer     NOT NULL CHECK (report_size > 0),
    event_id      text        NOT NULL UNIQUE REFERENCES epcis_events (event_id),
    event_hash    text        NOT NULL,
    inspected_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (gtin, lot) REFERENCES lots (gtin, lot)
);
CREATE INDEX inspections_lot ON inspections (gtin, lot, inspected_at);
CREATE INDEX inspections_shipment ON inspections (shipment_id) WHERE shipment_id IS NOT NULL;
