"""What the API server needs to know: the database, its token key, where it is reachable."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from tracehub.config import API_HOST, API_PORT, ApiSettings, Settings

#: Where `python -m api` listens by default (loopback; a reverse proxy fronts it in production).
DEFAULT_HOST = API_HOST
DEFAULT_PORT = API_PORT


def load_token_key(path: Path) -> bytes:
    """The HMAC key that signs access tokens, created (0600) on first use.

    Every API worker of one deployment must share it, so it lives in the run dir, never in git.
    """
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another worker won the race
            return bytes.fromhex(path.read_text().strip())
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        return bytes.fromhex(path.read_text().strip())


@dataclass(frozen=True)
class ApiConfig:
    """One API deployment. `search_path` selects a schema (tests use one of their own).

    `from_settings` takes search_path, public_base_url and page_cache_s from the settings tree's
    `api` section; the defaults here are that section's.
    """

    stack: Settings
    token_key: bytes
    search_path: str | None = ApiSettings.search_path
    token_ttl_s: int = 3600
    public_base_url: str = ApiSettings.public_url
    page_cache_s: float = ApiSettings.page_cache_s
    witnesses: tuple[str, ...] = ApiSettings().witness_urls
    pool_min: int = 2
    pool_max: int = 10
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def postgres_dsn(self) -> str:
        """The API's own database role: it reads readings but cannot write them."""
        return self.stack.postgres_dsn_for("api")

    @property
    def postgres_read_dsn(self) -> str:
        """Where read-only pages may read: a hot standby when the stack has one (decision 0033),
        else the same server as `postgres_dsn`."""
        return self.stack.postgres_read_dsn_for("api")

    @property
    def connect_options(self) -> str | None:
        return f"-c search_path={self.search_path}" if self.search_path else None

    @classmethod
    def from_settings(cls, stack: Settings) -> ApiConfig:
        """The deployment the settings tree describes (token key from the run dir)."""
        return cls(
            stack=stack,
            token_key=load_token_key(stack.run_dir / "api" / "token.key"),
            search_path=stack.api.search_path,
            public_base_url=stack.api.public_url,
            page_cache_s=stack.api.page_cache_s,
            witnesses=stack.api.witness_urls,
        )

    @classmethod
    def from_env(cls) -> ApiConfig:
        """`from_settings` of this process's environment (what `python -m api` serves)."""
        return cls.from_settings(Settings.from_env())
