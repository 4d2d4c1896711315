-- 0016_customs: classification, duty/VAT rates, the customs broker, trade documents and
-- clearance steps (commerce/customs/, commerce/documents/).
--
-- HS code: the 6-digit Harmonized System subheading of the product (WCO HS 2022); national
-- extensions (EU CN 8 digits / TARIC 10, US HTSUS 10) live in tariff_rates per destination.
ALTER TABLE products ADD COLUMN hs_code text CHECK (hs_code ~ '^[0-9]{6}$');
-- Country of origin of a lot (ISO 3166-1 alpha-2): where the goods were made.
ALTER TABLE lots ADD COLUMN origin_country text CHECK (origin_country ~ '^[A-Z]{2}$');

-- Duty and VAT per destination country and HS subheading, with where and when the figure was
-- read. Rates are percentages of the customs value (duty) and of value + duty (VAT).
-- valuation: the customs value basis of the destination (EU: CIF at the border, US: FOB).
CREATE TABLE tariff_rates (
    destination   text        NOT NULL CHECK (destination ~ '^[A-Z]{2}$'),
    hs6           text        NOT NULL CHECK (hs6 ~ '^[0-9]{6}$'),
    national_code text        NOT NULL CHECK (national_code ~ '^[0-9]{6,10}$'),
    description   text        NOT NULL DEFAULT '',
    duty_pct      numeric(7, 4) NOT NULL CHECK (duty_pct >= 0),
    vat_pct       numeric(7, 4) NOT NULL CHECK (vat_pct >= 0),
    valuation     text        NOT NULL CHECK (valuation IN ('CIF', 'FOB')),
    source        text        NOT NULL CHECK (length(source) BETWEEN 1 AND 500),
    source_date   date        NOT NULL,
    note          text        NOT NULL DEFAULT '',
    imported_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (destination, hs6)
);

-- The customs broker the shipper (or, under DAP/DDP, the buyer) assigns to a shipment.
ALTER TABLE shipments ADD COLUMN customs_broker_org text REFERENCES organisations (org_id);

-- Trade documents: each version's exact PDF and JSON bytes are on IPFS, their SHA-256 named
-- by an anchored EPCIS event (like inspection reports). A correction is a new version that
-- names the one it supersedes; a version is never updated.
CREATE TABLE trade_documents (
    document_id   uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    shipment_id   text        NOT NULL REFERENCES shipments (shipment_id),
    order_id      uuid        NOT NULL REFERENCES orders (order_id),
    kind          text        NOT NULL CHECK (kind IN ('commercial_invoice', 'packing_list',
                                                       'certificate_of_origin')),
    version       integer     NOT NULL CHECK (version > 0),
    languages     text[]      NOT NULL,
    reason        text        NOT NULL DEFAULT '',
    body          jsonb       NOT NULL,
    json_sha256   text        NOT NULL CHECK (json_sha256 ~ '^[0-9a-f]{64}$'),
    json_cid      text        NOT NULL,
    pdf_sha256    text        NOT NULL CHECK (pdf_sha256 ~ '^[0-9a-f]{64}$'),
    pdf_cid       text        NOT NULL,
    pdf_size      integer     NOT NULL CHECK (pdf_size > 0),
    event_id      text        NOT NULL UNIQUE REFERENCES epcis_events (event_id),
    event_hash    text        NOT NULL,
    created_by    text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (shipment_id, kind, version)
);
CREATE FUNCTION trade_documents_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'trade document versions are never changed; issue a correction';
END $$;
CREATE TRIGGER trade_documents_frozen BEFORE UPDATE OR DELETE ON trade_documents
    FOR EACH ROW EXECUTE FUNCTION trade_documents_frozen();

-- Clearance steps a shipment's customs broker records; each is an anchored EPCIS event.
CREATE TABLE clearance_steps (
    id            bigserial   PRIMARY KEY,
    shipment_id   text        NOT NULL REFERENCES shipments (shipment_id),
    step          text        NOT NULL CHECK (step IN ('lodged', 'held_for_inspection',
                                                       'released', 'duties_paid')),
    at            timestamptz NOT NULL,
    note          text        NOT NULL DEFAULT '' CHECK (length(note) <= 2000),
    broker_org    text        NOT NULL REFERENCES organisations (org_id),
    event_id      text        NOT NULL UNIQUE REFERENCES epcis_events (event_id),
    event_hash    text        NOT NULL,
    alert_id      uuid        REFERENCES alerts (alert_id),
    recorded_by   text        NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX clearance_steps_shipment ON clearance_steps (shipment_id, at, id);

-- A payment may wait for "released by customs" as evidence, like delivery.
ALTER TABLE orders ADD COLUMN hold_until_customs_release boolean NOT NULL DEFAULT false;

-- A hold by customs is an alert of its own kind.
ALTER TABLE alerts DROP CONSTRAINT IF EXISTS alerts_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check
    CHECK (kind IN ('temperature_excursion', 'humidity_excursion', 'sensor_silent',
                    'unexpected_location', 'custody_gap', 'sensor_fault', 'recall',
                    'customs_hold'));
