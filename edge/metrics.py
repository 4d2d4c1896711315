"""The edge agent's Prometheus metrics: its status counters, read at scrape time.

The agent already keeps every counter (totalled over its runs, saved in the spool) for
`tracehub-edge status`; the collector exposes the status its housekeeping wrote last, so a
scrape never touches the spool from the server's thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class AgentCollector(Collector):
    """Metrics of one agent from ``status()`` (the last status written, or None before)."""

    def __init__(self, status: Callable[[], dict[str, Any] | None]) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        state = self.status()
        if state is None:
            return
        spool, publisher, acks = state["spool"], state["publisher"], state["hub_acks"]
        yield GaugeMetricFamily(
            "tracehub_edge_spool_depth",
            "Readings in the spool the hub has not acknowledged as stored",
            value=spool["depth"],
        )
        yield GaugeMetricFamily(
            "tracehub_edge_spool_unsent",
            "Readings the broker has not taken yet",
            value=spool["unsent"],
        )
        yield GaugeMetricFamily(
            "tracehub_edge_connected",
            "1 while connected to the broker",
            value=int(publisher["connected"]),
        )
        for name, help_text, value in (
            ("readings_published", "Readings published to the broker", publisher["published"]),
            ("readings_acked", "Readings the broker acknowledged", publisher["acknowledged"]),
            ("readings_settled", "Readings the hub acknowledged as stored", acks["settled"]),
            ("connection_failures", "Failed broker connections", publisher["connection_failures"]),
        ):
            yield CounterMetricFamily(f"tracehub_edge_{name}", help_text, value=value)
        reads = CounterMetricFamily(
            "tracehub_edge_readings_read", "Read events from the RFID readers", labels=["reader"]
        )
        for reader, stats in state["readers"].items():
            reads.add_metric([reader], stats["read_events"])
        yield reads
        faults = CounterMetricFamily(
            "tracehub_edge_sensor_faults",
            "Failed sensor polls, by sensor and kind",
            labels=["sensor", "kind"],
        )
        for sensor, stats in state["sensors"].items():
            for kind, count in stats["stats"].items():
                if kind not in ("polls", "ok") and isinstance(count, int):
                    faults.add_metric([sensor, kind], count)
        yield faults
