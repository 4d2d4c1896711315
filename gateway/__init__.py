"""MQTT consumer: device identity, signature and replay checks (built in issue 5)."""
