"""tracehub.metrics and tracehub.logjson: a process's /metrics on loopback with its targets file,
and the JSON log lines that carry correlation fields."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client import Counter

from tracehub.logjson import JsonFormatter, configure_logging
from tracehub.metrics import serve_metrics

PROBE = Counter("tracehub_test_probe", "A counter of this test module")


def test_endpoint_serves_registry_and_registers_target(tmp_path: Path) -> None:
    endpoint = serve_metrics(0, job="gateway", name="gw-test", targets_dir=tmp_path)
    try:
        PROBE.inc(3)
        assert endpoint.port > 0
        page = httpx.get(endpoint.url, timeout=5).text
        assert "tracehub_test_probe_total 3.0" in page
        entry = json.loads((tmp_path / "gateway-gw-test.json").read_text())
        assert entry == [
            {
                "targets": [f"127.0.0.1:{endpoint.port}"],
                "labels": {"job": "gateway", "process": "gw-test"},
            }
        ]
        assert [p.name for p in tmp_path.iterdir()] == ["gateway-gw-test.json"]  # no temp file
    finally:
        endpoint.close()
    assert not (tmp_path / "gateway-gw-test.json").exists()
    with pytest.raises(httpx.TransportError):
        httpx.get(endpoint.url, timeout=2)


def test_json_lines_carry_extra_fields() -> None:
    record = logging.makeLogRecord(
        {
            "name": "gateway.service",
            "levelno": logging.INFO,
            "levelname": "INFO",
            "msg": "batch %s anchored",
            "args": ("b-1",),
            "batch_id": "b-1",
            "tx_id": "ab12",
            "block": 7,
        }
    )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["msg"] == "batch b-1 anchored"
    assert (entry["batch_id"], entry["tx_id"], entry["block"]) == ("b-1", "ab12", 7)
    assert entry["level"] == "INFO" and entry["logger"] == "gateway.service"
    assert "args" not in entry and "levelno" not in entry


def test_exceptions_are_part_of_the_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.makeLogRecord({"msg": "failed", "exc_info": sys.exc_info()})
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exc"]


def test_unknown_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log format"):
        configure_logging("INFO", "xml")
