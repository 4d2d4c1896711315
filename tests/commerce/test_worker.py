"""`python -m commerce worker` as a process: its first sweep notifies alerts raised while no
worker ran, then it follows NOTIFY tracehub_alerts and EPCIS custody events; SIGTERM stops it
cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ingest.epcis.store import capture_events
from tests.support.alert_peers import smtp_server
from tests.support.commerce import (
    GTIN_A,
    commerce_harness,
    move_order,
    party_headers,
    place_order,
)
from tests.support.processes import wait_until
from tracehub.config import PROJECT_DIR, Settings

pytestmark = pytest.mark.integration


def test_worker_sweeps_then_follows_notifications(stack: Settings) -> None:
    with (
        smtp_server() as (smtp_port, inbox),
        commerce_harness(stack) as h,
    ):
        buyer = party_headers(h, "buyer", "buy-a", "ops@buy-a.example")
        supplier = party_headers(h, "supplier", "sup-a", "qa@sup-a.example")
        order_id = place_order(h, buyer, "w1", incoterm="DAP").json()["order_id"]
        move_order(h, supplier, order_id, "confirmed")
        shipment = h.client.post(
            f"/commerce/orders/{order_id}/shipments",
            headers=supplier,
            json={
                "shipment_id": "SHP-W1",
                "origin": "a",
                "destination": "b",
                "expected_delivery": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
                "lots": [{"gtin": GTIN_A, "lot": "L2", "sscc": "009506001234567897"}],
            },
        )
        assert shipment.status_code == 201, shipment.text
        with h.connect() as conn:
            early = conn.execute(
                "INSERT INTO alerts (rule_id, kind, gtin, lot, started_at) VALUES"
                " ('r', 'humidity_excursion', %s, 'L2', now()) RETURNING alert_id::text",
                (GTIN_A,),
            ).fetchone()[0]
            conn.commit()
        env = {**os.environ, "TRACEHUB_SMTP_PORT": str(smtp_port)}
        worker = subprocess.Popen(
            [
                str(PROJECT_DIR / ".venv/bin/python"),
                "-m",
                "commerce",
                "worker",
                "--schema",
                h.schema,
            ],
            cwd=PROJECT_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        targets = stack.metrics_targets_dir / f"worker-commerce-{worker.pid}.json"
        try:
            assert worker.stdout is not None
            assert "listening" in worker.stdout.readline()
            wait_until(lambda: len(inbox) == 2, 20, "the sweep's two mails")
            assert all(early in m.get_payload() for m in inbox)
            with h.connect() as conn:
                late = conn.execute(
                    "INSERT INTO alerts (rule_id, kind, shipment_id, started_at) VALUES"
                    " ('r', 'custody_gap', 'SHP-W1', now()) RETURNING alert_id::text"
                ).fetchone()[0]
                conn.execute(
                    "SELECT pg_notify('tracehub_alerts', %s)",
                    (
                        json.dumps(
                            {
                                "alert_id": late,
                                "state": "open",
                                "shipment_id": "SHP-W1",
                                "kind": "custody_gap",
                            }
                        ),
                    ),
                )
                conn.commit()
            wait_until(lambda: len(inbox) == 4, 20, "the notified alert's two mails")
            assert sorted(m["X-Rcpt"] for m in inbox[2:]) == [
                "ops@buy-a.example",
                "qa@sup-a.example",
            ]
            assert all(late in m.get_payload() for m in inbox[2:])
            # an EPCIS shipping event naming the shipment's SSCC moves it
            with h.connect() as conn:
                capture_events(
                    conn,
                    [
                        {
                            "type": "ObjectEvent",
                            "eventTime": "2026-11-20T10:00:00Z",
                            "eventTimeZoneOffset": "+00:00",
                            "action": "OBSERVE",
                            "bizStep": "shipping",
                            "epcList": ["urn:epc:id:sscc:0950600.0123456789"],
                        }
                    ],
                    source="test",
                )
                conn.commit()

            def moved() -> bool:
                with h.connect() as conn:
                    row = conn.execute(
                        "SELECT state FROM shipments WHERE shipment_id = 'SHP-W1'"
                    ).fetchone()
                return bool(row and row[0] == "in_transit")

            wait_until(moved, 20, "the worker to apply the EPCIS shipping event")
            # Its metrics, found through the targets file: every notification sent.
            entry = json.loads(targets.read_text())[0]
            assert entry["labels"] == {"job": "worker", "process": f"commerce-{worker.pid}"}
            page = httpx.get(f"http://{entry['targets'][0]}/metrics", timeout=5).text
            assert "tracehub_worker_outbox_depth 0.0" in page.splitlines()
            assert "tracehub_worker_alert_delivery_failures_total 0.0" in page.splitlines()
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=20) == 0
        assert not targets.exists(), "a stopped worker leaves no targets file behind"
        order = h.client.get(f"/commerce/orders/{order_id}", headers=buyer).json()
        assert sorted(order["alerts"]) == sorted([early, late])
