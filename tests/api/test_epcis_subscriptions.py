"""EPCIS named queries and subscriptions against the real database: a webhook subscription gets
a matching capture within a second, signed, and nothing its owner may not see; scheduled
subscriptions; the WebSocket stream; SSRF targets refused when subscribing; the owner's scope
checked again when delivering."""

from __future__ import annotations

import dataclasses
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.websockets import WebSocketDisconnect

from alerts.delivery import DeliverySettings
from alerts.epcis_feed import CAPTURED_CHANNEL, FeedSettings, FeedWorker
from alerts.outbound import OutboundPolicy
from ingest.epcis import capture_events
from tests.support.alert_peers import RECEIVERS_ALLOW, WebhookReceiver, webhook_receiver
from tests.support.api import ApiHarness, api_harness
from tests.support.tenancy import document, member, seed_parties, storing_event
from tracehub.config import Settings, WebhookSettings


@pytest.fixture(scope="module")
def allowed(stack: Settings) -> Settings:
    """The stack's settings with the loopback receivers allow-listed (as tests/alerts do)."""
    return dataclasses.replace(stack, webhooks=WebhookSettings(allow=RECEIVERS_ALLOW))


@pytest.fixture(scope="module")
def h(allowed: Settings) -> Iterator[ApiHarness]:
    with api_harness(allowed) as harness:
        seed_parties(harness)
        yield harness


@pytest.fixture()
def feed(h: ApiHarness, allowed: Settings) -> Iterator[FeedWorker]:
    worker = FeedWorker(
        h.connect,
        FeedSettings(
            base_url="http://127.0.0.1:18000",
            delivery=DeliverySettings(
                webhook_policy=OutboundPolicy.from_settings(allowed), backoff_base_s=0.2
            ),
        ),  # the default poll_s: a capture is delivered because its commit wakes the feed
    )
    worker.start()
    yield worker
    worker.stop()


def _capture(h: ApiHarness, headers: dict[str, str], lot: str, **extra: Any) -> str:
    event_id = f"urn:uuid:{uuid.uuid4()}"
    body = json.dumps(document(storing_event(lot, datetime.now(UTC), eventID=event_id, **extra)))
    reply = h.client.post("/epcis/capture", content=body, headers=headers)
    assert reply.status_code == 202, reply.text
    return event_id


def _rival_capture(h: ApiHarness, lot: str) -> str:
    """An event of another organisation that matches the same query (bizStep storing)."""
    event_id = f"urn:uuid:{uuid.uuid4()}"
    event = storing_event(lot, datetime.now(UTC), eventID=event_id)
    event["quantityList"] = [
        {"epcClass": f"urn:epc:class:lgtin:4012345.011111.{lot}", "quantity": 1}
    ]
    with h.connect() as conn:
        capture_events(conn, [event], source="test:rival", org="rival")
        conn.commit()
    return event_id


def _named_query(h: ApiHarness, headers: dict[str, str], **query: Any) -> str:
    name = f"q-{secrets.token_hex(4)}"
    reply = h.client.post("/epcis/queries", json={"name": name, "query": query}, headers=headers)
    assert reply.status_code == 201, reply.text
    assert reply.headers["Location"] == f"/epcis/queries/{name}"
    return name


def _event_list(doc: dict[str, Any]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    return events


def _delivered_ids(receiver: WebhookReceiver) -> list[str]:
    return [e["eventID"] for doc in receiver.accepted for e in _event_list(doc)]


def _wait(predicate: Any, timeout_s: float) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"not within {timeout_s} s")
        time.sleep(0.01)
    return time.monotonic() - start


def test_named_query_lifecycle_and_tenancy(h: ApiHarness) -> None:
    sup = member(h, "supplier", "sup")
    buy = member(h, "buyer", "buy")
    lot = f"L{secrets.token_hex(4)}"
    name = _named_query(h, sup, EQ_bizStep="storing", eventType="ObjectEvent")
    assert (
        h.client.post("/epcis/queries", json={"name": name, "query": {}}, headers=sup).status_code
        == 409
    )
    reply = h.client.post(
        "/epcis/queries", json={"name": "x", "query": {"EQ_nope": "1"}}, headers=sup
    )
    assert reply.status_code == 400 and "EQ_nope" in reply.text
    assert name in [q["name"] for q in h.client.get("/epcis/queries", headers=sup).json()]
    # another organisation neither sees nor runs it
    assert name not in [q["name"] for q in h.client.get("/epcis/queries", headers=buy).json()]
    assert h.client.get(f"/epcis/queries/{name}", headers=buy).status_code == 404
    assert h.client.get(f"/epcis/queries/{name}/events", headers=buy).status_code == 404
    mine = _capture(h, sup, lot)
    events = h.client.get(f"/epcis/queries/{name}/events", headers=sup)
    assert events.status_code == 200, events.text
    ids = [e["eventID"] for e in _event_list(events.json())]
    assert mine in ids
    narrowed = h.client.get(f"/epcis/queries/{name}/events?EQ_bizStep=x", headers=sup)
    assert narrowed.status_code == 400  # a named query's filters are its own
    assert h.client.delete(f"/epcis/queries/{name}", headers=buy).status_code == 404
    assert h.client.delete(f"/epcis/queries/{name}", headers=sup).status_code == 204
    assert h.client.get(f"/epcis/queries/{name}", headers=sup).status_code == 404


