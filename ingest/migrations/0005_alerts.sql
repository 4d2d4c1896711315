-- 0005_alerts: the alert rules, the engine's durable state, and delivery (outbox).
-- Alerts themselves and their history are in 0003_trace (alerts, alert_history).
--
-- A rule targets exactly one of a product (gtin), a lot (gtin + lot) or a shipment. It applies
-- to every shipment carrying that product / lot, or to that shipment. params by kind:
--   temperature_excursion, humidity_excursion: {"min", "max", "grace_s"}; min/max default to
--       the product's band in products (a rule without either and no band is inert);
--   sensor_silent:        {"silent_s"}  -- a device assigned to the shipment sends nothing
--   unexpected_location:  {"expected_locations": [GLN or read point URI, ...]}
--   custody_gap:          {"gap_s"}     -- a shipment in transit with no custody event/reading
CREATE TABLE alert_rules (
    rule_id       text        PRIMARY KEY CHECK (rule_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    kind          text        NOT NULL CHECK (kind IN ('temperature_excursion',
                                                       'humidity_excursion', 'sensor_silent',
                                                       'unexpected_location', 'custody_gap')),
    gtin          text        CHECK (gtin ~ '^[0-9]{14}$'),
    lot           text,
    shipment_id   text        REFERENCES shipments (shipment_id) ON DELETE CASCADE,
    params        jsonb       NOT NULL DEFAULT '{}',
    severity      text        NOT NULL DEFAULT 'warning'
                              CHECK (severity IN ('info', 'warning', 'critical')),
    enabled       boolean     NOT NULL DEFAULT true,
    created_by    text        NOT NULL DEFAULT 'system',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    -- exactly one target: a shipment, or a product (gtin alone), or a lot (gtin and lot)
    CHECK ((shipment_id IS NOT NULL AND gtin IS NULL AND lot IS NULL)
           OR (shipment_id IS NULL AND gtin IS NOT NULL)),
    CHECK (lot IS NULL OR gtin IS NOT NULL)
);
CREATE INDEX alert_rules_shipment ON alert_rules (shipment_id) WHERE shipment_id IS NOT NULL;
CREATE INDEX alert_rules_gtin ON alert_rules (gtin) WHERE gtin IS NOT NULL;

-- The engine's memory, so a restarted engine neither forgets a breach in progress nor raises
-- its alert twice: one row per (rule, subject), subject being "<shipment>/<device>" for value
-- and silence rules, "<shipment>/<epc>@<loc>" for locations, "<shipment>" for custody gaps.
-- breach_since: first moment of the current breach episode (NULL while in band);
-- alert_id: the alert raised for this episode (NULL until raised).
CREATE TABLE alert_rule_state (
    rule_id       text        NOT NULL,
    subject       text        NOT NULL,
    breach_since  timestamptz,
    last_ts       timestamptz,
    last_value    double precision,
    alert_id      uuid        REFERENCES alerts (alert_id) ON DELETE SET NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, subject)
);

-- Per device, the last reading the engine has evaluated: readings the hook dropped (queue
-- full) or that arrived while no engine ran are caught up from the readings table.
CREATE TABLE alert_device_cursor (
    device_id     text        PRIMARY KEY,
    last_seq      bigint      NOT NULL,
    last_ts       timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Where alerts go besides the dashboard and the MQTT topic: webhooks (HMAC-signed with
-- secret) and e-mail addresses. kinds / shipment_id narrow what a subscriber receives.
CREATE TABLE alert_subscriptions (
    subscription_id uuid      PRIMARY KEY DEFAULT gen_random_uuid(),
    channel       text        NOT NULL CHECK (channel IN ('webhook', 'email')),
    target        text        NOT NULL CHECK (length(target) BETWEEN 3 AND 2048),
    secret        text,
    kinds         text[],
    shipment_id   text        REFERENCES shipments (shipment_id) ON DELETE CASCADE,
    enabled       boolean     NOT NULL DEFAULT true,
    created_by    text        NOT NULL DEFAULT 'system',
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((channel = 'webhook') = (secret IS NOT NULL))
);

-- The outbox: one row per (alert change, channel, target), written in the transaction that
-- changes the alert, delivered afterwards with retries and backoff. SSE rows are written by
-- the API process that pushed the change to its connected dashboards.
CREATE TABLE alert_deliveries (
    id            bigserial   PRIMARY KEY,
    alert_id      uuid        NOT NULL REFERENCES alerts (alert_id) ON DELETE CASCADE,
    change        text        NOT NULL,
    channel       text        NOT NULL CHECK (channel IN ('mqtt', 'email', 'webhook', 'sse')),
    target        text        NOT NULL,
    subscription_id uuid      REFERENCES alert_subscriptions (subscription_id)
                              ON DELETE SET NULL,
    payload       jsonb       NOT NULL,
    state         text        NOT NULL DEFAULT 'pending'
                              CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts      integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert_id, id);
