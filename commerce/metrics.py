"""The commerce worker's Prometheus metrics (served by tracehub.metrics on a loopback port).

The counters are incremented wherever the code runs (payment retries also happen in the API
process, which serves its own registry); the outbox gauge is the worker's view of the
notifications not yet sent.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

OUTBOX_DEPTH = Gauge(
    "tracehub_worker_outbox_depth", "Order notifications (alert e-mails) not sent yet"
)
ALERT_DELIVERY_FAILURES = Counter(
    "tracehub_worker_alert_delivery_failures", "Alert notifications the mail relay refused"
)
PAYMENT_RETRIES = Counter(
    "tracehub_payment_retries", "Payment provider calls retried after a transient failure"
)
