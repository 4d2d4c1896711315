-- 0015_genealogy: the genealogy graph derived from captured EPCIS events, and recalls.
-- docs/genealogy.md describes the edges; ingest/genealogy/ maintains and reads them.

-- One edge per (event, upstream identifier, downstream identifier). Direction is the flow of
-- goods: an input lot -> its output lot, a child -> the container holding it, an object -> the
-- place or party it was shipped to, a location -> what was made there. Aggregation edges carry
-- the interval the child was inside the parent: valid_to (and the DELETE that ended it) are set
-- when a DELETE takes it out. Edges of retracted events (error declarations) are deleted.
CREATE TABLE genealogy_edges (
    id         bigserial   PRIMARY KEY,
    src        text        NOT NULL,
    dst        text        NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('transforms', 'contains', 'ships',
                                                     'receives', 'origin', 'instance',
                                                     'transaction')),
    event_id   text        NOT NULL,
    event_time timestamptz NOT NULL,
    valid_to   timestamptz,
    closed_by  text,
    quantity   numeric,
    uom        text,
    CHECK ((valid_to IS NULL) = (closed_by IS NULL))
);
CREATE INDEX genealogy_edges_src ON genealogy_edges (src);
CREATE INDEX genealogy_edges_dst ON genealogy_edges (dst);
CREATE INDEX genealogy_edges_event ON genealogy_edges (event_id);
CREATE INDEX genealogy_edges_closed_by ON genealogy_edges (closed_by) WHERE closed_by IS NOT NULL;

-- Events an error declaration retracted (also those declared before they were captured).
CREATE TABLE genealogy_retracted (
    event_id    text        PRIMARY KEY,
    declared_by text        NOT NULL,
    reason      text
);

-- How far the graph has read epcis_events (seq order is commit order: ingest/epcis/store.py).
CREATE TABLE genealogy_cursor (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq bigint  NOT NULL DEFAULT 0
);
INSERT INTO genealogy_cursor DEFAULT VALUES;

-- Recalls: opened by the brand owner of the recalled lots' products, closed when every party
-- has answered (or by the brand owner). event_id: the anchored EPCIS event recording it.
CREATE TABLE recalls (
    recall_id   uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    brand_org   text        NOT NULL REFERENCES organisations (org_id),
    class       text        NOT NULL CHECK (class IN ('I', 'II', 'III')),
    reason      text        NOT NULL,
    targets     text[]      NOT NULL CHECK (cardinality(targets) > 0),
    state       text        NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
    opened_by   text        NOT NULL,
    opened_at   timestamptz NOT NULL DEFAULT now(),
    closed_at   timestamptz,
    event_id    text,
    CHECK ((state = 'closed') = (closed_at IS NOT NULL))
);

-- The affected set, frozen when the recall opened: each identifier reached downstream.
CREATE TABLE recall_items (
    recall_id  uuid NOT NULL REFERENCES recalls (recall_id) ON DELETE CASCADE,
    node       text NOT NULL,
    node_kind  text NOT NULL,
    PRIMARY KEY (recall_id, node)
);

-- Each affected party: how it is affected, its acknowledgement and the quantities it reports.
CREATE TABLE recall_parties (
    recall_id       uuid        NOT NULL REFERENCES recalls (recall_id) ON DELETE CASCADE,
    org_id          text        NOT NULL REFERENCES organisations (org_id),
    relations       text[]      NOT NULL,
    acknowledged_by text,
    acknowledged_at timestamptz,
    qty_located     numeric     NOT NULL DEFAULT 0 CHECK (qty_located >= 0),
    qty_quarantined numeric     NOT NULL DEFAULT 0 CHECK (qty_quarantined >= 0),
    qty_returned    numeric     NOT NULL DEFAULT 0 CHECK (qty_returned >= 0),
    note            text,
    PRIMARY KEY (recall_id, org_id)
);
CREATE INDEX recall_parties_org ON recall_parties (org_id);

-- Open orders touched by the recall, and the alert that holds each one's payment.
CREATE TABLE recall_orders (
    recall_id uuid NOT NULL REFERENCES recalls (recall_id) ON DELETE CASCADE,
    order_id  uuid NOT NULL REFERENCES orders (order_id),
    PRIMARY KEY (recall_id, order_id)
);

-- A recall reaches parties as an alert of kind 'recall' on each affected lot and shipment (the
-- alert channels deliver it; commerce holds payments on it like on an excursion).
ALTER TABLE alerts DROP CONSTRAINT IF EXISTS alerts_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check
    CHECK (kind IN ('temperature_excursion', 'humidity_excursion', 'sensor_silent',
                    'unexpected_location', 'custody_gap', 'sensor_fault', 'recall'));
