"""Ingest: reading storage in PostgreSQL, EPCIS capture and anchoring, inspections, proofs."""
