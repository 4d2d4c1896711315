"""Edge agent: serial drivers -> signed readings -> durable spool -> MQTT (kernel imports only)."""
