-- 0011_epcis_prehash: the CBV 2.0 pre-hash string of each event, kept so that an auditor sees
-- exactly what was hashed (docs/epcis.md, "The event hash"). NULL for events captured before
-- this migration: their pre-hash is recomputed from event_json when asked for (same bytes,
-- same rule). sha256(prehash) is hash_hex.
ALTER TABLE epcis_events ADD COLUMN prehash text;
