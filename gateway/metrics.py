"""The gateway's Prometheus metrics (served by tracehub.metrics on a loopback port).

Counters follow the readings through the process; the anchor backlog gauges are read from the
store, which is shared by every gateway, so each gateway reports the same backlog (alert rules
take the max over gateways).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

READINGS_RECEIVED = Counter(
    "tracehub_gateway_readings_received", "MQTT messages taken from the shared subscription"
)
READINGS_STORED = Counter("tracehub_gateway_readings_stored", "Readings stored for the first time")
READINGS_DUPLICATE = Counter(
    "tracehub_gateway_readings_duplicate", "Readings delivered again and already stored"
)
READINGS_QUARANTINED = Counter(
    "tracehub_gateway_readings_quarantined", "Messages quarantined, by reason", ["reason"]
)
BATCHES_SEALED = Counter("tracehub_gateway_batches_sealed", "Batches sealed by this gateway")
BATCHES_ANCHORED = Counter("tracehub_gateway_batches_anchored", "Batches anchored on the ledger")
ANCHOR_FAILURES = Counter(
    "tracehub_gateway_anchor_failures", "Failed attempts to put a batch on IPFS or the ledger"
)
ANCHOR_LAG = Gauge(
    "tracehub_gateway_anchor_lag_seconds",
    "Age of the oldest sealed batch not yet anchored (0: none waiting)",
)
OUTBOX_DEPTH = Gauge("tracehub_gateway_anchor_outbox_depth", "Batches waiting in the anchor outbox")
LAST_READING = Gauge(
    "tracehub_gateway_last_reading_timestamp_seconds",
    "Unix time of the last reading this gateway stored (silent devices: time() minus this)",
)
SILENT_DEVICES = Gauge(
    "tracehub_gateway_devices_silent",
    "Devices seen in the last day whose last reading is older than the silence threshold",
)
