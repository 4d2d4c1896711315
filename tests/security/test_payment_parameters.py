"""Finding: a buyer could pass any string Stripe parameter through to the provider, e.g.
`on_behalf_of` or `application_fee_amount` (who receives the funds, what the platform keeps).

Now: provider options are on an allow-list (commerce/payments/options.py); anything else is
refused with 422 before a payment exists, and nothing reaches the provider."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.support.api import ApiHarness
from tests.support.commerce import (
    StripeProxy,
    commerce_harness,
    party_headers,
    pay_order,
    place_order,
    stripe_proxy,
)
from tracehub.config import Settings


@pytest.fixture()
def proxy() -> Iterator[StripeProxy]:
    with stripe_proxy() as p:
        yield p


@pytest.fixture()
def shop(stack: Settings, proxy: StripeProxy) -> Iterator[ApiHarness]:
    with commerce_harness(stack, api_base=proxy.url, timeout_s=5.0) as h:
        yield h


def _order(h: ApiHarness, buyer: dict[str, str]) -> str:
    placed = place_order(h, buyer, secrets.token_hex(4), quantity=1)
    assert placed.status_code == 201, placed.text
    return str(placed.json()["order_id"])


@pytest.mark.parametrize(
    "options",
    [
        {"on_behalf_of": "acct_attacker"},
        {"application_fee_amount": "99"},
        {"transfer_group": "mine"},
        {"customer": "cus_someone_else"},
        {"amount": "1"},  # the hub sets the amount; it never came from the buyer either
        {"description": "fine", "capture_method": "automatic"},  # one bad key spoils the lot
    ],
)
def test_unknown_provider_parameters_are_refused_and_never_sent(
    shop: ApiHarness, proxy: StripeProxy, options: dict[str, str]
) -> None:
    buyer = party_headers(shop, "buyer", "buy-a")
    order_id = _order(shop, buyer)
    reply = pay_order(shop, buyer, order_id, "p1", method="card", provider_options=options)
    assert reply.status_code == 422, reply.text
    assert "provider_options" in reply.json()["detail"]
    assert proxy.payment_intent_posts() == []
    with shop.connect() as conn:
        assert conn.execute("SELECT count(*) FROM payments").fetchone() == (0,)


def test_allowed_parameters_still_pay(shop: ApiHarness, proxy: StripeProxy) -> None:
    buyer = party_headers(shop, "buyer", "buy-a")
    order_id = _order(shop, buyer)
    options = {"description": "PO 4711", "receipt_email": "ap@buyer.example"}
    reply = pay_order(shop, buyer, order_id, "p1", method="card", provider_options=options)
    assert reply.status_code == 200, reply.text
    assert reply.json()["state"] in ("submitted", "authorized", "succeeded")
    assert len(proxy.payment_intent_posts()) == 1
