-- 0013_locations: location master data, and how precisely a brand owner publishes a journey.
--
-- A location is a GLN with its name, city and country (an SGLN names a sub-location of its
-- GLN: a dock, a cold room; it is in the same city). Public lot pages show a journey step's
-- location at the level the brand owner chose (publication_settings.journey_detail):
-- 'city' (the default: city and country from this table, nothing where the location is not
-- recorded), 'site' (the identifiers and site names as captured), 'none' (the steps alone).
CREATE TABLE locations (
    gln           text        PRIMARY KEY CHECK (gln ~ '^[0-9]{13}$'),
    org_id        text        REFERENCES organisations (org_id) ON DELETE SET NULL,
    name          text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    city          text        NOT NULL CHECK (length(city) BETWEEN 1 AND 100),
    country_code  text        NOT NULL CHECK (country_code ~ '^[A-Z]{2}$'),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX locations_org ON locations (org_id);

ALTER TABLE publication_settings
    ADD COLUMN journey_detail text NOT NULL DEFAULT 'city'
        CHECK (journey_detail IN ('city', 'site', 'none'));
