"""The gateway: MQTT consumer, identity and signature checks, then store, batch and anchor."""
