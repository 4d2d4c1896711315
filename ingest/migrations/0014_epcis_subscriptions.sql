-- 0014_epcis_subscriptions: named EPCIS queries, subscriptions to them, and the subscription
-- outbox (docs/epcis.md, "Subscriptions"; decision 0018). A named query belongs to the
-- organisation of the user who created it (NULL: an operator of no organisation); names are
-- unique per organisation, so one company cannot learn another's names by collision.
CREATE TABLE epcis_named_queries (
    query_id    bigserial   PRIMARY KEY,
    owner_org   text        REFERENCES organisations (org_id),
    name        text        NOT NULL CHECK (name ~ '^[A-Za-z0-9._~-]{1,128}$'),
    -- the simple event query's parameters as [name, value] pairs
    params      jsonb       NOT NULL,
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX epcis_named_queries_name ON epcis_named_queries (coalesce(owner_org, ''), name);

-- A webhook subscription: stream (on capture) or schedule (cron-like fields). last_seq is the
-- cursor: every event up to it has been considered (seq order is commit order, decision 0015).
CREATE TABLE epcis_subscriptions (
    subscription_id  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    query_id         bigint      NOT NULL REFERENCES epcis_named_queries ON DELETE CASCADE,
    dest             text        NOT NULL,
    secret           text        NOT NULL,
    stream           boolean     NOT NULL,
    schedule         jsonb,
    report_if_empty  boolean     NOT NULL DEFAULT false,
    last_seq         bigint      NOT NULL DEFAULT 0,
    last_fired_at    timestamptz,
    last_notified_at timestamptz,
    created_by       text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (stream <> (schedule IS NOT NULL))
);
CREATE INDEX epcis_subscriptions_query ON epcis_subscriptions (query_id);

-- One row per (subscription, event): at-least-once and de-duplicated by event. A row with no
-- event is a scheduled report that found nothing (reportIfEmpty).
CREATE TABLE epcis_subscription_outbox (
    id              bigserial   PRIMARY KEY,
    subscription_id uuid        NOT NULL REFERENCES epcis_subscriptions ON DELETE CASCADE,
    seq             bigint,
    event_id        text,
    state           text        NOT NULL DEFAULT 'pending'
                                CHECK (state IN ('pending', 'delivered', 'failed', 'withheld')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX epcis_subscription_outbox_due ON epcis_subscription_outbox (next_attempt_at)
    WHERE state = 'pending';
