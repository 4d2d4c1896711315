"""The API's one error path (api/errors.py): each kind of domain error answers its status with
FastAPI's usual ``{"detail": message}``; a TraceHubError of no kind is a bug, hence a 500."""

from __future__ import annotations

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import errors
from tracehub.errors import (
    ConflictError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    TooLargeError,
    TraceHubError,
    UnauthorizedError,
    UnavailableError,
    UnprocessableError,
    UpstreamError,
)

KINDS: list[tuple[type[TraceHubError], int]] = [
    (InvalidError, 400),
    (UnauthorizedError, 401),
    (ForbiddenError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (TooLargeError, 413),
    (UnprocessableError, 422),
    (UpstreamError, 502),
    (UnavailableError, 503),
    (TraceHubError, 500),
]


class _AreaError(TraceHubError):
    """An area's root, as each package has one."""


class _AreaNotFoundError(_AreaError, NotFoundError):
    """A concrete error: its area's root and a kind."""


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    errors.install(app)

    @app.get("/raise/{index}")
    async def raise_kind(index: int) -> None:
        kind = KINDS[index][0]
        raise kind(f"{kind.__name__} raised")

    @app.get("/area")
    async def raise_area() -> None:
        raise _AreaNotFoundError("no such thing")

    @app.get("/database")
    async def raise_database() -> None:
        raise psycopg.errors.DataError("invalid input value")

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(("index", "status"), [(i, s) for i, (_, s) in enumerate(KINDS)])
def test_each_kind_answers_its_status(client: TestClient, index: int, status: int) -> None:
    kind = KINDS[index][0]
    reply = client.get(f"/raise/{index}")
    assert reply.status_code == status
    assert reply.json() == {"detail": f"{kind.__name__} raised"}
    assert errors.status_of(kind("x")) == status


def test_unauthorized_asks_for_a_bearer_token(client: TestClient) -> None:
    reply = client.get(f"/raise/{KINDS.index((UnauthorizedError, 401))}")
    assert reply.headers["WWW-Authenticate"] == "Bearer"
    assert "WWW-Authenticate" not in client.get("/raise/0").headers


def test_an_area_error_answers_by_its_kind(client: TestClient) -> None:
    reply = client.get("/area")
    assert (reply.status_code, reply.json()) == (404, {"detail": "no such thing"})


def test_the_more_specific_kind_wins() -> None:
    # TooLarge and Unprocessable are Invalid too; the ledger's unreachable errors are also
    # upstream errors (tracehub.ledger), and unavailable wins.
    class _UpstreamAndUnavailableError(UpstreamError, UnavailableError):
        pass

    assert errors.status_of(TooLargeError("x")) == 413
    assert errors.status_of(UnprocessableError("x")) == 422
    assert errors.status_of(_UpstreamAndUnavailableError("x")) == 503


def test_a_database_refusal_is_unprocessable(client: TestClient) -> None:
    reply = client.get("/database")
    assert reply.status_code == 422
    assert reply.json() == {"detail": "invalid input value"}
