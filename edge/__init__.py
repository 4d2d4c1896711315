"""Edge agent: serial drivers -> signed readings -> durable spool -> MQTT (built in issue 4)."""
