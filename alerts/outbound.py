"""Webhook targets that cannot reach inside the hub's network (docs/security.md, decision 0016).

A target is checked when a subscription is created or changed (the API answers 422 with the
reason) and again before every delivery, because DNS may answer differently by then:

- `https` only, unless the operator's allow-list (`TRACEHUB_WEBHOOK_ALLOW`) names the host, the
  host and port, or a network holding its address;
- the host is resolved, and every address it resolves to must be a public one: loopback,
  private, shared (CGNAT), link-local, multicast, reserved and unspecified addresses are refused,
  IPv4 and IPv6 alike, including IPv4 addresses carried in IPv6 (IPv4-mapped, 6to4, NAT64),
  unless the allow-list admits them;
- the hub's own service endpoints (database, IPFS RPC, broker, API, peers, SMTP, Stripe) are
  refused even when allow-listed, and any of their ports on a non-public address.

The delivery then connects to the checked address itself: the URL's host is replaced by it,
while the `Host` header and the TLS server name (SNI and certificate check) stay the name, so a
second DNS answer cannot redirect the request (no DNS rebinding).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from psycopg.conninfo import conninfo_to_dict

from alerts.errors import AlertsError
from tracehub.config import API_PORT, Settings
from tracehub.errors import UnprocessableError

__all__ = [
    "AllowEntry",
    "CheckedTarget",
    "OutboundPolicy",
    "TargetRefusedError",
    "check_target",
    "parse_allow",
]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolve = Callable[[str, int], list[str]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class TargetRefusedError(AlertsError, UnprocessableError):
    """A webhook target the outbound policy refuses; the message is safe to store and show."""


@dataclass(frozen=True)
class AllowEntry:
    """One allow-list entry: a host name or address (with an optional port), or a network."""

    host: str | None = None
    port: int | None = None
    network: Network | None = None

    def admits(self, host: str, port: int, address: Address | None) -> bool:
        if self.network is not None:
            return address is not None and address in self.network
        if self.port is not None and self.port != port:
            return False
        return self.host == host.lower() or (
            address is not None and self.host == str(address).lower()
        )


def parse_allow(text: str | None) -> tuple[AllowEntry, ...]:
    """`host`, `host:port`, `[v6]:port` or CIDR entries, comma-separated; ValueError if bad."""
    entries: list[AllowEntry] = []
    for raw in (text or "").split(","):
        item = raw.strip().lower()
        if not item:
            continue
        if "/" in item:
            entries.append(AllowEntry(network=ipaddress.ip_network(item, strict=False)))
            continue
        try:  # a bare address, IPv6 ones included ("::1" has no port to split off)
            entries.append(AllowEntry(host=str(ipaddress.ip_address(item))))
            continue
        except ValueError:
            pass
        parsed = urlsplit(f"//{item}")
        if not parsed.hostname:
            raise ValueError(f"TRACEHUB_WEBHOOK_ALLOW: {raw!r} names no host")
        entries.append(AllowEntry(host=parsed.hostname, port=parsed.port))
    return tuple(entries)


def _endpoint(url: str) -> tuple[str, int] | None:
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    default = 443 if parts.scheme in ("https", "wss") else 80
    return parts.hostname.lower(), parts.port or default


def hub_endpoints(settings: Settings) -> frozenset[tuple[str, int]]:
    """(host, port) of every service of the hub the settings tree names."""
    found: set[tuple[str, int] | None] = {
        _endpoint(settings.ipfs_api),
        _endpoint(settings.stripe.api_base),
        _endpoint(settings.api.public_url),
        (settings.mqtt_host, settings.mqtt_tls_port),
        (settings.smtp.host, settings.smtp.port),
        ("127.0.0.1", API_PORT),
    }
    # Every PostgreSQL server of the DSN (with standbys, a multi-host list; libpq gives one port
    # for all hosts or one per host).
    dsn = conninfo_to_dict(settings.postgres_dsn)
    hosts = str(dsn.get("host") or "localhost").split(",")
    ports = str(dsn.get("port") or "5432").split(",")
    for i, host in enumerate(hosts):
        found.add((host or "localhost", int(ports[i if len(ports) > 1 else 0] or 5432)))
    for org in settings.fabric.peer_endpoints:
        for peer in settings.fabric.gateway_endpoints(org):
            found.add(_endpoint(f"//{peer}"))
    return frozenset(e for e in found if e is not None)


@dataclass(frozen=True)
class OutboundPolicy:
    """What webhooks may reach: the allow-list and the hub's own endpoints (always refused)."""

    allow: tuple[AllowEntry, ...] = ()
    hub: frozenset[tuple[str, int]] = field(default_factory=frozenset)
    #: host, port -> addresses (the system resolver; tests give their own)
    resolve: Resolve = field(default=lambda host, port: _resolve(host, port), compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        return cls(allow=parse_allow(settings.webhooks.allow), hub=hub_endpoints(settings))

    def allowed(self, host: str, port: int, address: Address | None = None) -> bool:
        return any(entry.admits(host, port, address) for entry in self.allow)

    def is_hub(self, port: int, address: Address) -> bool:
        """The address and port are one of the hub's services. Any loopback (or unspecified)
        address counts as the hub's own loopback, so `[::1]` or `127.0.0.2` do not get round
        a service listening on 127.0.0.1."""
        local = address.is_loopback or address.is_unspecified
        for host, hub_port in self.hub:
            if hub_port != port:
                continue
            hub_addresses = _addresses(host)
            if address in hub_addresses:
                return True
            if local and any(a.is_loopback or a.is_unspecified for a in hub_addresses):
                return True
        return False


@functools.lru_cache(maxsize=64)
def _addresses(host: str) -> frozenset[Address]:
    """The addresses of one of the hub's own hosts (empty if it does not resolve here)."""
    try:
        return frozenset(_plain(ipaddress.ip_address(a)) for a in _resolve(host, 0))
    except (OSError, ValueError):
        return frozenset()


@dataclass(frozen=True)
class CheckedTarget:
    """A target that passed: where to connect, and the name the request carries."""

    url: str  # as subscribed
    host: str  # the name: Host header, TLS SNI and certificate check
    port: int
    address: str  # the checked address the connection goes to

    @property
    def request_url(self) -> httpx.URL:
        return httpx.URL(self.url).copy_with(host=self.address)

    @property
    def host_header(self) -> str:
        default = 443 if self.url.startswith("https:") else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _plain(address: Address) -> Address:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64), else the address itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _kind(address: Address) -> str | None:
    """Why an address is not public (None: it is)."""
    if address.is_loopback:
        return "loopback address"
    if address.is_link_local:
        return "link-local address"
    if address.is_multicast:
        return "multicast address"
    if address.is_unspecified:
        return "unspecified address"
    if address.is_private:
        return "private address"
    if not address.is_global or address.is_reserved:
        return "reserved address"
    return None


