-- 0007_commerce: the trade the traceability data is about (commerce/, api/commerce*.py).
--
-- Parties are 0002's organisations and users; products, shipments and alerts are 0003's.
-- Money is always an integer count of the currency's minor unit (ISO 4217: JPY 0 decimals,
-- USD 2, ...), never a float; commerce/money.py converts and rounds (ROUND_HALF_EVEN).
-- Every state change of an rfq, quote, order, payment or shipment lands in state_changes.

-- FX: one row per observed rate, "1 base = rate quote", with where and when it was observed.
CREATE TABLE fx_rates (
    fx_id         bigserial   PRIMARY KEY,
    base          text        NOT NULL CHECK (base ~ '^[A-Z]{3}$'),
    quote         text        NOT NULL CHECK (quote ~ '^[A-Z]{3}$' AND quote <> base),
    rate          numeric(24, 12) NOT NULL CHECK (rate > 0),
    source        text        NOT NULL CHECK (length(source) BETWEEN 1 AND 200),
    observed_at   timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fx_rates_pair ON fx_rates (base, quote, observed_at DESC);

-- A supplier's price of a product in one currency.
CREATE TABLE price_lists (
    supplier_org  text        NOT NULL REFERENCES organisations (org_id),
    gtin          text        NOT NULL REFERENCES products (gtin),
    currency      text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    unit_price_minor bigint   NOT NULL CHECK (unit_price_minor >= 0),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (supplier_org, gtin, currency)
);

-- A buyer's request for quotation. state: open -> quoted -> closed | cancelled.
CREATE TABLE rfqs (
    rfq_id        uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    buyer_org     text        NOT NULL REFERENCES organisations (org_id),
    supplier_org  text        NOT NULL REFERENCES organisations (org_id),
    currency      text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    incoterm      text        CHECK (incoterm IN ('EXW', 'FCA', 'CPT', 'CIP', 'DAP', 'DPU',
                                                  'DDP', 'FAS', 'FOB', 'CFR', 'CIF')),
    lines         jsonb       NOT NULL,
    note          text        NOT NULL DEFAULT '',
    state         text        NOT NULL DEFAULT 'open'
                              CHECK (state IN ('open', 'quoted', 'closed', 'cancelled')),
    created_by    text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- A supplier's answer. state: sent -> accepted | rejected | expired | withdrawn.
CREATE TABLE quotes (
    quote_id      uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    rfq_id        uuid        REFERENCES rfqs (rfq_id),
    buyer_org     text        NOT NULL REFERENCES organisations (org_id),
    supplier_org  text        NOT NULL REFERENCES organisations (org_id),
    currency      text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    incoterm      text        NOT NULL CHECK (incoterm IN ('EXW', 'FCA', 'CPT', 'CIP', 'DAP',
                                                           'DPU', 'DDP', 'FAS', 'FOB', 'CFR',
                                                           'CIF')),
    named_place   text        NOT NULL,
    valid_until   timestamptz NOT NULL,
    total_minor   bigint      NOT NULL CHECK (total_minor >= 0),
    state         text        NOT NULL DEFAULT 'sent'
                              CHECK (state IN ('sent', 'accepted', 'rejected', 'expired',
                                               'withdrawn')),
    created_by    text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE quote_lines (
    quote_id      uuid        NOT NULL REFERENCES quotes (quote_id) ON DELETE CASCADE,
    line_no       integer     NOT NULL CHECK (line_no > 0),
    gtin          text        NOT NULL REFERENCES products (gtin),
    quantity      integer     NOT NULL CHECK (quantity > 0),
    unit_price_minor bigint   NOT NULL CHECK (unit_price_minor >= 0),
    PRIMARY KEY (quote_id, line_no)
);

-- An order. (buyer_org, idempotency_key) is unique: a resubmission finds the first order.
-- state: placed -> confirmed -> shipped -> delivered -> completed; placed|confirmed -> cancelled.
-- The settlement amount is total_minor converted at fx_rate (from fx_rates row fx_id).
CREATE TABLE orders (
    order_id      uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    buyer_org     text        NOT NULL REFERENCES organisations (org_id),
    supplier_org  text        NOT NULL REFERENCES organisations (org_id),
    quote_id      uuid        UNIQUE REFERENCES quotes (quote_id),
    idempotency_key text      NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    currency      text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    incoterm      text        NOT NULL,
    named_place   text        NOT NULL DEFAULT '',
    total_minor   bigint      NOT NULL CHECK (total_minor >= 0),
    settlement_currency text  NOT NULL CHECK (settlement_currency ~ '^[A-Z]{3}$'),
    settlement_minor bigint   NOT NULL CHECK (settlement_minor >= 0),
    fx_id         bigint      REFERENCES fx_rates (fx_id),
    fx_rate       numeric(24, 12) NOT NULL DEFAULT 1,
    fx_source     text,
    fx_observed_at timestamptz,
    hold_until_delivery boolean NOT NULL DEFAULT false,
    state         text        NOT NULL DEFAULT 'placed'
                              CHECK (state IN ('placed', 'confirmed', 'shipped', 'delivered',
                                               'completed', 'cancelled')),
    created_by    text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (buyer_org, idempotency_key)
);
CREATE INDEX orders_supplier ON orders (supplier_org, created_at);

CREATE TABLE order_lines (
    order_id      uuid        NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    line_no       integer     NOT NULL CHECK (line_no > 0),
    gtin          text        NOT NULL REFERENCES products (gtin),
    quantity      integer     NOT NULL CHECK (quantity > 0),
    unit_price_minor bigint   NOT NULL CHECK (unit_price_minor >= 0),
    PRIMARY KEY (order_id, line_no)
);

-- Payments. idempotency_key is sent with every provider call for this payment.
-- state: pending -> submitted -> authorized | succeeded; authorized -> held -> released;
-- any open state -> failed | manual_review | cancelled (commerce/states.py has the table).
CREATE TABLE payments (
    payment_id    uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id      uuid        NOT NULL REFERENCES orders (order_id),
    method        text        NOT NULL CHECK (method IN ('card', 'bank_transfer',
                                                         'letter_of_credit')),
    provider      text        NOT NULL,
    provider_ref  text        UNIQUE,
    idempotency_key text      NOT NULL UNIQUE,
    amount_minor  bigint      NOT NULL CHECK (amount_minor >= 0),
    currency      text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    state         text        NOT NULL DEFAULT 'pending'
                              CHECK (state IN ('pending', 'submitted', 'authorized',
                                               'succeeded', 'held', 'released', 'failed',
                                               'manual_review', 'cancelled', 'refunded')),
    attempts      integer     NOT NULL DEFAULT 0,
    last_error    text,
    details       jsonb       NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- One live payment per order: a second submission reuses it.
CREATE UNIQUE INDEX payments_one_per_order ON payments (order_id)
    WHERE state NOT IN ('failed', 'cancelled');

-- Each provider call of a payment: when, what happened, the back-off slept before it.
CREATE TABLE payment_attempts (
    payment_id    uuid        NOT NULL REFERENCES payments (payment_id) ON DELETE CASCADE,
    attempt       integer     NOT NULL CHECK (attempt > 0),
    at            timestamptz NOT NULL DEFAULT now(),
    delay_before_s numeric(8, 3) NOT NULL DEFAULT 0,
    outcome       text        NOT NULL CHECK (outcome IN ('ok', 'transient', 'permanent')),
    error         text,
    PRIMARY KEY (payment_id, attempt)
);

-- Payments a person must look at (format/validation errors are never retried).
CREATE TABLE manual_review (
    review_id     bigserial   PRIMARY KEY,
    payment_id    uuid        NOT NULL REFERENCES payments (payment_id),
    reason        text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    resolved_at   timestamptz,
    resolved_by   text
);

-- Provider webhook events, applied once each: the event id is the key.
CREATE TABLE webhook_events (
    provider      text        NOT NULL,
    event_id      text        NOT NULL,
    type          text        NOT NULL,
    payment_id    uuid        REFERENCES payments (payment_id),
    outcome       text        NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    payload       jsonb       NOT NULL,
    PRIMARY KEY (provider, event_id)
);

-- Who changed what, when, from which state to which.
CREATE TABLE state_changes (
    id            bigserial   PRIMARY KEY,
    entity        text        NOT NULL CHECK (entity IN ('rfq', 'quote', 'order', 'payment',
                                                         'shipment')),
    entity_id     text        NOT NULL,
    actor         text        NOT NULL,
    at            timestamptz NOT NULL DEFAULT now(),
    from_state    text,
    to_state      text        NOT NULL,
    note          text        NOT NULL DEFAULT ''
);
CREATE INDEX state_changes_entity ON state_changes (entity, entity_id, id);

-- Which shipments carry an order (0003's shipments stay as they are).
CREATE TABLE order_shipments (
    order_id      uuid        NOT NULL REFERENCES orders (order_id),
    shipment_id   text        NOT NULL UNIQUE REFERENCES shipments (shipment_id),
    PRIMARY KEY (order_id, shipment_id)
);

-- Custody events seen for a shipment (EPCIS shipping/receiving) and their event hashes.
CREATE TABLE custody_events (
    id            bigserial   PRIMARY KEY,
    shipment_id   text        NOT NULL REFERENCES shipments (shipment_id),
    biz_step      text        NOT NULL CHECK (biz_step IN ('shipping', 'receiving')),
    at            timestamptz NOT NULL,
    event_hash    text,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX custody_events_shipment ON custody_events (shipment_id, at);

-- Alerts on an order's shipments, attached to the order once each.
CREATE TABLE order_alerts (
    order_id      uuid        NOT NULL REFERENCES orders (order_id),
    alert_id      uuid        NOT NULL REFERENCES alerts (alert_id),
    attached_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, alert_id)
);

-- Notifications to the parties' contacts; (alert, alert state, recipient) is sent once.
CREATE TABLE notifications (
    id            bigserial   PRIMARY KEY,
    order_id      uuid        NOT NULL REFERENCES orders (order_id),
    alert_id      uuid        REFERENCES alerts (alert_id),
    alert_state   text        NOT NULL DEFAULT '',
    org_id        text        NOT NULL REFERENCES organisations (org_id),
    recipient     text        NOT NULL,
    subject       text        NOT NULL,
    body          text        NOT NULL,
    state         text        NOT NULL DEFAULT 'pending'
                              CHECK (state IN ('pending', 'sent', 'failed')),
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    UNIQUE (order_id, alert_id, alert_state, recipient)
);

-- Hold and release decisions on an order's payment, with their evidence and ledger record.
CREATE TABLE payment_decisions (
    order_id      uuid        NOT NULL REFERENCES orders (order_id),
    seq           integer     NOT NULL CHECK (seq > 0),
    decision      text        NOT NULL CHECK (decision IN ('hold', 'release')),
    evidence      jsonb       NOT NULL,
    record_id     text        NOT NULL UNIQUE,
    tx_id         text,
    decided_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, seq)
);

-- Scorecard inputs a person enters where no data exists (0..100 each). quality_pass_rate is
-- used only when there is no inspections table (0006) to count passes from.
CREATE TABLE supplier_inputs (
    supplier_org  text        PRIMARY KEY REFERENCES organisations (org_id),
    cost          numeric(5, 2) NOT NULL DEFAULT 50 CHECK (cost BETWEEN 0 AND 100),
    innovation    numeric(5, 2) NOT NULL DEFAULT 50 CHECK (innovation BETWEEN 0 AND 100),
    environmental numeric(5, 2) NOT NULL DEFAULT 50 CHECK (environmental BETWEEN 0 AND 100),
    quality_pass_rate numeric(5, 2) CHECK (quality_pass_rate BETWEEN 0 AND 100),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
