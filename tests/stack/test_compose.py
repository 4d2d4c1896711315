"""docker-compose.yml describes the replicated topology: it cannot run here (no Docker engine), so
its YAML is checked instead: the services of the `ha` topology exist, every port is published on
loopback at the native stack's port, every volume, network, secret and dependency is declared,
and each service's organisation and machine are the ones docs/deployment.md names."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict

from tracehub.config import PROJECT_DIR, Settings

COMPOSE = PROJECT_DIR / "docker-compose.yml"
DEPLOYMENT = PROJECT_DIR / "docs" / "deployment.md"
HA_SERVICES = {
    "orderer", "orderer2", "orderer3",
    "peer0.org1", "peer1.org1", "peer0.org2", "chaincode",
    "kubo", "kubo2",
    "postgres", "postgres-standby",
    "mosquitto", "mosquitto-site",
    "gateway-1", "gateway-2", "api", "witness", "prometheus",
}  # fmt: skip
PORT = re.compile(r"^127\.0\.0\.1:(\d{1,5}):(\d{1,5})$")
VOLUME = re.compile(r"^([^:]+):(/[^:]*)(:ro|:rw)?$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict) and isinstance(document.get("services"), dict)
    return document


def _published(service: dict[str, Any]) -> dict[int, int]:
    """Host port -> container port of a service's `ports`."""
    out = {}
    for entry in service.get("ports", []):
        match = PORT.match(str(entry))
        assert match, f"{entry!r}: not 127.0.0.1:HOST:CONTAINER (loopback only)"
        host, container = int(match.group(1)), int(match.group(2))
        assert 0 < host < 65536 and 0 < container < 65536, entry
        out[host] = container
    return out


def test_the_replicated_topology_is_there(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= HA_SERVICES, sorted(HA_SERVICES - set(services))
    for name, service in services.items():
        assert "image" in service or "build" in service, f"{name}: neither image nor build"


def test_ports_are_loopback_unique_and_the_native_stacks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    owners: dict[int, str] = {}
    for name, service in services.items():
        if service.get("network_mode") == "host":
            assert "ports" not in service, f"{name}: host networking publishes no ports"
            assert "networks" not in service, f"{name}: host networking joins no network"
        for host in _published(service):
            assert host not in owners, f"port {host}: {owners[host]} and {name}"
            owners[host] = name
    # What TraceHub's processes (host networking) reach: the defaults of the ha settings.
    ha = Settings.from_env({"TRACEHUB_TOPOLOGY": "ha"})
    # The primary, then its standby: the ha settings' multi-host connection string.
    primary, standby = conninfo_to_dict(ha.postgres_dsn)["port"].split(",")
    expected = {
        int(primary): "postgres",
        int(standby): "postgres-standby",
        ha.mqtt_tls_port: "mosquitto",
    }
    for node, url in zip(("kubo", "kubo2"), ha.ipfs_endpoints, strict=True):
        expected[int(url.rsplit(":", 1)[1])] = node
    for org, index in ((1, 0), (1, 1), (2, 0)):
        peer = f"peer{index}.org{org}"
        expected[int(ha.fabric.peer_endpoint(org, index).rsplit(":", 1)[1])] = peer
        expected[int(ha.fabric.peer_ops_url(org, index).rsplit(":", 1)[1])] = peer
    for n, url in enumerate(ha.fabric.orderer_ops_urls):
        expected[int(url.rsplit(":", 1)[1])] = "orderer" if n == 0 else f"orderer{n + 1}"
    for port, name in expected.items():
        assert owners.get(port) == name, f"port {port} should be {name}'s, is {owners.get(port)}"


def test_everything_referenced_is_declared(compose: dict[str, Any]) -> None:
    services = compose["services"]
    volumes = set(compose.get("volumes") or {})
    networks = set(compose.get("networks") or {})
    secrets = set(compose.get("secrets") or {})
    used_volumes = set()
    for name, service in services.items():
        for entry in service.get("volumes", []):
            match = VOLUME.match(str(entry))
            assert match, f"{name}: volume {entry!r} is not SOURCE:/ABSOLUTE[:ro|:rw]"
            source = match.group(1)
            if source.startswith("./"):
                assert ".." not in source.split("/"), f"{name}: {entry!r} leaves the checkout"
            else:
                assert source in volumes, f"{name}: volume {source!r} is not declared"
                used_volumes.add(source)
        for network in service.get("networks", []):
            assert network in networks, f"{name}: network {network!r} is not declared"
        for secret in service.get("secrets", []):
            assert secret in secrets, f"{name}: secret {secret!r} is not declared"
        for dependency in service.get("depends_on", []):
            assert dependency in services, f"{name}: depends on unknown {dependency!r}"
        for key, value in (service.get("environment") or {}).items():
            # Compose takes strings (and numbers); a YAML true or null is a mistake.
            assert isinstance(value, str | int), f"{name}: {key}={value!r} is not a string"
    assert used_volumes == volumes, f"declared but unused: {sorted(volumes - used_volumes)}"
    for secret in compose.get("secrets", {}).values():
        assert str(secret["file"]).startswith("./.run/"), "secrets come from the run dir"


def test_organisations_and_machines_are_the_deployment_pages(compose: dict[str, Any]) -> None:
    page = DEPLOYMENT.read_text()
    for name, service in compose["services"].items():
        labels = service.get("labels") or {}
        organisation = labels.get("tracehub.organisation")
        machine = labels.get("tracehub.machine")
        assert organisation and machine, f"{name}: organisation and machine labels"
        row = next((line for line in page.splitlines() if line.startswith(f"| `{machine}`")), "")
        assert row, f"docs/deployment.md has no row for machine {machine}"
        assert organisation in row, f"{machine}: docs/deployment.md says not {organisation}"
        assert f"`{name}`" in row, f"docs/deployment.md does not put {name} on {machine}"