def test_webhook_gets_a_matching_capture_within_a_second_and_nothing_else(
    h: ApiHarness, feed: FeedWorker
) -> None:
    sup = member(h, "supplier", "sup")
    name = _named_query(h, sup, EQ_bizStep="storing")
    with webhook_receiver(0) as receiver:
        receiver.secret = secrets.token_hex(16)
        reply = h.client.post(
            f"/epcis/queries/{name}/subscriptions",
            json={"dest": receiver.url, "signatureToken": receiver.secret, "stream": True},
            headers=sup,
        )
        assert reply.status_code == 201, reply.text
        sub = reply.json()
        assert "signatureToken" not in sub and "secret" not in sub
        assert reply.headers["Location"].endswith(sub["subscriptionID"])
        lot = f"L{secrets.token_hex(4)}"
        first = _capture(h, sup, lot)
        captured_at = time.monotonic()
        _wait(lambda: first in _delivered_ids(receiver), 5)
        latency = receiver.attempts[-1] - captured_at
        assert latency < 1.0, f"delivered {latency:.3f} s after the capture"
        assert not receiver.rejected  # every delivery carried a valid signature
        doc = receiver.accepted[0]
        assert doc["type"] == "EPCISQueryDocument"
        assert doc["epcisBody"]["queryResults"]["queryName"] == name
        proof = doc["tracehub:proofs"][0]
        assert proof["eventID"] == first
        assert proof["eventHash"].startswith("ni:///sha-256;")
        assert proof["proof"].endswith("/proofs/events/" + first.replace(":", "%3A"))
        # another organisation's event matching the same query, then one of ours
        rival = _rival_capture(h, f"R{secrets.token_hex(4)}")
        second = _capture(h, sup, lot)
        _wait(lambda: second in _delivered_ids(receiver), 5)
        assert rival not in _delivered_ids(receiver)
        assert _delivered_ids(receiver).count(first) == 1  # de-duplicated per event
        listed = h.client.get(f"/epcis/queries/{name}/subscriptions", headers=sup).json()
        assert [s["subscriptionID"] for s in listed] == [sub["subscriptionID"]]
        path = f"/epcis/queries/{name}/subscriptions/{sub['subscriptionID']}"
        assert h.client.get(path, headers=member(h, "supplier", "buy")).status_code == 404
        assert h.client.delete(path, headers=sup).status_code == 204
        assert h.client.get(path, headers=sup).status_code == 404


def test_a_capture_wakes_the_feed_at_commit_and_a_rolled_back_one_does_not(
    h: ApiHarness,
) -> None:
    def capture(commit: bool) -> None:
        event = storing_event(f"W{secrets.token_hex(4)}", datetime.now(UTC))
        event["eventID"] = f"urn:uuid:{uuid.uuid4()}"
        with h.connect() as conn:
            capture_events(conn, [event], source="test:wake", org="rival")
            if commit:
                conn.commit()
            else:
                conn.rollback()

    worker = FeedWorker(h.connect, FeedSettings(base_url="http://127.0.0.1:18000", poll_s=30))
    try:
        with h.connect() as listening:
            listening.execute(f"LISTEN {CAPTURED_CHANNEL}")
            listening.commit()
            capture(commit=False)
            assert list(listening.notifies(timeout=0.5, stop_after=1)) == []
            # Just after a whole second, the feed would sleep until the next one (poll_s is
            # 30 s): a capture committed 0.1 s in wakes it long before.
            time.sleep(1 - time.time() % 1 + 0.02)
            started = time.monotonic()
            threading.Timer(0.1, capture, kwargs={"commit": True}).start()
            worker._wait(listening)
            waited = time.monotonic() - started
            assert 0.05 < waited < 0.6, f"woke {waited:.3f} s after it began to wait"
    finally:
        worker.stop()


