-- 0009_parties: who is a party to what (docs/authorization.md).
--
-- Organisations and their members are 0002's; the parties of shipments (shipper, receiver,
-- carrier), lots (brand owner = products.owner_org, supplier) and orders (buyer, supplier) are
-- columns of 0003 and 0007. This migration adds what those tables could not say: the GS1
-- identifiers an organisation owns, who owns a subscription, who commissioned an inspection,
-- which organisations an auditor's engagement covers, who captured an EPCIS event, and what a
-- brand owner publishes on its public pages.

-- GS1 company prefixes and GLNs (locations) an organisation owns. An EPC or location naming one
-- of them belongs to that organisation.
CREATE TABLE organisation_identifiers (
    kind        text        NOT NULL CHECK (kind IN ('company_prefix', 'gln')),
    value       text        NOT NULL CHECK (value ~ '^[0-9]{4,13}$'),
    org_id      text        NOT NULL REFERENCES organisations (org_id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, value)
);
CREATE INDEX organisation_identifiers_org ON organisation_identifiers (org_id);

-- The organisation a subscription belongs to (NULL: the hub's own staff).
ALTER TABLE alert_subscriptions ADD COLUMN owner_org text REFERENCES organisations (org_id);
CREATE INDEX alert_subscriptions_owner ON alert_subscriptions (owner_org);

-- An organisation (a party of the lot) commissions an inspection organisation for a lot; only
-- inspectors of a commissioned organisation may report on the lot.
CREATE TABLE inspection_commissions (
    commission_id  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    gtin           text        NOT NULL,
    lot            text        NOT NULL,
    client_org     text        NOT NULL REFERENCES organisations (org_id),
    inspection_org text        NOT NULL REFERENCES organisations (org_id),
    created_by     text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (gtin, lot) REFERENCES lots (gtin, lot),
    UNIQUE (gtin, lot, client_org, inspection_org)
);
CREATE INDEX inspection_commissions_org ON inspection_commissions (inspection_org, gtin, lot);

ALTER TABLE inspections ADD COLUMN inspector_org text REFERENCES organisations (org_id);
ALTER TABLE inspections ADD COLUMN commissioned_by text REFERENCES organisations (org_id);

-- An auditor organisation engaged by a client organisation reads what the client is a party
-- to (never writes for it).
CREATE TABLE audit_engagements (
    auditor_org text        NOT NULL REFERENCES organisations (org_id),
    client_org  text        NOT NULL REFERENCES organisations (org_id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (auditor_org, client_org)
);

-- The organisation whose member captured an EPCIS event (NULL: the hub's pipeline), and what
-- the event is about as party-model keys (ingest/epcis/subjects.py: lot:, gtin:, sscc:, gln:,
-- cp:, loc:, uri:). Events captured before this migration have no keys: only admins see them.
ALTER TABLE epcis_events ADD COLUMN captured_by_org text;
ALTER TABLE epcis_events ADD COLUMN subjects text[] NOT NULL DEFAULT '{}';
CREATE INDEX epcis_events_captured_by ON epcis_events (captured_by_org)
    WHERE captured_by_org IS NOT NULL;
CREATE INDEX epcis_events_subjects ON epcis_events USING gin (subjects);
CREATE INDEX shipments_parties ON shipments (shipper_org, receiver_org, carrier_org);

-- What an organisation's public pages show. As brand owner it chooses the sections of its
-- lots' pages; as receiver or carrier it opts in to being named on other brands' pages.
CREATE TABLE publication_settings (
    org_id              text        PRIMARY KEY REFERENCES organisations (org_id),
    show_journey        boolean     NOT NULL DEFAULT true,
    show_conditions     boolean     NOT NULL DEFAULT true,
    show_inspections    boolean     NOT NULL DEFAULT true,
    show_alerts         boolean     NOT NULL DEFAULT true,
    name_when_party     boolean     NOT NULL DEFAULT false,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- Auditing firms are organisations too.
ALTER TABLE organisations DROP CONSTRAINT organisations_kind_check;
ALTER TABLE organisations ADD CONSTRAINT organisations_kind_check
    CHECK (kind IN ('supplier', 'buyer', 'logistics', 'inspection', 'audit', 'hub'));
