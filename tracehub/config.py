"""The settings tree: every environment variable TraceHub's Python code honours, read in one place.

`Settings.from_env()` is the only reader of the environment. It returns plain, typed, frozen
values: where the local stack's services listen and where its generated material lives (the
root), and one section per concern (`api`, `smtp`, `stripe`, `epcis`, `webhooks`). Parts build
their own objects from it (`api.config.ApiConfig`, `commerce.config.CommerceConfig`,
`alerts.delivery.DeliverySettings`, `alerts.outbound.OutboundPolicy`); the kernel imports no
part, so nothing here does either.

Every variable is declared once, on its field, with its default and a one-line description;
`markdown_table()` renders them for docs/configuration.md (`python -m tracehub.config`), and a
test keeps that page and this tree in step. An empty value counts as unset, as in the stack
scripts (`${TRACEHUB_RUN:-...}`). Defaults match network/stack.sh, so the same code runs against
another deployment (docker-compose.yml, or a second stack on other ports) by setting variables.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from psycopg.conninfo import conninfo_to_dict, make_conninfo

PROJECT_DIR = Path(__file__).resolve().parent.parent

#: Where `python -m api` listens by default (loopback; a reverse proxy fronts it in production).
API_HOST = "127.0.0.1"
API_PORT = 18000

#: stripe-mock accepts any key of this shape; it is not a secret (real keys come from the env).
STRIPE_MOCK_KEY = "sk_test_tracehubStripeMock"

#: The database role each long-running process connects as (ingest/roles.py grants their rights;
#: the stack's set-up gives them passwords). Everything else (migrations, demo, tests, benches)
#: connects as the DSN's own user, the schema's owner.
DATABASE_ROLES = {
    "gateway": "tracehub_gateway",
    "api": "tracehub_api",
    "worker": "tracehub_worker",
}


#: Added to the default of every field that names a port of the local stack (``_env(...,
#: port=True)``), so a second stack runs beside the everyday one (network/fabric/env.sh reads it
#: too). Read before the tree, since the other defaults depend on it.
PORT_OFFSET_VARIABLE = "TRACEHUB_PORT_OFFSET"
#: The stack's PostgreSQL primary and, in the ha topology, its standby (network/stack.sh), before
#: the port offset.
STACK_PRIMARY_PORT, STACK_STANDBY_PORT = 15432, 15433


def _env(
    name: str,
    doc: str,
    *,
    readers: str,
    aliases: tuple[str, ...] = (),
    port: bool = False,
) -> dict[str, object]:
    """The metadata of a field read from the variable `name` (then its `aliases`), for the docs;
    ``port``: its default (a port, or URLs with ports) moves by `TRACEHUB_PORT_OFFSET`."""
    return {"env": name, "doc": doc, "readers": readers, "aliases": aliases, "port": port}


@dataclass(frozen=True)
class ApiSettings:
    """The HTTP API (`python -m api`)."""

    search_path: str | None = field(
        default=None,
        metadata=_env(
            "TRACEHUB_API_SEARCH_PATH",
            "PostgreSQL schema the API works in (`-c search_path=`); unset: the DSN's own",
            readers="api",
        ),
    )
    public_url: str = field(
        default=f"http://{API_HOST}:{API_PORT}",
        metadata=_env(
            "TRACEHUB_PUBLIC_URL",
            "Base URL the API is reached at, encoded in QR codes and Digital Links",
            readers="api (qr), demo.scenario (`--base-url` default)",
            port=True,
        ),
    )
    page_cache_s: float = field(
        default=2.0,
        metadata=_env(
            "TRACEHUB_PAGE_CACHE_S",
            "Seconds a rendered buyer page (resolver) is served from the app's cache; 0: never",
            readers="api (resolver)",
        ),
    )
    witnesses: str = field(
        default="http://127.0.0.1:18090",
        metadata=_env(
            "TRACEHUB_LEDGER_WITNESSES",
            "Comma-separated base URLs of ledger witnesses (read-only anchor views other "
            "organisations run, tracehub.ledger.witness) the buyer page confirms anchors with; "
            "`none`: no witness (empty counts as unset, like every variable)",
            readers="api (resolver, security headers)",
            port=True,
        ),
    )

    @property
    def witness_urls(self) -> tuple[str, ...]:
        """The witnesses' base URLs, without trailing slashes (none for ``none``)."""
        if self.witnesses.strip().lower() == "none":
            return ()
        return tuple(u.strip().rstrip("/") for u in self.witnesses.split(",") if u.strip())


