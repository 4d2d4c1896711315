"""Alerts: rules, the engine and its channels (SSE, MQTT, e-mail, webhook), the gateway hook."""
