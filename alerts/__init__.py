"""Anomaly alerts: rules over readings and time, alerts as EPCIS events, delivery channels.

- rules:    what a rule is and which rules apply to a shipment (alert_rules, product bands);
            the rules table as people edit it
- engine:   AlertEngine.evaluate(rows) / tick(now): exactly one alert per breach episode
- store:    alert rows, history, outbox and NOTIFY (0003_trace's contract); the API's queries
            and the acknowledge/resolve transitions
- subscriptions: webhook and e-mail subscriptions (alert_subscriptions)
- errors:   AlertsError, the root of the area's errors, and the store's errors
- event:    the alert's EPCIS 2.0 ObjectEvent with a GS1 sensor alert
- delivery: the outbox worker: MQTT, e-mail (SMTP), HMAC-signed webhooks, with backoff
- webhook:  signing and verifying webhook deliveries
- worker:   the gateway hook (bounded queue, worker thread, catch-up from the database)
- service:  wiring for `python -m gateway`
"""