@dataclass(frozen=True)
class SmtpSettings:
    """The one mail relay every sender uses: alert e-mail and commerce's order notifications."""

    host: str = field(
        default="127.0.0.1",
        metadata=_env(
            "TRACEHUB_SMTP_HOST",
            "SMTP relay host for all outgoing mail",
            readers="alerts (gateway), commerce (worker, api)",
        ),
    )
    port: int = field(
        default=1025,
        metadata=_env(
            "TRACEHUB_SMTP_PORT",
            "SMTP relay port (plain SMTP, no TLS or login)",
            readers="alerts (gateway), commerce (worker, api)",
            port=True,
        ),
    )
    sender: str = field(
        default="tracehub@localhost",
        metadata=_env(
            "TRACEHUB_SMTP_SENDER",
            "From address of all outgoing mail; `TRACEHUB_MAIL_FROM` is a deprecated alias",
            readers="alerts (gateway), commerce (worker, api)",
            aliases=("TRACEHUB_MAIL_FROM",),
        ),
    )


@dataclass(frozen=True)
class StripeSettings:
    """Commerce's payment provider (stripe-mock on the local stack)."""

    api_key: str = field(
        default=STRIPE_MOCK_KEY,
        metadata=_env(
            "TRACEHUB_STRIPE_API_KEY",
            "Stripe secret key; the default is a test-mode key stripe-mock accepts",
            readers="commerce (worker, api)",
        ),
    )
    api_base: str = field(
        default="http://127.0.0.1:12111",
        metadata=_env(
            "TRACEHUB_STRIPE_API_BASE",
            "Stripe API base URL (stripe-mock on the local stack)",
            readers="commerce (worker, api)",
            port=True,
        ),
    )
    webhook_secret: str | None = field(
        default=None,
        metadata=_env(
            "TRACEHUB_STRIPE_WEBHOOK_SECRET",
            "Stripe webhook signing secret; unset: one generated (0600) into "
            "`$TRACEHUB_RUN/commerce/stripe_webhook_secret`",
            readers="commerce (api)",
        ),
    )


@dataclass(frozen=True)
class EpcisSettings:
    """EPCIS 2.0 validation."""

    schema: Path = field(
        default=Path(__file__).resolve().parent / "epcis" / "gs1" / "EPCIS-JSON-Schema.json",
        metadata=_env(
            "TRACEHUB_EPCIS_SCHEMA",
            "GS1's EPCIS JSON Schema file (draft-07), compiled once per process",
            readers="tracehub.epcis (api, ingest, demo)",
        ),
    )


@dataclass(frozen=True)
class AlertSettings:
    """Alert delivery (the gateway's outbox worker)."""

    delivery_lease_s: float = field(
        default=120.0,
        metadata=_env(
            "TRACEHUB_ALERT_DELIVERY_LEASE_S",
            "Seconds a claimed alert delivery stays another worker's after a worker died "
            "mid-delivery (it must outlast a batch: 5 webhooks at 5 s or e-mails at 10 s)",
            readers="alerts (gateway)",
        ),
    )


