"""Finding: webhook SSRF. A subscription to the internal Kubo RPC was delivered, the cloud
metadata address and `[::1]:15432` were accepted, and the stored delivery error ("answered HTTP
404") made the hub a port scanner of its own network.

Now: targets are checked at subscription time (422) and again at delivery; the connection goes
to the checked address; no redirects; errors stored without the remote's details."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import pytest

from alerts.delivery import DeliverySettings
from alerts.engine import AlertEngine, EngineSettings
from alerts.outbound import OutboundPolicy, TargetRefusedError, check_target, parse_allow
from tests.security.conftest import STAFF_ORG, add_staff_org
from tests.support.alert_peers import env_row, make_shipment
from tests.support.api import ApiHarness, api_harness
from tests.support.outbound import deliver_once, peer
from tests.support.processes import free_port
from tracehub.config import Settings, WebhookSettings

#: A name under the reserved .example domain: it resolves nowhere but in these tests' resolver.
PARTNER = "hooks.partner.example"

INSIDE = [
    ("http://127.0.0.1:15001/api/v0/version", "hub's own services"),  # Kubo's RPC
    ("https://[::1]:15432/", "hub's own services"),  # PostgreSQL over IPv6 loopback
    ("https://127.0.0.1:18000/auth/me", "hub's own services"),  # the API itself
    ("https://169.254.169.254/latest/meta-data/", "link-local address"),  # cloud metadata
    ("https://[::ffff:127.0.0.1]:8443/", "loopback address"),  # IPv4-mapped IPv6
    ("https://[::ffff:169.254.169.254]/", "link-local address"),
    ("https://[64:ff9b::a00:1]/", "private address"),  # NAT64 of 10.0.0.1
    ("https://10.1.2.3/hook", "private address"),
    ("https://192.168.0.10/hook", "private address"),
    ("https://[fd00::1]/hook", "private address"),
    ("https://[fe80::1]/hook", "link-local address"),
    ("https://224.0.0.1/hook", "multicast address"),
    ("https://0.0.0.0:9000/hook", "unspecified address"),
    ("https://100.64.0.1/hook", "reserved address"),  # carrier-grade NAT
    ("https://localhost:9000/hook", "loopback address"),
    ("http://8.8.8.8/hook", "https required"),
    ("https://user:pw@8.8.8.8/hook", "credentials"),
    ("https://no-such-host.invalid/hook", "does not resolve"),
]


@pytest.mark.parametrize(("target", "reason"), INSIDE)
def test_a_subscription_to_an_inside_target_is_refused(
    harness: ApiHarness, target: str, reason: str
) -> None:
    staff = harness.headers("logistics", org_id=STAFF_ORG)
    body = {"channel": "webhook", "target": target}
    reply = harness.client.post("/alerts/subscriptions", headers=staff, json=body)
    assert reply.status_code == 422, reply.text
    assert reason in reply.json()["detail"]
    assert harness.client.get("/alerts/subscriptions", headers=staff).json() == []


def test_a_subscription_cannot_be_changed_to_an_inside_target(harness: ApiHarness) -> None:
    staff = harness.headers("logistics", org_id=STAFF_ORG)
    public = {"channel": "webhook", "target": "https://8.8.8.8/hook"}
    created = harness.client.post("/alerts/subscriptions", headers=staff, json=public)
    assert created.status_code == 201, created.text
    url = f"/alerts/subscriptions/{created.json()['subscription_id']}"
    inside = {**public, "target": "https://169.254.169.254/latest/meta-data/"}
    assert harness.client.put(url, headers=staff, json=inside).status_code == 422
    assert harness.client.get(url, headers=staff).json()["target"] == public["target"]


def test_an_allow_listed_loopback_still_cannot_reach_the_hubs_services(stack: Settings) -> None:
    opened = dataclasses.replace(stack, webhooks=WebhookSettings(allow="127.0.0.0/8,::1"))
    with api_harness(opened) as h, peer() as receiver:
        add_staff_org(h)
        staff = h.headers("logistics", org_id=STAFF_ORG)
        for port in (15001, 15432, 18000, 12111, 18883, 17051, 18051):
            for host in ("127.0.0.1", "127.0.0.2", "[::1]"):
                body = {"channel": "webhook", "target": f"http://{host}:{port}/x"}
                reply = h.client.post("/alerts/subscriptions", headers=staff, json=body)
                assert reply.status_code == 422, (body, reply.text)
                assert "hub's own services" in reply.json()["detail"]
        ok = {"channel": "webhook", "target": receiver.url}
        assert h.client.post("/alerts/subscriptions", headers=staff, json=ok).status_code == 201


def test_every_answer_of_a_name_is_checked_not_only_the_first() -> None:
    policy = OutboundPolicy(resolve=lambda host, port: ["8.8.8.8", "127.0.0.1"])
    with pytest.raises(TargetRefusedError, match="loopback address"):
        check_target(f"https://{PARTNER}/hook", policy)


# -- at delivery time ----------------------------------------------------------------------


def _alert_for(h: ApiHarness, target: str) -> None:
    """A webhook subscription to `target` written straight into the table (as if it passed when
    created and DNS changed since), and an alert that queues a delivery to it."""
    tag = uuid.uuid4().hex[:10]
    with h.connect() as conn:
        s = make_shipment(conn, tag)
        conn.execute(
            "INSERT INTO alert_subscriptions (channel, target, secret) VALUES ('webhook', %s, 's')",
            (target,),
        )
        conn.execute(
            "INSERT INTO alert_rules (rule_id, kind, shipment_id, params)"
            " VALUES (%s, 'temperature_excursion', %s, '{\"grace_s\": 0}')",
            (f"hot-{tag}", s.shipment_id),
        )
    engine = AlertEngine(h.connect, EngineSettings(cache_ttl_s=0))
    try:
        assert engine.evaluate([env_row(s.device_id, 1, datetime.now(UTC), 30.0)])
    finally:
        engine.close()


def _policy(allow: str | None, answers: dict[str, str]) -> OutboundPolicy:
    """The stack's policy with `allow`, resolving the names in `answers` to their address."""
    return dataclasses.replace(
        OutboundPolicy.from_settings(Settings()),
        allow=parse_allow(allow),
        resolve=lambda host, port: [answers.get(host, host)],
    )


