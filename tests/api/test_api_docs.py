"""The OpenAPI document's overview and examples, and the docs pages' assets served by the hub
itself (no CDN: /docs must work on a closed network)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from api.openapi_docs import EXAMPLES
from tests.support.api import ApiHarness, api_harness
from tracehub.config import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def harness(stack: Settings) -> Iterator[ApiHarness]:
    with api_harness(stack) as h:
        yield h


def _resolved(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    """The schema with the document's components beside it, so $refs resolve."""
    return {**schema, "components": document["components"]}


def test_the_overview_says_how_to_get_a_token_errors_paging_and_idempotency(
    harness: ApiHarness,
) -> None:
    description = harness.client.get("/openapi.json").json()["info"]["description"]
    for heading in ("Getting a token", "Errors", "Paging", "Idempotency keys"):
        assert f"## {heading}" in description, heading
    assert "POST http://HUB/auth/token" in description or "/auth/token" in description


def test_every_partner_flow_has_examples_that_fit_its_schema(harness: ApiHarness) -> None:
    document = harness.client.get("/openapi.json").json()
    flows = {
        "EPCIS capture": ("post", "/epcis/capture"),
        "EPCIS query": ("get", "/epcis/events"),
        "RFQ": ("post", "/commerce/rfqs"),
        "quote": ("post", "/commerce/rfqs/{rfq_id}/quotes"),
        "order": ("post", "/commerce/quotes/{quote_id}/accept"),
        "payment": ("post", "/commerce/orders/{order_id}/payments"),
        "proof": ("get", "/proofs/readings/{device_id}/{seq}"),
        "alert subscription": ("post", "/alerts/subscriptions"),
    }
    for flow, (method, path) in flows.items():
        operation = document["paths"][path][method]
        responses = [r for r in operation["responses"].values() if "content" in r]
        assert any(m.get("examples") for r in responses for m in r["content"].values()), flow
        if method == "post" and path != "/epcis/capture":
            media = operation["requestBody"]["content"]["application/json"]
            for name, example in media["examples"].items():
                # A request example the API would refuse would teach the wrong thing.
                jsonschema.validate(example["value"], _resolved(media["schema"], document))
                assert example["summary"], (flow, name)
    capture = document["paths"]["/epcis/capture"]["post"]["requestBody"]["content"]
    assert capture["application/json"]["examples"]["shipping"]["value"]["type"] == "EPCISDocument"
    params = {p["name"] for p in document["paths"]["/epcis/events"]["get"]["parameters"]}
    assert {"EQ_bizStep", "GE_eventTime", "perPage"} <= params
    # Every example names an operation the app has.
    for method, path in EXAMPLES:
        assert method in document["paths"][path], (method, path)


def test_the_docs_pages_load_only_from_the_hub(harness: ApiHarness) -> None:
    redoc = harness.client.get("/redoc", follow_redirects=False)
    assert redoc.status_code == 308 and redoc.headers["location"] == "/docs"
    for page, assets in (
        ("/docs", ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css")),
    ):
        reply = harness.client.get(page)
        assert reply.status_code == 200
        assert "https://" not in reply.text and "http://" not in reply.text, page
        policy = reply.headers["content-security-policy"]
        assert "https:" not in policy and "http:" not in policy, policy
        for asset in assets:
            assert asset in reply.text
            served = harness.client.get(asset)
            assert served.status_code == 200 and len(served.content) > 100_000, asset
    favicon = harness.client.get("/favicon.ico")
    assert favicon.status_code == 200 and favicon.headers["content-type"] == "image/x-icon"
    assert favicon.content[:4] == b"\x00\x00\x01\x00"  # an ICO header
    assert harness.client.get("/static/favicon.svg").status_code == 200