@dataclass(frozen=True)
class WebhookSettings:
    """Outbound webhooks (alert subscriptions): which inside addresses they may reach."""

    allow: str | None = field(
        default=None,
        metadata=_env(
            "TRACEHUB_WEBHOOK_ALLOW",
            "Comma-separated `host`, `host:port` or CIDR entries a webhook may reach although "
            "plain http or a loopback/private address; unset: https to public addresses only",
            readers="alerts (gateway, api)",
        ),
    )


@dataclass(frozen=True)
class MetricsSettings:
    """Each process's /metrics endpoint (loopback, tracehub.metrics) and the stack's Prometheus.

    A port of 0 means a free port the process registers in the run dir's
    `prometheus/targets/` (file_sd), so any number of such processes can run.
    """

    api_port: int = field(
        default=18001,
        metadata=_env(
            "TRACEHUB_API_METRICS_PORT",
            "Loopback port of the API's /metrics (`python -m api`; not on the public app); 0: none",
            readers="api",
            port=True,
        ),
    )
    gateway_port: int = field(
        default=0,
        metadata=_env(
            "TRACEHUB_GATEWAY_METRICS_PORT",
            "Loopback port of a gateway's /metrics; 0: a free port, registered in the targets dir",
            readers="gateway",
        ),
    )
    worker_port: int = field(
        default=0,
        metadata=_env(
            "TRACEHUB_WORKER_METRICS_PORT",
            "Loopback port of the commerce worker's /metrics; 0: a free port, registered in the "
            "targets dir",
            readers="commerce (worker)",
        ),
    )
    edge_port: int = field(
        default=0,
        metadata=_env(
            "TRACEHUB_EDGE_METRICS_PORT",
            "Loopback port of an edge agent's /metrics; 0: a free port, registered in the "
            "targets dir",
            readers="edge (tracehub-edge run)",
        ),
    )
    prometheus_port: int = field(
        default=19090,
        metadata=_env(
            "TRACEHUB_PROMETHEUS_PORT",
            "Port of the stack's Prometheus server (network/prometheus/prometheus.sh)",
            readers="network/*.sh, tests",
            port=True,
        ),
    )
    log_format: str = field(
        default="json",
        metadata=_env(
            "TRACEHUB_LOG_FORMAT",
            "`json` (one object per line with correlation fields, tracehub.logjson) or `text`",
            readers="gateway, commerce (worker)",
        ),
    )


#: The Fabric topologies network/stack.sh runs (network/fabric/env.sh, docs/deployment.md).
TOPOLOGIES = ("single", "ha")


@dataclass(frozen=True)
class FabricSettings:
    """The Fabric network: channel, chaincode and each org's gateway peers.

    Ports follow network/fabric/env.sh: peer P of an org sits 10 ports above peer0, and every
    port moves by ``port_offset``. The ``ha`` topology gives Org1 a second peer.
    """

    crypto_dir: Path
    channel: str = "trace"
    chaincode: str = "tracehub"
    topology: str = "single"
    port_offset: int = 0

    def __post_init__(self) -> None:
        if self.topology not in TOPOLOGIES:
            raise ValueError(f"topology must be one of {TOPOLOGIES}, not {self.topology!r}")

    def org_peers(self, org: int) -> tuple[int, ...]:
        """The peer indexes of org ``org`` (peer0, and peer1 of Org1 in the ha topology)."""
        return (0, 1) if self.topology == "ha" and org == 1 else (0,)

    def peer_endpoint(self, org: int, index: int = 0) -> str:
        base = 17051 if org == 1 else 18051
        return f"127.0.0.1:{base + 10 * index + self.port_offset}"

    def gateway_endpoints(self, org: int) -> tuple[str, ...]:
        """Every gateway peer of org ``org``, in the order a client tries them."""
        return tuple(self.peer_endpoint(org, i) for i in self.org_peers(org))

    @property
    def peer_endpoints(self) -> dict[int, str]:
        """Each org's first gateway peer (peer0)."""
        return {org: self.peer_endpoint(org) for org in (1, 2)}

    def peer_ops_url(self, org: int, index: int = 0) -> str:
        """The operations endpoint (/metrics, /healthz) of peer ``index`` of org ``org``."""
        base = 17446 if org == 1 else 18446
        return f"http://127.0.0.1:{base + 10 * index + self.port_offset}"

    @property
    def orderer_ops_urls(self) -> tuple[str, ...]:
        """The operations endpoints (/metrics, /healthz) of the topology's orderers."""
        count = 3 if self.topology == "ha" else 1
        return tuple(f"http://127.0.0.1:{17443 + 100 * n + self.port_offset}" for n in range(count))

    def org_domain(self, org: int) -> str:
        return f"org{org}.tracehub.local"

    def msp_id(self, org: int) -> str:
        return f"Org{org}MSP"

    def org_dir(self, org: int) -> Path:
        return self.crypto_dir / "peerOrganizations" / self.org_domain(org)

    def user_msp_dir(self, org: int, user: str = "User1") -> Path:
        domain = self.org_domain(org)
        return self.org_dir(org) / "users" / f"{user}@{domain}" / "msp"

    def tls_ca_file(self, org: int) -> Path:
        domain = self.org_domain(org)
        return self.org_dir(org) / "tlsca" / f"tlsca.{domain}-cert.pem"

    def peer_host(self, org: int) -> str:
        return f"peer0.{self.org_domain(org)}"


