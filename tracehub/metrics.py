"""A process's /metrics endpoint for Prometheus, on loopback, and its entry in the targets dir.

Every long-running process (API, gateways, commerce worker, edge agent) serves its
`prometheus_client` registry on its own loopback port, never on the public API. A process whose
port is 0 gets a free one from the system; so that Prometheus finds it (tests and the demo start
gateways at will), the process writes a file_sd targets file into the run dir's
`prometheus/targets/` and removes it when it stops (decision 0032). Prometheus re-reads that
directory by itself.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

#: Metrics are served on loopback only: operational data for the operator's Prometheus.
METRICS_HOST = "127.0.0.1"


@dataclass
class MetricsEndpoint:
    """A running /metrics server; `close()` stops it and withdraws its targets file."""

    port: int
    server: WSGIServer
    thread: threading.Thread
    targets_file: Path | None

    @property
    def url(self) -> str:
        return f"http://{METRICS_HOST}:{self.port}/metrics"

    def close(self) -> None:
        if self.targets_file is not None:
            self.targets_file.unlink(missing_ok=True)
        self.server.shutdown()
        self.server.server_close()


def serve_metrics(
    port: int, *, job: str, name: str, targets_dir: Path | None = None
) -> MetricsEndpoint:
    """Serve the default registry on ``port`` (0: a free one); with ``targets_dir``, register
    the endpoint there as `<job>-<name>.json` with labels ``job`` and ``process``."""
    server, thread = start_http_server(port, addr=METRICS_HOST)
    bound = int(server.server_port)
    targets_file = None
    if targets_dir is not None:
        targets_file = targets_dir / f"{job}-{name}.json"
        write_targets(targets_file, f"{METRICS_HOST}:{bound}", {"job": job, "process": name})
    return MetricsEndpoint(bound, server, thread, targets_file)


def write_targets(path: Path, target: str, labels: dict[str, str]) -> None:
    """Write one file_sd entry atomically: Prometheus never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps([{"targets": [target], "labels": labels}]))
    tmp.replace(path)
