"""Where commerce finds its payment provider, webhook secret and mail server."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from tracehub.config import STRIPE_MOCK_KEY, Settings, SmtpSettings

__all__ = ["STRIPE_MOCK_KEY", "CommerceConfig"]


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
    """Payment provider, webhook signing secret, mail relay and the retry back-off."""

    stripe_api_key: str
    stripe_api_base: str
    webhook_secret: str
    stripe_timeout_s: float = 10.0
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    backoff_s: tuple[float, ...] = (1.0, 2.0, 4.0)

    @classmethod
    def from_settings(cls, settings: Settings) -> CommerceConfig:
        """Stripe and SMTP from the settings tree; with no webhook secret set, the run dir's."""
        stripe = settings.stripe
        return cls(
            stripe_api_key=stripe.api_key,
            stripe_api_base=stripe.api_base,
            webhook_secret=stripe.webhook_secret
            or _secret(settings.run_dir / "commerce" / "stripe_webhook_secret"),
            smtp=settings.smtp,
        )
