"""The stack's Prometheus: it scrapes the API, Fabric and Kubo, finds the gateways tests start,
loads the alert rules, and fires a rule when its condition holds; the gateway's JSON log links
a reading to its batch and the batch to its ledger transaction (decision 0032)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from certs.pki import PKI
from tests.support.gateway import Device, leave_group, private_database, start_gateway, subscribed
from tests.support.mqtt import close, connect, device_client
from tests.support.processes import wait_until
from tests.support.prometheus import Prometheus, wait_for
from tracehub import db
from tracehub.config import Settings

pytestmark = pytest.mark.integration

STACK_JOBS = {"api", "fabric-orderer", "fabric-peer", "kubo"}
SHIPPED_ALERTS = {
    "TraceHubAnchorLag",
    "TraceHubQuarantineSpike",
    "TraceHubDevicesSilent",
    "TraceHubIngestStalled",
    "TraceHubTargetDown",
    "TraceHubWorkerOutboxBacklog",
}


@pytest.fixture(scope="module")
def prometheus(stack: Settings) -> Prometheus:
    server = Prometheus(stack)
    wait_for(lambda: httpx.get(f"{server.url}/-/ready", timeout=5).is_success, 30, "Prometheus")
    return server


def test_stack_targets_are_up(stack: Settings, prometheus: Prometheus) -> None:
    def up_jobs() -> set[str] | None:
        targets = prometheus.targets()
        up = {t["labels"]["job"] for t in targets if t["health"] == "up"}
        return up if up >= STACK_JOBS else None

    wait_for(up_jobs, 30, f"targets {sorted(STACK_JOBS)} up")
    targets = prometheus.targets()
    orderers = [t for t in targets if t["labels"]["job"] == "fabric-orderer"]
    peers = [t for t in targets if t["labels"]["job"] == "fabric-peer"]
    assert len(orderers) == len(stack.fabric.orderer_ops_urls)
    assert len(peers) == sum(len(stack.fabric.org_peers(org)) for org in (1, 2))
    # Scraped, not only listed: each job's series are in the database.
    for metric, job in (
        ("tracehub_api_requests_total", "api"),
        ("ledger_blockchain_height", "fabric-peer"),
        ("exchange_bitswap", "kubo"),
        ("consensus_etcdraft_is_leader", "fabric-orderer"),
    ):
        assert prometheus.query(f'count({{__name__=~"{metric}.*", job="{job}"}})'), metric


def test_alert_rules_are_loaded(prometheus: Prometheus) -> None:
    groups = prometheus.get("/api/v1/rules", type="alert")["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    assert loaded >= SHIPPED_ALERTS
    for group in groups:
        for rule in group["rules"]:
            assert rule["health"] != "err", rule


@pytest.fixture()
def gateway(stack: Settings, tmp_path: Path) -> Iterator[tuple[str, Path, Settings]]:
    """A gateway process on a schema of its own, logging JSON at DEBUG to a file."""
    with private_database(stack) as (env, _):
        name, group = f"prom-{uuid.uuid4().hex[:8]}", f"prom{uuid.uuid4().hex[:8]}"
        log = tmp_path / "gateway.log"
        env = {**env, "TRACEHUB_LOG_FORMAT": "json"}
        process = start_gateway(name, group, log, "--log-level", "DEBUG", env=env)
        try:
            wait_until(lambda: subscribed(log), 60, "the gateway's subscription")
            own = Settings.from_env(env)
            yield name, log, own
        finally:
            process.terminate()
            process.wait(30)
            leave_group(name)
    targets = stack.metrics_targets_dir / f"gateway-{name}.json"
    assert not targets.exists(), "a stopped gateway leaves no targets file behind"


def _counter(url: str, sample: str) -> float:
    """The value of one sample (name and labels, as exposed) of a /metrics page."""
    for line in httpx.get(url, timeout=5).text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


def test_quarantine_counter_rule_and_correlated_log(
    stack: Settings, prometheus: Prometheus, gateway: tuple[str, Path, Settings]
) -> None:
    name, log, own = gateway
    targets_file = stack.metrics_targets_dir / f"gateway-{name}.json"
    entry = json.loads(targets_file.read_text())[0]
    url = f"http://{entry['targets'][0]}/metrics"
    assert entry["labels"] == {"job": "gateway", "process": name}
    # Prometheus found it through the targets file.
    wait_for(
        lambda: [
            t for t in prometheus.targets()
            if t["labels"].get("process") == name and t["health"] == "up"
        ],
        30,
        "the gateway's target up",
    )  # fmt: skip
    sample = 'tracehub_gateway_readings_quarantined_total{reason="malformed"}'
    before = _counter(url, sample)
    # A rule of this test alone: any quarantine at this gateway (the shipped rule's threshold
    # and `for:` would keep a test waiting minutes).
    alert = f"TestQuarantine{uuid.uuid4().hex[:8]}"
    rule = {
        "alert": alert,
        "expr": f'sum(tracehub_gateway_readings_quarantined_total{{process="{name}"}}) > {before}',
        "for": "0s",
    }
    pki = PKI(stack.pki_dir)
    device = Device(stack, pki)
    time.sleep(1.1)  # certificates are valid from a whole second
    client = device_client(stack, device.id)
    try:
        with prometheus.rules(f"test-{name}", [{"name": alert, "rules": [rule]}]):
            assert not prometheus.firing(alert)
            assert connect(client, stack)
            client.publish(device.topic, b"\x00not a JWS\xff", qos=1).wait_for_publish(10)
            first = device.sign(1, 4.5)
            client.publish(device.topic, first, qos=1).wait_for_publish(10)
            wait_for(lambda: _counter(url, sample) > before, 30, "the quarantine counter")
            firing = wait_for(lambda: prometheus.firing(alert), 60, f"{alert} firing")
            assert firing[0]["labels"]["alertname"] == alert
    finally:
        close(client)

    # The correlation: the reading's device/seq -> its batch -> the batch's ledger transaction.
    def anchored() -> tuple[str, str] | None:
        with db.connect(own.postgres_dsn) as conn:
            row = conn.execute(
                "SELECT b.batch_id, b.tx_id FROM readings r JOIN batches b USING (batch_id)"
                " WHERE r.device_id = %s AND r.seq = 1 AND b.state = 'anchored'",
                (device.id,),
            ).fetchone()
        return (row[0], row[1]) if row else None

    batch_id, tx_id = wait_for(anchored, 60, "the reading's batch anchored")
    entries = _json_lines(log)
    assert any(
        e.get("device_id") == device.id and e.get("seq") == 1 and e.get("batch_id") == batch_id
        for e in entries
    ), "no log entry puts the reading into its batch"
    assert any(e.get("batch_id") == batch_id and "sealed" in e["msg"] for e in entries), (
        "no log entry seals the batch"
    )
    assert any(e.get("batch_id") == batch_id and e.get("tx_id") == tx_id for e in entries), (
        "no log entry names the batch's transaction"
    )
    assert any(
        e.get("device_id") == device.id and e.get("reason") == "malformed" for e in entries
    ), "no log entry for the quarantined message"


def _json_lines(log: Path) -> list[dict[str, Any]]:
    """The log's JSON entries (a line from before logging was set up would not be one)."""
    entries = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))
    return entries
