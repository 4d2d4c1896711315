"""The red-team suite: each finding of the security review replayed as an attack against the
real stack (PostgreSQL, the API app in-process, stripe-mock, loopback peers), asserting that it
now does no harm (docs/security.md maps finding -> fix -> test).

Tests here need the stack and are marked `integration` by tests/conftest.py's hook through the
`stack` fixture. Each attack gets a schema of its own, so counters and rows never leak between
tests or into other engineers' runs."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from tests.support.api import ApiHarness, api_harness
from tracehub.config import Settings, WebhookSettings

#: The organisation of the staff users these tests act as (subscriptions, alert streams belong
#: to an organisation; a user of none is refused them).
STAFF_ORG = "sec-ops"


def add_staff_org(h: ApiHarness) -> None:
    with h.connect() as conn:
        conn.execute(
            "INSERT INTO organisations (org_id, name, kind) VALUES (%s, 'Security ops',"
            " 'logistics') ON CONFLICT DO NOTHING",
            (STAFF_ORG,),
        )
        conn.commit()


@pytest.fixture()
def strict(stack: Settings) -> Settings:
    """The stack's settings with no webhook allow-list: the production default."""
    return dataclasses.replace(stack, webhooks=WebhookSettings(allow=None))


@pytest.fixture()
def harness(strict: Settings) -> Iterator[ApiHarness]:
    """The API in-process on a fresh schema of this test's own, default (strict) settings."""
    with api_harness(strict) as h:
        add_staff_org(h)
        yield h
