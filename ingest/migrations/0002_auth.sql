-- 0002_auth: organisations and the people who sign in to the API (api/auth.py).
--
-- Roles are the OAuth2 scopes of a user's tokens. A user belongs to at most one organisation
-- (the hub's own staff to none); commerce and the surfaces scope what a user sees by it.

CREATE TABLE organisations (
    org_id     text        PRIMARY KEY CHECK (org_id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name       text        NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('supplier', 'buyer', 'logistics',
                                                    'inspection', 'hub')),
    country    text        CHECK (country ~ '^[A-Z]{2}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    user_id       uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    username      text        NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9._@-]{1,128}$'),
    password_hash text        NOT NULL,
    roles         text[]      NOT NULL CHECK (roles <@ ARRAY['buyer', 'supplier', 'logistics',
                                              'inspector', 'auditor', 'admin']::text[]
                                              AND cardinality(roles) > 0),
    org_id        text        REFERENCES organisations (org_id),
    email         text,
    locale        text        NOT NULL DEFAULT 'en',
    disabled      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_org ON users (org_id) WHERE org_id IS NOT NULL;
