-- 0022_validate_hex_checks: validate the checks 0021 added NOT VALID
-- (docs/decisions/0042-hex-checks-without-bounded-repetition.md).
--
-- VALIDATE CONSTRAINT scans a table under a SHARE UPDATE EXCLUSIVE lock, which does not block
-- inserts or updates: the gateways keep storing while reading_keys, the largest, is scanned
-- (about 5 s for 7.8 million keys on the development machine).
ALTER TABLE reading_keys VALIDATE CONSTRAINT reading_keys_reading_hash_check;
ALTER TABLE devices VALIDATE CONSTRAINT devices_certificate_sha256_check;
ALTER TABLE devices VALIDATE CONSTRAINT devices_last_hash_check;
ALTER TABLE batches VALIDATE CONSTRAINT batches_root_check;
ALTER TABLE dropped_reports VALIDATE CONSTRAINT dropped_reports_report_hash_check;
ALTER TABLE dropped_reports VALIDATE CONSTRAINT dropped_reports_certificate_sha256_check;
ALTER TABLE epcis_batches VALIDATE CONSTRAINT epcis_batches_root_check;
ALTER TABLE epcis_events VALIDATE CONSTRAINT epcis_events_hash_hex_check;