def test_a_name_that_now_resolves_inside_is_refused_at_delivery(harness: ApiHarness) -> None:
    with peer() as receiver:
        _alert_for(harness, f"https://{PARTNER}:{receiver.port}/hook")
        rebound = _policy(None, {PARTNER: "127.0.0.1"})
        state, error = deliver_once(harness.connect, DeliverySettings(webhook_policy=rebound))
        assert (state, error) == ("pending", "DeliveryError: refused: loopback address")
        assert receiver.hosts == []  # nothing reached it


def test_the_connection_goes_to_the_checked_address_with_the_name_as_host(
    harness: ApiHarness,
) -> None:
    # The name resolves only in the policy's resolver: the request can have arrived only by
    # connecting to the address the check returned, never by resolving the name again.
    with peer() as receiver:
        _alert_for(harness, f"http://{PARTNER}:{receiver.port}/hook")
        policy = _policy(PARTNER, {PARTNER: "127.0.0.1"})
        state, error = deliver_once(harness.connect, DeliverySettings(webhook_policy=policy))
        assert (state, error) == ("delivered", None)
        assert receiver.hosts == [f"{PARTNER}:{receiver.port}"]


@pytest.mark.parametrize(
    ("behaviour", "stored"),
    [
        ({"status": 404, "body": b"<h1>internal admin</h1> secret-token-123"}, "HTTP error status"),
        ({"status": 500, "body": b"Traceback: db password"}, "HTTP error status"),
        ({"delay_s": 2.0}, "timeout"),
    ],
)
def test_a_delivery_error_does_not_tell_what_answered(
    harness: ApiHarness, behaviour: dict[str, object], stored: str
) -> None:
    with peer(**behaviour) as receiver:
        _alert_for(harness, receiver.url)
        settings = DeliverySettings(webhook_policy=_policy("127.0.0.1", {}), webhook_timeout_s=0.5)
        state, error = deliver_once(harness.connect, settings)
    assert (state, error) == ("pending", f"DeliveryError: {stored}")


def test_a_closed_port_and_an_open_one_look_alike(harness: ApiHarness) -> None:
    _alert_for(harness, f"http://127.0.0.1:{free_port()}/hook")
    settings = DeliverySettings(webhook_policy=_policy("127.0.0.1", {}))
    assert deliver_once(harness.connect, settings) == ("pending", "DeliveryError: unreachable")


def test_a_redirect_is_not_followed(harness: ApiHarness) -> None:
    with peer() as inside, peer(status=307) as hop:
        hop.location = inside.url  # e.g. the Kubo RPC, in an attack
        _alert_for(harness, hop.url)
        settings = DeliverySettings(webhook_policy=_policy("127.0.0.1", {}))
        state, error = deliver_once(harness.connect, settings)
        assert (state, error) == ("pending", "DeliveryError: HTTP error status")
        assert len(hop.hosts) == 1 and inside.hosts == []
