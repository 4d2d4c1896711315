"""RFID reader wire protocols, byte-exact frame codecs (built in issue 4)."""
