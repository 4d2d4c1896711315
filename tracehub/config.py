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

PROJECT_DIR = Path(__file__).resolve().parent.parent

#: Where `python -m api` listens by default (loopback; a reverse proxy fronts it in production).
API_HOST = "127.0.0.1"
API_PORT = 18000

#: stripe-mock accepts any key of this shape; it is not a secret (real keys come from the env).
STRIPE_MOCK_KEY = "sk_test_tracehubStripeMock"


def _env(name: str, doc: str, *, readers: str, aliases: tuple[str, ...] = ()) -> dict[str, object]:
    """The metadata of a field read from the variable `name` (then its `aliases`), for the docs."""
    return {"env": name, "doc": doc, "readers": readers, "aliases": aliases}


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
            "empty: none",
            readers="api (resolver, security headers)",
        ),
    )

    @property
    def witness_urls(self) -> tuple[str, ...]:
        """The witnesses' base URLs, without trailing slashes."""
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
class FabricSettings:
    """The Fabric network: channel, chaincode and each org's gateway peer."""

    crypto_dir: Path
    channel: str = "trace"
    chaincode: str = "tracehub"
    peer_endpoints: dict[int, str] = field(
        default_factory=lambda: {1: "127.0.0.1:17051", 2: "127.0.0.1:18051"}
    )

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
        ),
    )
    postgres_dsn: str = field(
        default="postgresql://tracehub@127.0.0.1:15432/tracehub",
        metadata=_env(
            "TRACEHUB_POSTGRES_DSN",
            "PostgreSQL connection string",
            readers="gateway, ingest, alerts, commerce, api, demo",
        ),
    )
    api: ApiSettings = field(default_factory=ApiSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    stripe: StripeSettings = field(default_factory=StripeSettings)
    epcis: EpcisSettings = field(default_factory=EpcisSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)

    @cached_property
    def fabric(self) -> FabricSettings:
        """The Fabric network; its crypto material is generated into the run dir."""
        return FabricSettings(crypto_dir=self.run_dir / "fabric" / "crypto")

    @property
    def pki_dir(self) -> Path:
        """The PKI of certs/: CAs, CRLs, service and device certificates."""
        return self.run_dir / "pki"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of this process's environment (or of `environ`), defaults for the rest."""
        settings: Settings = _read(cls, os.environ if environ is None else environ)
        return settings


# -- the one reader ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Variable:
    """One environment variable of the tree, as docs/configuration.md lists it."""

    name: str
    setting: str  # its place in the tree, e.g. "smtp.port"
    kind: str  # "str", "int", "float" or "path", with " (optional)" when it may be left unset
    default: object
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


def _read(cls: Any, env: Mapping[str, str]) -> Any:
    """An instance of the settings class `cls`, its sections read recursively."""
    hints = typing.get_type_hints(cls)
    values: dict[str, object] = {}
    for f in fields(cls):
        if "env" not in f.metadata:
            if is_dataclass(hints[f.name]):
                values[f.name] = _read(hints[f.name], env)
            continue
        for name in (f.metadata["env"], *f.metadata["aliases"]):
            raw = env.get(name)
            if raw:  # empty counts as unset
                values[f.name] = _parse(name, raw, _scalar(hints[f.name])[0])
                break
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
            f"| `{var.name}` | `{var.setting}` | {var.kind} | {_shown_default(var.default)} "
            f"| {var.readers} | {var.doc} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
