-- 0003_trace: what the readings and events are about -- products, lots, shipments, which
-- device watches which shipment -- and the alerts raised on them. Shared by the surfaces
-- (api/, alert rules) and commerce/: commerce links orders to shipments, the alert rules
-- raise alerts on a shipment's lots, the QR page shows a lot's journey.
--
-- GTINs are stored as 14 digits (GTIN-8/12/13 left-padded with zeros, as GS1 Digital Link
-- does); lots are GS1 AI (10) values, at most 20 characters of GS1's character set 82.

CREATE TABLE products (
    gtin          text        PRIMARY KEY CHECK (gtin ~ '^[0-9]{14}$'),
    name          text        NOT NULL,
    description   text        NOT NULL DEFAULT '',
    owner_org     text        REFERENCES organisations (org_id),
    -- The allowed storage band, if the product has one (e.g. 2..8 °C for a vaccine).
    temp_min_c    numeric(6, 2),
    temp_max_c    numeric(6, 2),
    humidity_min  numeric(5, 2),
    humidity_max  numeric(5, 2),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (temp_min_c IS NULL OR temp_max_c IS NULL OR temp_min_c < temp_max_c),
    CHECK (humidity_min IS NULL OR humidity_max IS NULL OR humidity_min < humidity_max)
);

CREATE TABLE lots (
    gtin          text        NOT NULL REFERENCES products (gtin),
    lot           text        NOT NULL CHECK (length(lot) BETWEEN 1 AND 20),
    supplier_org  text        REFERENCES organisations (org_id),
    produced_on   date,
    expires_on    date,
    quantity      integer     CHECK (quantity > 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gtin, lot)
);

-- A shipment moves goods from an origin to a destination (GS1 GLNs or SGLN URIs where known).
-- state follows custody events: planned -> in_transit -> delivered (or cancelled).
CREATE TABLE shipments (
    shipment_id   text        PRIMARY KEY CHECK (shipment_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    origin        text        NOT NULL,
    destination   text        NOT NULL,
    state         text        NOT NULL DEFAULT 'planned'
                              CHECK (state IN ('planned', 'in_transit', 'delivered',
                                               'cancelled')),
    shipper_org   text        REFERENCES organisations (org_id),
    receiver_org  text        REFERENCES organisations (org_id),
    carrier_org   text        REFERENCES organisations (org_id),
    expected_delivery timestamptz,
    shipped_at    timestamptz,
    delivered_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- What a shipment carries: lots, optionally packed in logistic units (SSCC, 18 digits).
CREATE TABLE shipment_lots (
    shipment_id   text        NOT NULL REFERENCES shipments (shipment_id) ON DELETE CASCADE,
    gtin          text        NOT NULL,
    lot           text        NOT NULL,
    sscc          text        CHECK (sscc ~ '^[0-9]{18}$'),
    quantity      integer     CHECK (quantity > 0),
    FOREIGN KEY (gtin, lot) REFERENCES lots (gtin, lot),
    UNIQUE (shipment_id, gtin, lot, sscc)
);
CREATE INDEX shipment_lots_lot ON shipment_lots (gtin, lot);

-- Which device's readings describe which shipment, and when (a logger placed in a reefer).
CREATE TABLE device_assignments (
    id            bigserial   PRIMARY KEY,
    device_id     text        NOT NULL,
    shipment_id   text        NOT NULL REFERENCES shipments (shipment_id) ON DELETE CASCADE,
    valid_from    timestamptz NOT NULL,
    valid_to      timestamptz,
    CHECK (valid_to IS NULL OR valid_from < valid_to)
);
CREATE INDEX device_assignments_device ON device_assignments (device_id, valid_from);

-- Alerts raised by the alert rules. state: open -> acknowledged -> resolved (open -> resolved
-- is allowed too). Every change also lands in alert_history (who, when, from, to).
-- Each alert is also an EPCIS event; event_hash is its CBV 2.0 hash (ni:///sha-256;...).
-- Changes are announced with NOTIFY tracehub_alerts, payload {"alert_id", "state",
-- "shipment_id", "kind"} (JSON), so other processes (commerce, the dashboard) can follow.
CREATE TABLE alerts (
    alert_id      uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    rule_id       text        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('temperature_excursion',
                                                       'humidity_excursion', 'sensor_silent',
                                                       'unexpected_location', 'custody_gap')),
    severity      text        NOT NULL DEFAULT 'warning'
                              CHECK (severity IN ('info', 'warning', 'critical')),
    state         text        NOT NULL DEFAULT 'open'
                              CHECK (state IN ('open', 'acknowledged', 'resolved')),
    shipment_id   text        REFERENCES shipments (shipment_id),
    gtin          text,
    lot           text,
    device_id     text,
    started_at    timestamptz NOT NULL,
    ended_at      timestamptz,
    opened_at     timestamptz NOT NULL DEFAULT now(),
    detail        jsonb       NOT NULL DEFAULT '{}',
    event_hash    text,
    acknowledged_by text,
    acknowledged_at timestamptz,
    resolved_by   text,
    resolved_at   timestamptz,
    resolution    text
);
CREATE INDEX alerts_shipment ON alerts (shipment_id, opened_at) WHERE shipment_id IS NOT NULL;
CREATE INDEX alerts_open ON alerts (opened_at) WHERE state <> 'resolved';

CREATE TABLE alert_history (
    id            bigserial   PRIMARY KEY,
    alert_id      uuid        NOT NULL REFERENCES alerts (alert_id) ON DELETE CASCADE,
    at            timestamptz NOT NULL DEFAULT now(),
    actor         text        NOT NULL,
    from_state    text,
    to_state      text        NOT NULL,
    note          text        NOT NULL DEFAULT ''
);
CREATE INDEX alert_history_alert ON alert_history (alert_id, at);
