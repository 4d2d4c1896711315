"""What the commerce routers share: configuration, the provider, a ledger session and
CommerceError -> HTTP translation. (Their sync connections are api/db.py's pooled ones.)"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from fastapi import HTTPException, Request, status

from api.ledger import HUB_ORG, app_ledger
from commerce.config import CommerceConfig
from commerce.errors import CommerceError, Forbidden
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


@contextmanager
def translate() -> Iterator[None]:
    """CommerceError -> its status; database refusals of bad input -> 422 (never a 500)."""
    try:
        yield
    except CommerceError as exc:
        raise HTTPException(exc.status, detail=str(exc)) from exc
    except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
        detail = exc.diag.message_primary or str(exc)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail=detail) from exc


def own_org(principal: Any) -> str | None:
    """The caller's organisation, or None for admins acting across organisations."""
    if principal.org_id is None and not principal.has("admin"):
        raise Forbidden("your user belongs to no organisation")
    return None if principal.has("admin") and principal.org_id is None else principal.org_id


def check_party(principal: Any, *orgs: str) -> None:
    """Admins see everything; others only what their organisation is a party to."""
    if principal.has("admin"):
        return
    if principal.org_id not in orgs:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="not found")
