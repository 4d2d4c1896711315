"""The policy's decisions on their own (api/policy.py), without the web or the database."""

from __future__ import annotations

import pytest

from api.auth import MissingRoleError, Principal
from api.policy import NotPartyError, PolicyError, authorize
from ingest.parties import Parties

ORDER = Parties.of([("buyer", "buy"), ("supplier", "sup"), ("auditor", "aud")])


def who(role: str, org: str | None) -> Principal:
    return Principal("u", "name", frozenset({role}), org)


def test_roles_first_then_relations() -> None:
    with pytest.raises(MissingRoleError):
        authorize(who("logistics", "sup"), "order.confirm", ORDER)
    assert authorize(who("supplier", "sup"), "order.confirm", ORDER).relations == {"supplier"}
    with pytest.raises(MissingRoleError):  # the buyer does not confirm
        authorize(who("buyer", "buy"), "order.confirm", ORDER)
    with pytest.raises(PolicyError):  # a party with the role, but on the wrong side
        authorize(who("supplier", "buy"), "order.confirm", ORDER)
    with pytest.raises(NotPartyError):  # no party: as if there were no such order
        authorize(who("supplier", "rival"), "order.confirm", ORDER)
    with pytest.raises(NotPartyError):
        authorize(who("supplier", "sup"), "order.confirm", Parties())


def test_auditors_read_what_their_engagement_covers_and_act_on_nothing() -> None:
    assert authorize(who("auditor", "aud"), "order.read", ORDER).relations == {"auditor"}
    with pytest.raises(MissingRoleError):
        authorize(who("auditor", "aud"), "order.pay", ORDER)
    with pytest.raises(NotPartyError):  # the engagement is the auditor's, not its colleagues'
        authorize(who("buyer", "aud"), "order.read", ORDER)


def test_admins_and_actions_without_an_object() -> None:
    assert authorize(who("admin", None), "order.confirm", Parties())
    assert authorize(who("buyer", "buy"), "order.place")
    with pytest.raises(PolicyError):  # no organisation, no trade to act for
        authorize(who("buyer", None), "order.place")
    assert authorize(who("buyer", None), "auth.me")
    with pytest.raises(MissingRoleError):
        authorize(who("buyer", "buy"), "fx.add")
