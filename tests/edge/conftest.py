"""Edge: RFID reader codecs and transport, smoothing, the Modbus sensor, the spool, the agent."""
