"""FastAPI surfaces: Digital Link pages, verification, alerts, EPCIS, audit (issue 6)."""