@dataclass(frozen=True)
class Settings:
    """One TraceHub stack: its service locations and run dir (here), and a section per concern."""

    run_dir: Path = field(
        default=PROJECT_DIR / ".run",
        metadata=_env(
            "TRACEHUB_RUN",
            "Run dir: PKI, Fabric crypto, logs, the API token key, commerce's webhook secret",
            readers="all parts; network/*.sh",
        ),
    )
    ipfs_api: str = field(
        default="http://127.0.0.1:15001",
        metadata=_env(
            "TRACEHUB_IPFS_API",
            "Kubo (IPFS) RPC API URL",
            readers="gateway, api, demo, tracehub CLI",
            port=True,
        ),
    )
    ipfs_apis: str | None = field(
        default=None,
        metadata=_env(
            "TRACEHUB_IPFS_APIS",
            "Comma-separated Kubo RPC URLs every stored object is pinned on before its hash is "
            "anchored, read in this order; unset: `TRACEHUB_IPFS_API` alone, or in the `ha` "
            "topology that node and the one a port above it (network/kubo/kubo.sh 2)",
            readers="gateway, api, tracehub CLI",
        ),
    )
    ipfs_write_timeout_s: float = field(
        default=30.0,
        metadata=_env(
            "TRACEHUB_IPFS_WRITE_TIMEOUT_S",
            "Seconds a write waits for every Kubo node of `TRACEHUB_IPFS_APIS` to pin the "
            "object (a node down is retried) before it fails and nothing is anchored",
            readers="gateway, api",
        ),
    )
    mqtt_host: str = field(
        default="127.0.0.1",
        metadata=_env(
            "TRACEHUB_MQTT_HOST",
            "Mosquitto host (mutual TLS)",
            readers="gateway, alerts (gateway), demo, tracehub CLI (broker control)",
        ),
    )
    mqtt_tls_port: int = field(
        default=18883,
        metadata=_env(
            "TRACEHUB_MQTT_TLS_PORT",
            "Mosquitto mutual-TLS port",
            readers="gateway, alerts (gateway), demo, tracehub CLI (broker control)",
            port=True,
        ),
    )
    postgres_dsn: str = field(
        default="postgresql://tracehub@127.0.0.1:15432/tracehub",
        metadata=_env(
            "TRACEHUB_POSTGRES_DSN",
            "PostgreSQL connection string",
            readers="gateway, ingest, alerts, commerce, api, demo",
            port=True,
        ),
    )
    postgres_standbys: str = field(
        default="",
        metadata=_env(
            "TRACEHUB_POSTGRES_STANDBYS",
            "Comma-separated `host:port` of PostgreSQL hot standbys (the ha topology's own, "
            "`127.0.0.1:15433` moved by the port offset, when the DSN names its primary); set, "
            "connections go through a libpq multi-host string, writers "
            "to whichever server is the primary (`target_session_attrs=read-write`), so they "
            "follow a failover, and the API's lot pages read on a standby; empty: the DSN alone",
            readers="gateway, ingest, alerts, commerce, api, demo",
        ),
    )
    fabric_topology: str = field(
        default="single",
        metadata=_env(
            "TRACEHUB_TOPOLOGY",
            "Topology: `single` (one orderer, one peer per org, one Kubo node) or `ha` (three "
            "Raft orderers, two Org1 peers the ledger client fails over between, two Kubo nodes; "
            "network/stack.sh adds a synchronous PostgreSQL hot standby)",
            readers="all ledger clients; network/*.sh",
        ),
    )
    port_offset: int = field(
        default=0,
        metadata=_env(
            PORT_OFFSET_VARIABLE,
            "Added to the default of every port of the stack (PostgreSQL, Kubo, Mosquitto, the "
            "API and its metrics, witness, stripe-mock, mail, Prometheus, Fabric), to run a "
            "second stack beside the everyday one; a variable set explicitly is taken as given",
            readers="all parts; network/*.sh",
        ),
    )
    fabric_port_offset: int = field(
        default=0,
        metadata=_env(
            "TRACEHUB_FABRIC_PORT_OFFSET",
            "Added to every Fabric port (orderers, peers, chaincode), to run a second network "
            "beside the everyday one; unset: `TRACEHUB_PORT_OFFSET`",
            readers="all ledger clients; network/*.sh",
            port=True,
        ),
    )
    api: ApiSettings = field(default_factory=ApiSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    stripe: StripeSettings = field(default_factory=StripeSettings)
    epcis: EpcisSettings = field(default_factory=EpcisSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)

    @cached_property
    def fabric(self) -> FabricSettings:
        """The Fabric network; its crypto material is generated into the run dir."""
        return FabricSettings(
            crypto_dir=self.run_dir / "fabric" / "crypto",
            topology=self.fabric_topology,
            port_offset=self.fabric_port_offset,
        )

    @property
    def ipfs_endpoints(self) -> tuple[str, ...]:
        """The Kubo nodes objects are written to and read from (tracehub.ipfs_replicated)."""
        if self.ipfs_apis:
            return tuple(u.strip().rstrip("/") for u in self.ipfs_apis.split(",") if u.strip())
        first = self.ipfs_api.rstrip("/")
        if self.fabric_topology != "ha":
            return (first,)
        # network/kubo/kubo.sh puts node N's RPC port N-1 above node 1's.
        url = httpx.URL(first)
        return (first, str(url.copy_with(port=(url.port or 80) + 1)).rstrip("/"))

    @property
    def postgres_passfile(self) -> Path:
        """The libpq password file the stack's set-up writes (one line per database role)."""
        return self.run_dir / "postgres-secrets" / "pgpass"

    def __post_init__(self) -> None:
        # Passwords come from the run dir's password file unless the DSN names a password or a
        # password file itself: every part that connects gets them without handling them.
        params = conninfo_to_dict(self.postgres_dsn)
        if not self.postgres_standbys.strip() and self._is_stack_primary(params):
            # The ha stack's standby (network/stack.sh): without it a failover would leave every
            # part writing to the fenced primary's port, where the old node rejoins read-only.
            standby = f"127.0.0.1:{STACK_STANDBY_PORT + self.port_offset}"
            object.__setattr__(self, "postgres_standbys", standby)
        changes = _with_standbys(params, self.postgres_standbys)
        if "password" not in params and "passfile" not in params:
            changes["passfile"] = str(self.postgres_passfile)
        if changes:
            object.__setattr__(self, "postgres_dsn", make_conninfo("", **(params | changes)))

    def _is_stack_primary(self, params: dict[str, Any]) -> bool:
        """The DSN names the ha stack's own primary (its default host and port)."""
        return (
            self.fabric_topology == "ha"
            and str(params.get("host", "")) == "127.0.0.1"
            and str(params.get("port", "")) == str(STACK_PRIMARY_PORT + self.port_offset)
        )

    def postgres_dsn_for(self, component: str) -> str:
        """The connection string of ``component``'s own role (`DATABASE_ROLES`, least privilege).

        The owner's DSN with its user replaced; a password the owner's DSN carries is dropped,
        so the component's comes from the password file.
        """
        params = conninfo_to_dict(self.postgres_dsn)
        params["user"] = DATABASE_ROLES[component]
        params.pop("password", None)
        params.setdefault("passfile", str(self.postgres_passfile))
        return make_conninfo("", **params)

    def postgres_read_dsn_for(self, component: str) -> str:
        """``component``'s connection string for reads that may be served by a hot standby.

        With standbys, a standby is preferred and the primary taken when none answers; the
        primary waits for its standby to apply each commit (decision 0033), so what a writer
        was told is stored can be read there. Without standbys: `postgres_dsn_for`.
        """
        params = conninfo_to_dict(self.postgres_dsn_for(component))
        if self.postgres_standbys.strip():
            params["target_session_attrs"] = "prefer-standby"
        return make_conninfo("", **params)

    @property
    def metrics_targets_dir(self) -> Path:
        """Where processes on free ports register their /metrics (Prometheus file_sd)."""
        return self.run_dir / "prometheus" / "targets"

    @property
    def pki_dir(self) -> Path:
        """The PKI of certs/: CAs, CRLs, service and device certificates."""
        return self.run_dir / "pki"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of this process's environment (or of `environ`), defaults for the rest."""
        env = os.environ if environ is None else environ
        raw = env.get(PORT_OFFSET_VARIABLE)
        offset = _parse(PORT_OFFSET_VARIABLE, raw, int) if raw else 0
        assert isinstance(offset, int)
        settings: Settings = _read(cls, env, offset)
        return settings


def _with_standbys(params: dict[str, Any], standbys: str) -> dict[str, Any]:
    """The host, port and session parameters of a multi-host connection string: the DSN's
    server first, then each standby; writers accept only the server that takes writes."""
    servers = [s.strip() for s in standbys.split(",") if s.strip()]
    if not servers or "," in str(params.get("host", "")):
        return {}  # no standbys, or the DSN lists its servers itself (or was given them here)
    hosts, ports = [str(params.get("host") or "127.0.0.1")], [str(params.get("port") or 5432)]
    for server in servers:
        host, sep, port = server.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"TRACEHUB_POSTGRES_STANDBYS: {server!r} is not host:port")
        hosts.append(host)
        ports.append(port)
    return {
        "host": ",".join(hosts),
        "port": ",".join(ports),
        "target_session_attrs": params.get("target_session_attrs") or "read-write",
        # Per server tried: a server that does not answer is skipped after this many seconds.
        "connect_timeout": params.get("connect_timeout") or "5",
    }


