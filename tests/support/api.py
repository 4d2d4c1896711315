"""The API in-process against the real PostgreSQL, in a migrated schema of the test's own."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import create_user
from api.config import ApiConfig
from tests.support.db import connector, migrated_schema
from tracehub.config import Settings


@dataclass
class ApiHarness:
    """An app on a fresh schema, a client for it, and a way to add users and get tokens."""

    app: FastAPI
    client: TestClient
    config: ApiConfig
    schema: str

    def connect(self):  # type: ignore[no-untyped-def]
        return connector(self.config.stack.postgres_dsn, self.schema)()  # the owner

    def user(
        self, roles: Sequence[str], *, org_id: str | None = None, username: str | None = None
    ) -> tuple[str, str]:
        """A new user with `roles`; returns (username, password)."""
        name = username or f"u-{secrets.token_hex(4)}"
        password = secrets.token_urlsafe(12)
        with self.connect() as conn:
            create_user(conn, name, password, roles, org_id=org_id)
        return name, password

    def organisation(self, kind: str = "logistics") -> str:
        """A new organisation of ``kind``, party to nothing yet; returns its id."""
        org_id = f"o-{secrets.token_hex(4)}"
        with self.connect() as conn:
            conn.execute(
                "INSERT INTO organisations (org_id, name, kind) VALUES (%s, %s, %s)",
                (org_id, f"Org {org_id}", kind),
            )
            conn.commit()
        return org_id

    def token(self, username: str, password: str) -> str:
        reply = self.client.post("/auth/token", data={"username": username, "password": password})
        assert reply.status_code == 200, reply.text
        token: str = reply.json()["access_token"]
        return token

    def headers(self, *roles: str, org_id: str | None = None) -> dict[str, str]:
        """Authorization headers of a new user holding `roles`."""
        return {"Authorization": f"Bearer {self.token(*self.user(roles, org_id=org_id))}"}


@contextmanager
def api_harness(stack: Settings, **overrides: object) -> Iterator[ApiHarness]:
    with migrated_schema(stack.postgres_dsn) as schema:
        config = ApiConfig(
            stack=stack, token_key=secrets.token_bytes(32), search_path=schema, **overrides
        )  # type: ignore[arg-type]
        app = create_app(config)
        with TestClient(app) as client:
            yield ApiHarness(app=app, client=client, config=config, schema=schema)
