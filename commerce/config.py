"""Where commerce finds its payment provider, webhook secret and mail server."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from tracehub.config import Settings

#: stripe-mock accepts any key of this shape; it is not a secret (real keys come from the env).
STRIPE_MOCK_KEY = "sk_test_tracehubStripeMock"


def _secret(path: Path) -> str:
    """A random secret kept (0600) in the run dir, made on first use; never in git."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as handle:
            handle.write("whsec_" + secrets.token_hex(24))
        return path.read_text().strip()


@dataclass(frozen=True)
class CommerceConfig:
    """Payment provider, webhook signing secret, SMTP relay and the retry back-off."""

    stripe_api_key: str
    stripe_api_base: str
    webhook_secret: str
    stripe_timeout_s: float = 10.0
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    mail_from: str = "tracehub@localhost"
    backoff_s: tuple[float, ...] = (1.0, 2.0, 4.0)

    @classmethod
    def from_env(cls, stack: Settings | None = None) -> CommerceConfig:
        stack = stack or Settings.from_env()
        return cls(
            stripe_api_key=os.environ.get("TRACEHUB_STRIPE_API_KEY", STRIPE_MOCK_KEY),
            stripe_api_base=os.environ.get("TRACEHUB_STRIPE_API_BASE", "http://127.0.0.1:12111"),
            webhook_secret=os.environ.get("TRACEHUB_STRIPE_WEBHOOK_SECRET")
            or _secret(stack.run_dir / "commerce" / "stripe_webhook_secret"),
            smtp_host=os.environ.get("TRACEHUB_SMTP_HOST", "127.0.0.1"),
            smtp_port=int(os.environ.get("TRACEHUB_SMTP_PORT", "1025")),
            mail_from=os.environ.get("TRACEHUB_MAIL_FROM", "tracehub@localhost"),
        )
