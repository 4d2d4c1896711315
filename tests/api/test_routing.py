"""The app's routers skip requests outside their first path segments (api/routing.py), and
every operation of the OpenAPI document still reaches its own route."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute, _IncludedRouter
from starlette.routing import Match

from api.app import create_app
from api.config import ApiConfig
from api.routing import Router, first_segment
from tests.support.api import ApiHarness, api_harness
from tracehub.config import Settings

#: What Starlette answers when no route matched the path, or none the method.
ROUTING_MISSES = ('{"detail":"Not Found"}', '{"detail":"Method Not Allowed"}')


def _scope(path: str, method: str = "GET") -> dict[str, object]:
    return {"type": "http", "path": path, "root_path": "", "method": method}


def test_first_segment() -> None:
    assert first_segment("/commerce/orders") == "commerce"
    assert first_segment("/commerce") == "commerce"
    assert first_segment("/") == ""
    assert first_segment("/01/09506000134352/10/LOT") == "01"


def test_segments_come_from_the_prefix_or_fixed_first_segments() -> None:
    prefixed = Router(prefix="/things")
    prefixed.add_api_route("/{thing_id}", lambda thing_id: thing_id)
    assert prefixed.segments() == frozenset({"things"})
    assert Router(prefix="/{tenant}/things").segments() is None

    fixed = Router()
    fixed.add_api_route("/proofs/{x}", lambda x: x)
    fixed.add_api_route("/ledger/{y}", lambda y: y)
    assert fixed.segments() == frozenset({"proofs", "ledger"})
    fixed.add_api_route("/{anything}", lambda anything: anything)  # may match any path now
    assert fixed.segments() is None


def test_a_path_outside_the_segments_is_refused_without_trying_a_route() -> None:
    router = Router(prefix="/things")
    router.add_api_route("/{thing_id}", lambda thing_id: thing_id)
    match, child = router.matches(_scope("/other/1"))
    assert (match, child) == (Match.NONE, {})


def test_every_router_the_app_includes_is_a_router_and_none_is_nested() -> None:
    app = create_app(ApiConfig(stack=Settings.from_env(), token_key=secrets.token_bytes(32)))
    included = [r for r in app.router.routes if isinstance(r, _IncludedRouter)]
    assert included, "the app includes its routers"
    for inclusion in included:
        router = inclusion.original_router
        assert isinstance(router, Router), f"{router} is not api.routing.Router"
        for route in router.routes:
            # A Router inside another router would see its parent's prefix in every path and
            # skip everything: nested routers stay plain APIRouters.
            if isinstance(route, _IncludedRouter):
                assert not isinstance(route.original_router, Router), route.original_router
            else:
                assert isinstance(route, APIRoute | APIWebSocketRoute), route


@pytest.fixture(scope="module")
def harness(stack: Settings) -> Iterator[ApiHarness]:
    with api_harness(stack) as h:
        yield h


@pytest.mark.integration
def test_every_operation_reaches_its_route(harness: ApiHarness) -> None:
    """Without a token and with made-up ids, each operation answers from its own route (401,
    404 of an object, 422, ...), never with the router's "no such path/method"."""
    paths = harness.client.get("/openapi.json").json()["paths"]
    operations = [(m, p) for p, ops in paths.items() for m in ops]
    assert len(operations) > 100
    missed = []
    for method, template in operations:
        path = re.sub(r"\{[^}]*\}", "1", template)
        answer = harness.client.request(method.upper(), path)
        if answer.text in ROUTING_MISSES:
            missed.append((method, template, answer.status_code))
    assert missed == []
    assert harness.client.get("/no-such-area/1").text == ROUTING_MISSES[0]
