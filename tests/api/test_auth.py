"""Sign-in, bearer tokens and roles, against the real PostgreSQL."""

from __future__ import annotations

import secrets
from typing import Annotated

import pytest
from fastapi import Depends

from api.auth import AuthError, Principal, issue_token, read_token, require
from tests.support.api import ApiHarness

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(api: ApiHarness) -> ApiHarness:
    """The shared harness (tests/conftest.py) with a route only logistics staff may call."""

    @api.app.get("/test/logistics-only")
    async def logistics_only(
        who: Annotated[Principal, Depends(require("logistics"))],
    ) -> dict[str, str]:
        return {"hello": who.username}

    return api


def test_password_grant_gives_a_token_that_names_the_user(api: ApiHarness) -> None:
    name, password = api.user(["logistics", "auditor"])
    token = api.token(name, password)
    me = api.client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["username"] == name
    assert me.json()["roles"] == ["auditor", "logistics"]


def test_wrong_password_and_unknown_user_are_refused_alike(api: ApiHarness) -> None:
    name, _ = api.user(["buyer"])
    for username, password in ((name, "wrong"), ("nobody-" + secrets.token_hex(3), "x")):
        reply = api.client.post("/auth/token", data={"username": username, "password": password})
        assert reply.status_code == 401
        assert reply.json()["detail"] == "wrong username or password"


def test_passwords_are_stored_as_argon2id(api: ApiHarness) -> None:
    name, password = api.user(["buyer"])
    with api.connect() as conn:
        row = conn.execute("SELECT password_hash FROM users WHERE username = %s", (name,))
        stored = row.fetchone()
    assert stored is not None
    assert stored[0].startswith("$argon2id$")
    assert password not in stored[0]


def test_roles_are_enforced(api: ApiHarness) -> None:
    assert api.client.get("/test/logistics-only").status_code == 401
    buyer = api.headers("buyer")
    reply = api.client.get("/test/logistics-only", headers=buyer)
    assert reply.status_code == 403
    assert "logistics" in reply.json()["detail"]
    assert (
        api.client.get("/test/logistics-only", headers=api.headers("logistics")).status_code == 200
    )
    assert api.client.get("/test/logistics-only", headers=api.headers("admin")).status_code == 200


def test_forged_expired_and_garbage_tokens_are_refused(api: ApiHarness) -> None:
    who = Principal("00000000-0000-0000-0000-000000000001", "mallory", frozenset({"admin"}), None)
    forged = issue_token(secrets.token_bytes(32), who, 60)
    expired = issue_token(api.config.token_key, who, -10)
    for token in (forged, expired, "not-a-token"):
        reply = api.client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert reply.status_code == 401, token
        assert reply.headers["WWW-Authenticate"] == "Bearer"
    with pytest.raises(AuthError, match="invalid token"):
        read_token(api.config.token_key, expired)
    good = issue_token(api.config.token_key, who, 60)
    assert read_token(api.config.token_key, good).roles == {"admin"}
