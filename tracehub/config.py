"""Where the local stack's services listen, and where its generated material lives.

Defaults match network/stack.sh; every value can be overridden from the environment so the same
code runs against another deployment (docker-compose.yml, or a second stack on other ports).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


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
    """All service locations of one TraceHub stack."""

    run_dir: Path
    ipfs_api: str
    mqtt_host: str
    mqtt_tls_port: int
    postgres_dsn: str
    fabric: FabricSettings

    @property
    def pki_dir(self) -> Path:
        """The PKI of certs/: CAs, CRLs, service and device certificates."""
        return self.run_dir / "pki"

    @classmethod
    def from_env(cls) -> Settings:
        run_dir = Path(_env("TRACEHUB_RUN", str(PROJECT_DIR / ".run")))
        return cls(
            run_dir=run_dir,
            ipfs_api=_env("TRACEHUB_IPFS_API", "http://127.0.0.1:15001"),
            mqtt_host=_env("TRACEHUB_MQTT_HOST", "127.0.0.1"),
            mqtt_tls_port=int(_env("TRACEHUB_MQTT_TLS_PORT", "18883")),
            postgres_dsn=_env(
                "TRACEHUB_POSTGRES_DSN", "postgresql://tracehub@127.0.0.1:15432/tracehub"
            ),
            fabric=FabricSettings(crypto_dir=run_dir / "fabric" / "crypto"),
        )