# -- the one reader ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Variable:
    """One environment variable of the tree, as docs/configuration.md lists it."""

    name: str
    setting: str  # its place in the tree, e.g. "smtp.port"
    kind: str  # "str", "int", "float" or "path", with " (optional)" when it may be left unset
    default: object
    moves: bool  # the default moves by TRACEHUB_PORT_OFFSET
    readers: str
    doc: str
    aliases: tuple[str, ...]


def _scalar(hint: Any) -> tuple[type, bool]:
    """(the value's type, whether it may be None) of a field's type hint."""
    args = typing.get_args(hint)
    if not args:
        return hint, False
    scalars = [a for a in args if a is not type(None)]
    if len(scalars) != 1 or len(args) != 2:
        raise TypeError(f"unsupported settings type {hint!r}")
    return scalars[0], True


def _parse(name: str, raw: str, scalar: type) -> object:
    if scalar is str:
        return raw
    if scalar is Path:
        return Path(raw)
    if scalar is int or scalar is float:
        try:
            return scalar(raw)
        except ValueError:
            what = "an integer" if scalar is int else "a number"
            raise ValueError(f"{name}={raw!r}: not {what}") from None
    raise TypeError(f"{name}: unsupported settings type {scalar!r}")


def shifted(default: object, offset: int) -> object:
    """A port default moved by ``offset``: a port number, or the port of each comma-separated
    URL (a PostgreSQL URL included); URLs without a port stay as they are."""
    if not offset:
        return default
    if isinstance(default, int):
        return default + offset
    if not isinstance(default, str):
        raise TypeError(f"cannot move {default!r} by a port offset")
    moved = []
    for url in default.split(","):
        port = urlsplit(url).port
        if port is not None:
            head, _, tail = url.partition(f":{port}")
            url = f"{head}:{port + offset}{tail}"
        moved.append(url)
    return ",".join(moved)


