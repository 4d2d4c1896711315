-- 0012_edge_health: device health readings (kind 'health': a sensor timing out, answering with
-- an exception, reporting an impossible value; docs/reading-envelope.md) and the alert rule
-- that watches them (kind 'sensor_fault', params {"grace_s"}: a fault reported by a device
-- assigned to the shipment and not cleared within grace_s raises an alert).
ALTER TABLE readings DROP CONSTRAINT IF EXISTS readings_kind_check;
ALTER TABLE readings ADD CONSTRAINT readings_kind_check
    CHECK (kind IN ('rfid', 'environment', 'event', 'health'));

ALTER TABLE alert_rules DROP CONSTRAINT IF EXISTS alert_rules_kind_check;
ALTER TABLE alert_rules ADD CONSTRAINT alert_rules_kind_check
    CHECK (kind IN ('temperature_excursion', 'humidity_excursion', 'sensor_silent',
                    'unexpected_location', 'custody_gap', 'sensor_fault'));

ALTER TABLE alerts DROP CONSTRAINT IF EXISTS alerts_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check
    CHECK (kind IN ('temperature_excursion', 'humidity_excursion', 'sensor_silent',
                    'unexpected_location', 'custody_gap', 'sensor_fault'));
