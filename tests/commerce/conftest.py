"""Commerce: money, orders, payments via stripe-mock, custody, release, scorecards, the worker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.api import ApiHarness
from tests.support.commerce import StripeProxy, commerce_harness, stripe_proxy
from tracehub.config import Settings


@pytest.fixture()
def proxy() -> Iterator[StripeProxy]:
    """The loopback proxy in front of stripe-mock that can stall or fail requests."""
    with stripe_proxy() as p:
        yield p


@pytest.fixture()
def stripe_timeout_s() -> float:
    """How long the API's Stripe client waits for an answer (a module may override this)."""
    return 5.0


@pytest.fixture()
def h(stack: Settings, proxy: StripeProxy, stripe_timeout_s: float) -> Iterator[ApiHarness]:
    """The API with the commerce router on a seeded schema of the test's own, its Stripe client
    going through ``proxy``."""
    with commerce_harness(stack, api_base=proxy.url, timeout_s=stripe_timeout_s) as harness:
        yield harness
