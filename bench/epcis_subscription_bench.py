"""Capture -> EPCIS subscription webhook delivered, p50/p95 (target p95 < 1 s).

    .venv/bin/python -m bench.epcis_subscription_bench [--captures 200] [--deadline 120]

The API in process (the tests' harness, on a schema of the bench's own), one organisation with a
named query (`EQ_bizStep=storing`) and a stream webhook subscription to a loopback receiver
(allow-listed as the tests do), and the subscription feed worker (alerts/epcis_feed.py) on a
thread with its default poll. Each capture is one POST /epcis/capture of a matching event; the
latency is from just before the POST to the receiver getting a signed document holding the
event (signature checked). Captures are sequential (each waits for its delivery or 5 s), so this
measures latency, not throughput. Bounded in count and time; loopback only; writes
bench/results/epcis_subscriptions.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import secrets
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from alerts.delivery import DeliverySettings
from alerts.epcis_feed import FeedSettings, FeedWorker
from alerts.outbound import OutboundPolicy
from alerts.webhook import SIGNATURE_HEADER, verify
from tests.support.api import api_harness
from tests.support.processes import http_server
from tests.support.tenancy import document, member, seed_parties, storing_event
from tracehub.config import Settings, WebhookSettings

RESULTS = Path(__file__).resolve().parent / "results" / "epcis_subscriptions.json"


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "n": len(ordered),
        "p50_s": round(statistics.median(ordered), 4),
        "p95_s": round(p95, 4),
        "max_s": round(ordered[-1], 4),
    }


def run(settings: Settings, captures: int, deadline_s: float) -> dict[str, Any]:
    allowed = dataclasses.replace(settings, webhooks=WebhookSettings(allow="127.0.0.1"))
    secret = secrets.token_hex(16)
    arrived: dict[str, float] = {}
    bad_signatures = 0
    got = threading.Condition()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            nonlocal bad_signatures
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            now = time.monotonic()
            try:
                verify(secret, body, self.headers.get(SIGNATURE_HEADER))
            except Exception:
                bad_signatures += 1
                self.send_response(401)
                self.end_headers()
                return
            self.send_response(204)
            self.end_headers()
            doc = json.loads(body)
            events = doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
            with got:
                for event in events:
                    arrived.setdefault(event["eventID"], now)
                got.notify_all()

        def log_message(self, *args: object) -> None:
            pass

    latencies: list[float] = []
    missed = 0
    with api_harness(allowed) as h, http_server(Receiver) as server:
        seed_parties(h)
        sup = member(h, "supplier", "sup")
        name = f"bench-{secrets.token_hex(4)}"
        query = {"name": name, "query": {"EQ_bizStep": "storing"}}
        assert h.client.post("/epcis/queries", json=query, headers=sup).status_code == 201
        dest = f"http://127.0.0.1:{server.server_address[1]}/hook"
        body = {"dest": dest, "signatureToken": secret, "stream": True}
        reply = h.client.post(f"/epcis/queries/{name}/subscriptions", json=body, headers=sup)
        assert reply.status_code == 201, reply.text
        feed = FeedWorker(
            h.connect,
            FeedSettings(
                base_url=settings.api.public_url,
                delivery=DeliverySettings(webhook_policy=OutboundPolicy.from_settings(allowed)),
            ),
        )
        feed.start()
        try:
            stop_at = time.monotonic() + deadline_s
            lot = f"B{secrets.token_hex(4)}"
            for _ in range(captures):
                if time.monotonic() > stop_at:
                    break
                event_id = f"urn:uuid:{uuid.uuid4()}"
                event = storing_event(lot, datetime.now(UTC), eventID=event_id)
                content = json.dumps(document(event))
                start = time.monotonic()
                reply = h.client.post("/epcis/capture", content=content, headers=sup)
                assert reply.status_code == 202, reply.text
                with got:
                    got.wait_for(lambda event_id=event_id: event_id in arrived, timeout=5)
                    if event_id in arrived:
                        latencies.append(arrived[event_id] - start)
                    else:
                        missed += 1
        finally:
            feed.stop()
    summary = _quantiles(latencies)
    return {
        "captures": captures,
        "measured": len(latencies),
        "missed": missed,
        "bad_signatures": bad_signatures,
        "capture_to_webhook": summary,
        "poll_s": FeedSettings(base_url="").poll_s,
        "target_p95_s": 1.0,
        "met": bool(latencies) and summary["p95_s"] < 1.0 and missed == 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.epcis_subscription_bench")
    parser.add_argument("--captures", type=int, default=200)
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds, at most")
    args = parser.parse_args()
    settings = Settings.from_env()
    print(f"EPCIS subscription bench: {args.captures} captures -> webhook", flush=True)
    results = run(settings, min(args.captures, 2000), min(args.deadline, 600.0))
    results["measured_at"] = datetime.now(UTC).isoformat()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"EPCIS subscription bench: results in {RESULTS}")


if __name__ == "__main__":
    main()
