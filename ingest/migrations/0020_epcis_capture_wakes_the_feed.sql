-- 0020_epcis_capture_wakes_the_feed: a capture wakes the EPCIS subscription feed at commit
-- (alerts/epcis_feed.py) instead of the feed asking PostgreSQL ten times a second whether
-- anything was captured (decision 0018 foresaw this; docs/decisions/0041-wake-ups-not-polls.md).
--
-- NOTIFY is delivered only when the capturing transaction commits, once per transaction
-- whatever it captured (same channel, same payload). The feed still looks once a second
-- without one: schedules run by the second, retries come due, and a notification sent while
-- its connection was being re-made is not seen; the seq cursor makes any pass safe.
CREATE FUNCTION notify_epcis_captured() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('epcis_captured', '');
    RETURN NULL;
END $$;

CREATE TRIGGER epcis_events_wake_feed AFTER INSERT ON epcis_events
    FOR EACH STATEMENT EXECUTE FUNCTION notify_epcis_captured();
