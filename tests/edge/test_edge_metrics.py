"""The edge agent's /metrics: registered in the run dir's targets dir while it runs, counting
read events, spool depth and broker connection failures (decision 0032)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import httpx
import pytest

from tests.support.edge import EdgeAgent, enrol_device
from tests.support.processes import free_port, wait_until
from tracehub.config import Settings

pytestmark = pytest.mark.integration


def _sample(url: str, sample: str) -> float | None:
    try:
        page = httpx.get(url, timeout=5).text
    except httpx.TransportError:
        return None
    for line in page.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return None


def test_agent_metrics_follow_its_status(stack: Settings, tmp_path: Path) -> None:
    device = enrol_device(stack, "metrics")
    # No broker on this port: every reading stays in the spool, every connect fails.
    settings = dataclasses.replace(stack, mqtt_host="127.0.0.1", mqtt_tls_port=free_port())
    agent = EdgeAgent(tmp_path, settings, device)
    targets = stack.metrics_targets_dir / f"edge-{device}.json"
    try:
        agent.start()
        wait_until(targets.exists, 30, "the agent's targets file")
        entry = json.loads(targets.read_text())[0]
        assert entry["labels"] == {"job": "edge", "process": device}
        url = f"http://{entry['targets'][0]}/metrics"
        agent.read_tags(range(5))
        wait_until(lambda: agent.read_events() == 5, 30, "5 read events")
        wait_until(
            lambda: _sample(url, 'tracehub_edge_readings_read_total{reader="dock-door-1"}') == 5,
            10,
            "5 read events in the metrics",
        )
        wait_until(
            lambda: (_sample(url, "tracehub_edge_spool_depth") or 0) >= 5, 10, "the spool depth"
        )
        wait_until(
            lambda: (_sample(url, "tracehub_edge_connection_failures_total") or 0) >= 1,
            30,
            "a failed connection counted",
        )
        assert _sample(url, "tracehub_edge_connected") == 0
        assert _sample(url, "tracehub_edge_readings_published_total") == 0
    finally:
        agent.close()
    assert not targets.exists(), "a stopped agent leaves no targets file behind"
