"""What the commerce routers share: configuration, the provider, a ledger session and the
caller's organisation (who may do what is api/policy.py's). (Their sync connections are
api/db.py's pooled ones; commerce's errors are answered by api/errors.py by their kind.)"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import Request

from api.ledger import HUB_ORG, app_ledger
from commerce.config import CommerceConfig
from commerce.errors import CommerceForbiddenError
from commerce.ledger import FabricRecords
from commerce.notify import Mailer
from commerce.payments.stripe_provider import StripeProvider


def commerce_config(request: Request) -> CommerceConfig:
    """From ``ApiConfig.extra["commerce"]`` (tests) or the settings tree, made once per app."""
    state = request.app.state
    if not hasattr(state, "commerce_config"):
        given = state.config.extra.get("commerce")
        state.commerce_config = (
            given
            if isinstance(given, CommerceConfig)
            else CommerceConfig.from_settings(state.config.stack)
        )
    config: CommerceConfig = state.commerce_config
    return config


def provider_of(request: Request) -> StripeProvider:
    """The app's one provider (its Stripe client keeps HTTP sessions), made on first use."""
    state = request.app.state
    if not hasattr(state, "commerce_provider"):
        config = commerce_config(request)
        state.commerce_provider = StripeProvider(
            config.stripe_api_key, config.stripe_api_base, config.stripe_timeout_s
        )
    provider: StripeProvider = state.commerce_provider
    return provider


def mailer_of(request: Request) -> Mailer:
    config = commerce_config(request)
    return Mailer(config.smtp.host, config.smtp.port, config.smtp.sender)


@contextmanager
def ledger_session(request: Request) -> Iterator[FabricRecords]:
    """Commerce's records on the app's one ledger (api/ledger.py), as the hub's organisation."""
    yield FabricRecords(app_ledger(request).contract(HUB_ORG))


def own_org(principal: Any) -> str | None:
    """The caller's organisation, or None for admins (the hub's operators act across
    organisations, as no party)."""
    if principal.has("admin"):
        return None
    if principal.org_id is None:
        raise CommerceForbiddenError("your user belongs to no organisation")
    return str(principal.org_id)