def test_scheduled_subscription_reports_on_its_schedule(h: ApiHarness, feed: FeedWorker) -> None:
    sup = member(h, "supplier", "sup")
    name = _named_query(h, sup, EQ_bizStep="storing")
    with webhook_receiver(0) as receiver:
        reply = h.client.post(
            f"/epcis/queries/{name}/subscriptions",
            json={"dest": receiver.url, "schedule": {"second": "[0-59]"}, "reportIfEmpty": True},
            headers=sup,
        )
        assert reply.status_code == 201, reply.text
        receiver.secret = reply.json()["signatureToken"]  # made by the hub, shown once
        event = _capture(h, sup, f"L{secrets.token_hex(4)}")
        _wait(lambda: event in _delivered_ids(receiver), 5)
        _wait(lambda: any(not d["tracehub:proofs"] for d in receiver.accepted), 5)  # empty too
        assert not receiver.rejected


def test_subscription_refuses_inside_targets_and_needs_stream_or_schedule(h: ApiHarness) -> None:
    sup = member(h, "supplier", "sup")
    name = _named_query(h, sup)
    path = f"/epcis/queries/{name}/subscriptions"
    for dest in (
        "http://169.254.169.254/latest/meta-data",  # cloud metadata (link-local)
        "http://10.0.0.1/hook",  # private
        "http://127.0.0.1:15432/",  # the hub's database, refused even when allow-listed
        "file:///etc/passwd",
    ):
        reply = h.client.post(path, json={"dest": dest, "stream": True}, headers=sup)
        assert reply.status_code in (400, 422), (dest, reply.status_code, reply.text)
    with webhook_receiver(0) as receiver:
        reply = h.client.post(path, json={"dest": receiver.url}, headers=sup)
        assert reply.status_code == 400 and "stream" in reply.text
        reply = h.client.post(
            path, json={"dest": receiver.url, "schedule": {"hour": "25"}}, headers=sup
        )
        assert reply.status_code == 400 and "schedule.hour" in reply.text
    assert h.client.get(path, headers=sup).json() == []


def test_delivery_rechecks_the_owners_scope(h: ApiHarness, allowed: Settings) -> None:
    """Queued while the owner could see the event, withheld once it no longer can."""
    username = f"sub-{secrets.token_hex(4)}"
    _, password = h.user(["supplier"], org_id="sup", username=username)
    sup = {"Authorization": f"Bearer {h.token(username, password)}"}
    name = _named_query(h, sup, EQ_bizStep="storing")
    worker = FeedWorker(
        h.connect,
        FeedSettings(
            base_url="http://x",
            delivery=DeliverySettings(webhook_policy=OutboundPolicy.from_settings(allowed)),
        ),
    )
    try:
        with webhook_receiver(0) as receiver, h.connect() as conn:
            receiver.secret = secrets.token_hex(16)
            body = {"dest": receiver.url, "signatureToken": receiver.secret, "stream": True}
            reply = h.client.post(f"/epcis/queries/{name}/subscriptions", json=body, headers=sup)
            assert reply.status_code == 201, reply.text
            event = _capture(h, sup, f"L{secrets.token_hex(4)}")
            from ingest.epcis.subscriptions import fill_outbox

            assert fill_outbox(conn) == 0  # none behind
            queued = conn.execute(
                "SELECT state FROM epcis_subscription_outbox WHERE event_id = %s", (event,)
            ).fetchone()
            assert queued == ("pending",)  # queued while its owner could see it
            conn.execute("UPDATE users SET disabled = true WHERE username = %s", (username,))
            conn.commit()
            worker.run_once(conn)
            state = conn.execute(
                "SELECT state FROM epcis_subscription_outbox WHERE event_id = %s", (event,)
            ).fetchone()
            assert state == ("withheld",)
            assert receiver.attempts == []
    finally:
        worker.stop()


def test_websocket_subscriber_receives_a_matching_capture(h: ApiHarness) -> None:
    sup = member(h, "supplier", "sup")
    token = sup["Authorization"].split(" ", 1)[1]
    name = _named_query(h, sup, EQ_bizStep="storing")
    path = f"/epcis/queries/{name}/events?stream=true"
    with pytest.raises(WebSocketDisconnect) as refused, h.client.websocket_connect(path):
        pass
    assert refused.value.code == 1008
    with pytest.raises(WebSocketDisconnect):  # another organisation's query name: no such query
        other = member(h, "buyer", "buy")["Authorization"].split(" ", 1)[1]
        with h.client.websocket_connect(path, subprotocols=["tracehub.bearer", other]):
            pass
    with h.client.websocket_connect(path, subprotocols=["tracehub.bearer", token]) as ws:
        assert ws.accepted_subprotocol == "tracehub.bearer"
        rival = _rival_capture(h, f"R{secrets.token_hex(4)}")
        event = _capture(h, sup, f"L{secrets.token_hex(4)}")
        doc = json.loads(ws.receive_text())
        ids = [e["eventID"] for e in doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]]
        assert ids == [event]
        assert rival not in ids
        assert doc["tracehub:proofs"][0]["eventHash"].startswith("ni:///sha-256;")
