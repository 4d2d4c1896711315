"""Excursion -> alert delivered, through the real path, p50/p95 (target p95 < 1 s).

    .venv/bin/python -m bench.alert_bench [--excursions 30] [--deadline 180]

One simulated logger (enrolled in the PKI and on the ledger) on one shipment with a 2..8 °C rule
and no grace period. Each excursion: an out-of-band reading is signed and published over MQTT
(mTLS) -> `python -m gateway` verifies and stores it -> its alert worker raises the alert (EPCIS
event captured) -> the outbox publishes it on tracehub/v1/alerts/temperature_excursion, and the API
streams it over SSE (NOTIFY -> LISTEN). Measured from just before the publish to the arrival at an
MQTT subscriber and at an SSE client. Then an in-band reading ends the episode, and the next
excursion starts. Everything runs in a schema of the bench's own. Bounded in count and time; writes
bench/results/alerts.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization

from api.auth import create_user
from api.config import ApiConfig
from certs.broker import BrokerEndpoint, admit_gateway
from certs.enrolment import enrol_simulated_devices
from certs.pki import PKI
from tests.support.alert_peers import api_server, make_shipment, mqtt_alerts, sse_reader
from tests.support.db import migrated_schema
from tests.support.mqtt import close, connect, device_client
from tracehub import db
from tracehub.config import PROJECT_DIR, Settings
from tracehub.envelope import reading_hash, sign_reading
from tracehub.reading import GENESIS_PREV, Reading

RESULTS = Path(__file__).resolve().parent / "results" / "alerts.json"


class Logger:
    """A simulated logger that signs readings as it goes (ts = now)."""

    def __init__(self, pki: PKI, settings: Settings) -> None:
        self.id = f"abench-{uuid.uuid4().hex[:10]}"
        enrol_simulated_devices(pki, settings.fabric, [self.id])  # the gateway needs the ledger's
        _, key_path = pki.device_paths(self.id)
        self.key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        self.cert = pki.device(self.id)[0].certificate
        self.seq, self.prev = 0, GENESIS_PREV
        self.topic = f"tracehub/v1/devices/{self.id}/readings"

    def sign(self, temperature: float) -> bytes:
        self.seq += 1
        now = datetime.now(UTC)
        reading = Reading(
            device=self.id,
            seq=self.seq,
            ts=now.replace(microsecond=now.microsecond // 1000 * 1000),
            kind="environment",
            data={"temperature_c": temperature, "humidity_pct": 50.0},
            prev=self.prev,
        )
        envelope = sign_reading(reading, self.key, self.cert)  # type: ignore[arg-type]
        self.prev = reading_hash(envelope)
        return envelope


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "p50_s": round(statistics.median(ordered), 4),
        "p95_s": round(p95, 4),
        "max_s": round(ordered[-1], 4),
        "mean_s": round(statistics.fmean(ordered), 4),
    }


def _wait(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def run(settings: Settings, excursions: int, deadline_s: float) -> dict[str, Any]:
    pki = PKI(settings.pki_dir)
    logger = Logger(pki, settings)
    time.sleep(1.1)  # certificates are valid from the next whole second
    with migrated_schema(settings.postgres_dsn) as schema:
        dsn = db.with_search_path(settings.postgres_dsn, schema)
        with db.connect(dsn) as conn:
            shipment = make_shipment(conn, uuid.uuid4().hex[:10], device_id=logger.id)
            conn.execute(
                "INSERT INTO alert_rules (rule_id, kind, shipment_id, params)"
                " VALUES ('bench-cold', 'temperature_excursion', %s, '{\"grace_s\": 0}')",
                (shipment.shipment_id,),
            )
            password = secrets.token_urlsafe(12)
            create_user(conn, "bench-ops", password, ["logistics"])
        log = RESULTS.parent / "alerts-gateway.log"
        log.parent.mkdir(parents=True, exist_ok=True)  # a fresh clone has no results folder
        log.write_bytes(b"")
        name = f"abench-{uuid.uuid4().hex[:6]}"
        admit_gateway(pki, BrokerEndpoint.of(settings), name)  # its own broker identities
        gateway = subprocess.Popen(
            [
                str(PROJECT_DIR / ".venv/bin/python"),
                "-m",
                "gateway",
                "--name",
                name,
                "--group",
                f"abench-{uuid.uuid4().hex[:6]}",
                "--session-expiry",
                "120",
            ],
            cwd=PROJECT_DIR,
            env={**os.environ, "TRACEHUB_POSTGRES_DSN": dsn},
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        config = ApiConfig(stack=settings, token_key=secrets.token_bytes(32), search_path=schema)
        client = device_client(settings, logger.id)
        sse_lat: list[float] = []
        mqtt_lat: list[float] = []
        missed = 0
        try:
            if not _wait(lambda: b"subscribed as group" in log.read_bytes(), 60):
                raise SystemExit(f"alert bench: the gateway did not subscribe; see {log}")
            with api_server(config) as base_url:
                token = httpx.post(
                    f"{base_url}/auth/token",
                    data={"username": "bench-ops", "password": password},
                ).json()["access_token"]
                with (
                    sse_reader(base_url, {"Authorization": f"Bearer {token}"}) as sse,
                    mqtt_alerts(settings) as seen,
                ):
                    assert connect(client, settings), "the broker refused the logger"
                    client.publish(logger.topic, logger.sign(5.0), qos=1).wait_for_publish(5)
                    stop_at = time.monotonic() + deadline_s
                    for _ in range(excursions):
                        if time.monotonic() > stop_at:
                            break
                        n_sse = len([e for _, e in sse.events if e["change"] == "opened"])
                        n_mqtt = len([m for _, _, m in seen.messages if m["change"] == "opened"])
                        envelope = logger.sign(11.0)
                        t0 = time.monotonic()
                        client.publish(logger.topic, envelope, qos=1)

                        ok = _wait(
                            lambda n_sse=n_sse, n_mqtt=n_mqtt: (
                                len([e for _, e in sse.events if e["change"] == "opened"]) > n_sse
                                and len([m for _, _, m in seen.messages if m["change"] == "opened"])
                                > n_mqtt
                            ),
                            10,
                        )
                        if not ok:
                            missed += 1
                            continue
                        t_sse = [t for t, e in sse.events if e["change"] == "opened"][n_sse]
                        t_mqtt = [t for t, _, m in seen.messages if m["change"] == "opened"][n_mqtt]
                        sse_lat.append(t_sse - t0)
                        mqtt_lat.append(t_mqtt - t0)
                        # Back in band: the episode ends; the next excursion is a new alert.
                        n_cleared = len([e for _, e in sse.events if e["change"] == "cleared"])
                        client.publish(logger.topic, logger.sign(5.0), qos=1)
                        _wait(
                            lambda n=n_cleared: (
                                len([e for _, e in sse.events if e["change"] == "cleared"]) > n
                            ),
                            10,
                        )
                        time.sleep(0.05)
            with db.connect(dsn) as conn:
                row = conn.execute(
                    "SELECT count(*), count(event_hash) FROM alerts WHERE shipment_id = %s",
                    (shipment.shipment_id,),
                ).fetchone()
                alerts, hashed = row if row else (0, 0)
        finally:
            close(client)
            gateway.send_signal(signal.SIGTERM)
            try:
                gateway.wait(30)
            except subprocess.TimeoutExpired:
                gateway.kill()
    return {
        "excursions": len(sse_lat) + missed,
        "missed": missed,
        "alerts_raised": alerts,
        "alerts_with_epcis_hash": hashed,
        "excursion_to_sse": _quantiles(sse_lat),
        "excursion_to_mqtt": _quantiles(mqtt_lat),
        "target_p95_s": 1.0,
        "met": bool(sse_lat)
        and _quantiles(sse_lat)["p95_s"] < 1.0
        and _quantiles(mqtt_lat)["p95_s"] < 1.0
        and missed == 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.alert_bench")
    parser.add_argument("--excursions", type=int, default=30)
    parser.add_argument("--deadline", type=float, default=180.0, help="seconds, at most")
    args = parser.parse_args()
    settings = Settings.from_env()
    print(f"alert bench: {args.excursions} excursions through a real gateway", flush=True)
    results = run(settings, args.excursions, args.deadline)
    results["measured_at"] = datetime.now(UTC).isoformat()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"alert bench: results in {RESULTS}")


if __name__ == "__main__":
    main()
