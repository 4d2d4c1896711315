"""The stack's Prometheus seen from a test: its HTTP API, and rule files a test adds for itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from tracehub.config import Settings


class Prometheus:
    """The HTTP API of the Prometheus server the settings name (`TRACEHUB_PROMETHEUS_PORT`)."""

    def __init__(self, settings: Settings) -> None:
        self.url = f"http://127.0.0.1:{settings.metrics.prometheus_port}"

    def get(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=10)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def targets(self) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/targets", state="active")["activeTargets"])

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/query", query=expr)["result"])

    def firing(self, alertname: str) -> list[dict[str, Any]]:
        alerts = self.get("/api/v1/alerts")["alerts"]
        named = [a for a in alerts if a["labels"].get("alertname") == alertname]
        return [a for a in named if a["state"] == "firing"]

    def reload(self) -> None:
        httpx.post(f"{self.url}/-/reload", timeout=30).raise_for_status()

    def extra_rules_dir(self) -> Path:
        """The run dir's rule directory: the server's rule pattern outside the repository's
        network/prometheus/rules/ (network/prometheus/prometheus.sh)."""
        config = yaml.safe_load(self.get("/api/v1/status/config")["yaml"])
        for pattern in config["rule_files"]:
            directory = Path(pattern).parent
            if directory.parts[-3:] != ("network", "prometheus", "rules"):
                return directory
        raise AssertionError(f"no rule directory in the run dir: {config['rule_files']}")

    @contextmanager
    def rules(self, name: str, groups: list[dict[str, Any]]) -> Iterator[None]:
        """Rule ``groups`` loaded for the block's duration (a file of the run dir, reloaded)."""
        path = self.extra_rules_dir() / f"{name}.yml"
        path.write_text(yaml.safe_dump({"groups": groups}))
        try:
            self.reload()
            yield
        finally:
            path.unlink(missing_ok=True)
            self.reload()


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    """Poll ``condition`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.5)
