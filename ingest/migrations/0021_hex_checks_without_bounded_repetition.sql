-- 0021_hex_checks_without_bounded_repetition: the same SHA-256 hex checks, written so that
-- PostgreSQL checks them cheaply (docs/decisions/0042-hex-checks-without-bounded-repetition.md).
--
-- `x ~ '^[0-9a-f]{64}$'` costs about 5 µs of server CPU a row here: PostgreSQL's regex engine
-- expands the bounded repetition into 64 states. `length(x) = 64 AND x ~ '^[0-9a-f]+$'` accepts
-- exactly the same strings (64 characters, each one of 0-9 a-f) for about 0.5 µs. The store
-- checks one per reading (reading_keys) and four per device and transaction (devices, upserted
-- then advanced): the old form was about a fifth of the store transaction's server CPU.
--
-- Same names, same meaning. Added NOT VALID, so this migration holds its exclusive locks only
-- for a moment; the rows already there were held to the old form, which accepts the same
-- strings, and 0022 validates them without blocking writes.
ALTER TABLE reading_keys
    DROP CONSTRAINT reading_keys_reading_hash_check,
    ADD CONSTRAINT reading_keys_reading_hash_check
        CHECK (length(reading_hash) = 64 AND reading_hash ~ '^[0-9a-f]+$') NOT VALID;

ALTER TABLE devices
    DROP CONSTRAINT devices_certificate_sha256_check,
    ADD CONSTRAINT devices_certificate_sha256_check
        CHECK (length(certificate_sha256) = 64 AND certificate_sha256 ~ '^[0-9a-f]+$') NOT VALID,
    DROP CONSTRAINT devices_last_hash_check,
    ADD CONSTRAINT devices_last_hash_check
        CHECK (length(last_hash) = 64 AND last_hash ~ '^[0-9a-f]+$') NOT VALID;

ALTER TABLE batches
    DROP CONSTRAINT batches_root_check,
    ADD CONSTRAINT batches_root_check CHECK (length(root) = 64 AND root ~ '^[0-9a-f]+$') NOT VALID;

ALTER TABLE dropped_reports
    DROP CONSTRAINT dropped_reports_report_hash_check,
    ADD CONSTRAINT dropped_reports_report_hash_check
        CHECK (length(report_hash) = 64 AND report_hash ~ '^[0-9a-f]+$') NOT VALID,
    DROP CONSTRAINT dropped_reports_certificate_sha256_check,
    ADD CONSTRAINT dropped_reports_certificate_sha256_check
        CHECK (length(certificate_sha256) = 64 AND certificate_sha256 ~ '^[0-9a-f]+$') NOT VALID;

ALTER TABLE epcis_batches
    DROP CONSTRAINT epcis_batches_root_check,
    ADD CONSTRAINT epcis_batches_root_check CHECK (length(root) = 64 AND root ~ '^[0-9a-f]+$') NOT VALID;

ALTER TABLE epcis_events
    DROP CONSTRAINT epcis_events_hash_hex_check,
    ADD CONSTRAINT epcis_events_hash_hex_check
        CHECK (length(hash_hex) = 64 AND hash_hex ~ '^[0-9a-f]+$') NOT VALID;
