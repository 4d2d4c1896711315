"""The demo: a smoke transaction and the full vaccine-shipment scenario (`make demo`)."""
