"""Quotes, orders, payments, FX, shipments and their alerts (issue 7)."""
