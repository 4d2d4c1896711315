"""Webhooks may not reach the hub's own services: every Fabric gateway peer included."""

from __future__ import annotations

from alerts.outbound import hub_endpoints
from tracehub.config import Settings


def test_every_gateway_peer_of_the_ha_topology_is_the_hubs() -> None:
    settings = Settings.from_env(
        {"TRACEHUB_TOPOLOGY": "ha", "TRACEHUB_FABRIC_PORT_OFFSET": "13000"}
    )
    found = hub_endpoints(settings)
    assert {("127.0.0.1", 30051), ("127.0.0.1", 30061), ("127.0.0.1", 31051)} <= found
    assert ("127.0.0.1", 17051) not in found  # the offset moved them all


def test_the_single_topology_has_one_peer_per_org() -> None:
    found = hub_endpoints(Settings.from_env({}))
    assert {("127.0.0.1", 17051), ("127.0.0.1", 18051)} <= found
    assert ("127.0.0.1", 17061) not in found


def test_every_postgres_server_of_the_pair_is_the_hubs() -> None:
    """With a hot standby the DSN lists both servers (decision 0033): neither may be a target."""
    found = hub_endpoints(Settings.from_env({"TRACEHUB_POSTGRES_STANDBYS": "127.0.0.1:15433"}))
    assert {("127.0.0.1", 15432), ("127.0.0.1", 15433)} <= found
