"""Commerce: quotes, orders, payments, FX, shipments, alerts to the parties, payment release."""