def check_target(url: str, policy: OutboundPolicy) -> CheckedTarget:
    """The checked target of a webhook URL, or `TargetRefusedError` saying why not."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetRefusedError("refused: not a valid URL") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise TargetRefusedError("refused: a webhook target must be an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise TargetRefusedError("refused: credentials in the URL")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        resolved = [
            _plain(ipaddress.ip_address(a.split("%", 1)[0])) for a in policy.resolve(host, port)
        ]
    except (OSError, UnicodeError, ValueError):
        raise TargetRefusedError("refused: the host does not resolve") from None
    if not resolved:
        raise TargetRefusedError("refused: the host does not resolve")
    for address in resolved:
        _check_address(policy, parts.scheme, host, port, address)
    return CheckedTarget(url=url, host=host, port=port, address=str(resolved[0]))


def _check_address(
    policy: OutboundPolicy, scheme: str, host: str, port: int, address: Address
) -> None:
    # Every address a name resolves to is checked, not only the first: a resolver answering
    # one public and one private address must not get the private one through.
    if policy.is_hub(port, address):
        raise TargetRefusedError("refused: one of the hub's own services")
    allowed = policy.allowed(host, port, address)
    if scheme != "https" and not allowed:
        raise TargetRefusedError("refused: https required")
    kind = _kind(address)
    if kind is not None and not allowed:
        raise TargetRefusedError(f"refused: {kind}")