def _read(cls: Any, env: Mapping[str, str], offset: int = 0) -> Any:
    """An instance of the settings class `cls`, its sections read recursively; fields that name
    a port and are not set get their default moved by ``offset``."""
    hints = typing.get_type_hints(cls)
    values: dict[str, object] = {}
    for f in fields(cls):
        if "env" not in f.metadata:
            if is_dataclass(hints[f.name]):
                values[f.name] = _read(hints[f.name], env, offset)
            continue
        for name in (f.metadata["env"], *f.metadata["aliases"]):
            raw = env.get(name)
            if raw:  # empty counts as unset
                values[f.name] = _parse(name, raw, _scalar(hints[f.name])[0])
                break
        else:
            if f.metadata["port"] and offset:
                values[f.name] = shifted(f.default, offset)
    return cls(**values)


def _variables(cls: Any, prefix: str) -> Iterator[Variable]:
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if "env" not in f.metadata:
            if is_dataclass(hints[f.name]):
                yield from _variables(hints[f.name], f"{prefix}{f.name}.")
            continue
        scalar, optional = _scalar(hints[f.name])
        kind = "path" if scalar is Path else scalar.__name__
        yield Variable(
            name=f.metadata["env"],
            setting=prefix + f.name,
            kind=f"{kind} (optional)" if optional else kind,
            default=f.default,
            moves=f.metadata["port"],
            readers=f.metadata["readers"],
            doc=f.metadata["doc"],
            aliases=f.metadata["aliases"],
        )


def variables() -> list[Variable]:
    """Every environment variable of the tree, in tree order."""
    return list(_variables(Settings, ""))


def _shown_default(value: object) -> str:
    if value is None:
        return "unset"
    if value == "":
        return "empty"
    if isinstance(value, Path):
        if value.is_relative_to(PROJECT_DIR):
            return f"`{value.relative_to(PROJECT_DIR)}` in the repository"
        if value.is_relative_to(PROJECT_DIR.parent):
            return f"`../{value.relative_to(PROJECT_DIR.parent)}` beside the repository"
    return f"`{value}`"


def markdown_table() -> str:
    """The variables table of docs/configuration.md (between its `settings-table` markers)."""
    lines = [
        "| Variable | Setting | Type | Default | Read by | What it does |",
        "|---|---|---|---|---|---|",
    ]
    for var in variables():
        lines.append(
            f"| `{var.name}` | `{var.setting}` | {var.kind} | {_shown_default(var.default)}"
            f"{' + offset' if var.moves else ''} "
            f"| {var.readers} | {var.doc} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
