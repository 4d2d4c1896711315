"""The OpenAPI document's words: the overview a partner's integrator reads first, and request
and response examples of the flows partners use (EPCIS capture and query, RFQ → quote → order →
payment, proofs, alert subscriptions).

Kept here, not in the route modules, so the routes stay short: :func:`with_examples` adds the
examples to the generated document by (method, path). A test checks that every example names an
operation that exists and that request examples validate against the operation's schema.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

__all__ = ["EXAMPLES", "OVERVIEW", "install"]

OVERVIEW = """
TraceHub is the shared record of a supply chain whose members do not trust each other: a
factory, its carriers, the buyer, inspectors and auditors. Devices sign their readings; the hub
stores them, batches them on IPFS and anchors each batch's Merkle root on Hyperledger Fabric, so
anyone can check a record without trusting the hub's database. This API is how partners put
events in, read what they are party to, prove it, and trade.

## Getting a token

Every operation but the public ones (`/healthz`, the GS1 Digital Link resolver `/01/…` and its
QR labels) needs a bearer token. An administrator of the hub creates your user in your
organisation; then:

```
curl -s -X POST http://HUB/auth/token -d username=alice -d password=SECRET
{"access_token": "eyJ…", "token_type": "bearer", "expires_in": 3600}
curl -s http://HUB/auth/me -H "Authorization: Bearer eyJ…"
```

The token is short-lived: ask for a new one when a call answers 401. `POST /auth/revoke` ends
every token of your user. In this page, **Authorize** (top right) takes the user name and
password and sends the token with each "Try it out".

What a token may do is decided by the caller's roles (buyer, supplier, logistics, inspector,
auditor, admin) and by whether the caller's organisation is a party to the object (the shipper,
receiver or carrier of a shipment, the owner of a product, the buyer or supplier of an order).
Objects of other organisations answer 404, as if they did not exist.

## Errors

Errors are JSON: `{"detail": "<what went wrong>"}`, with the status telling the kind:

| status | meaning |
| --- | --- |
| 400 | a malformed request (e.g. an invalid EPCIS document) |
| 401 | no token, or an expired or revoked one |
| 403 | your role may not do this, or your organisation may not (the message says which) |
| 404 | no such object, or not one your organisation is a party to |
| 409 | the object's state does not allow this change (the message says what is allowed) |
| 413 | the request body is too large |
| 422 | a field fails validation (`detail` lists each field and why) |
| 429 | too many requests: wait for the `Retry-After` seconds |
| 502, 503 | the ledger, IPFS or the payment provider failed or is down: retry later |

## Paging

Lists take `limit` (and, where noted, `offset`). EPCIS queries page with `perPage`; the next
page's URL is in the `Link` header (`rel="next"`, carrying an opaque `nextPageToken`); there
is no next page when the header is absent.

## Idempotency keys

`POST /commerce/orders`, `POST /commerce/quotes/{id}/accept` and
`POST /commerce/orders/{id}/payments` take an `Idempotency-Key` header of your choosing (1 to 255
visible ASCII characters, e.g. a UUID). Sending the same key again, even concurrently, returns
the same order or payment (201 the first time, 200 afterwards) instead of creating a second:
retry a timed-out request with the same key.

## The partner flows

- **EPCIS 2.0**: `POST /epcis/capture` an EPCISDocument (JSON-LD or XML), follow the capture
  job, then `GET /epcis/events` with the standard query parameters, or save a named query and
  subscribe a webhook to it (`/epcis/queries`).
- **Trade**: `POST /commerce/rfqs` (buyer) → `POST /commerce/rfqs/{id}/quotes` (supplier) →
  `POST /commerce/quotes/{id}/accept` (buyer; creates the order) →
  `POST /commerce/orders/{id}/payments`. A payment held until delivery is released when the
  shipment is delivered without an open alert.
- **Proofs**: `GET /proofs/readings/{device}/{seq}` and `GET /proofs/events/{event_id}` return
  inclusion proofs; `tracehub verify proof.json` checks one against IPFS and the ledger.
- **Alerts**: `POST /alerts/subscriptions` sends alert changes of your shipments to a webhook or
  an e-mail address; `GET /alerts/stream` follows them live (Server-Sent Events).
""".strip()

_GTIN = "09506000134352"
_SHIPPED_EVENT: dict[str, Any] = {
    "type": "ObjectEvent",
    "eventTime": "2026-03-02T07:55:00Z",
    "eventTimeZoneOffset": "+01:00",
    "epcList": ["urn:epc:id:sgtin:9506000.013435.1001"],
    "action": "OBSERVE",
    "bizStep": "shipping",
    "disposition": "in_transit",
    "readPoint": {"id": "urn:epc:id:sgln:9506000.00010.0"},
    "bizLocation": {"id": "urn:epc:id:sgln:9506000.00010.0"},
}
_EPCIS_DOCUMENT: dict[str, Any] = {
    "@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"],
    "type": "EPCISDocument",
    "schemaVersion": "2.0",
    "creationDate": "2026-03-02T08:00:00Z",
    "epcisBody": {"eventList": [_SHIPPED_EVENT]},
}
_QUERY_DOCUMENT = {
    "@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"],
    "type": "EPCISQueryDocument",
    "schemaVersion": "2.0",
    "creationDate": "2026-03-02T09:00:00Z",
    "epcisBody": {
        "queryResults": {
            "queryName": "SimpleEventQuery",
            "resultsBody": {"eventList": [_SHIPPED_EVENT]},
        }
    },
}
_ORDER = {
    "order_id": "5b0c1e8e-6a38-4f5e-9a53-3f1f1c1f6b10",
    "buyer_org": "acme-retail",
    "supplier_org": "shenzhen-vax",
    "state": "placed",
    "currency": "USD",
    "incoterm": "FCA",
    "named_place": "Shenzhen",
    "total": "1234.00",
    "lines": [{"gtin": _GTIN, "quantity": 100, "unit_price": "12.34"}],
}
_PROOF = {
    "version": 1,
    "device_id": "logger-17",
    "seq": 42,
    "reading_hash": "9f2c…(64 hex)",
    "leaf_index": 41,
    "tree_size": 256,
    "audit_path": ["3b1a…", "c04e…"],
    "root": "e3b0…(64 hex)",
    "batch_id": "b-20260302-0007",
    "ipfs_cid": "bafkreigh2akiscaildc…",
    "tx_id": "8d2f…",
    "block_number": 1234,
    "certificate_sha256": "51c7…",
}


def _json(summary: str, value: Any) -> dict[str, Any]:
    return {"summary": summary, "value": value}


#: (method, path) -> {"request": {name: example}, "responses": {status: {name: example}},
#: "parameters": {parameter: {name: example}}}; request bodies are JSON unless "content" says.
EXAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/auth/token"): {
        "content": "application/x-www-form-urlencoded",
        "request": {
            "password": _json(
                "user name and password", {"username": "alice", "password": "s3cret-pass"}
            )
        },
        "responses": {
            "200": {
                "token": _json(
                    "a bearer token",
                    {"access_token": "eyJhbGciOi…", "token_type": "bearer", "expires_in": 3600},
                )
            },
            "401": {
                "wrong": _json("wrong user or password", {"detail": "wrong user name or password"})
            },
        },
    },
    ("post", "/epcis/capture"): {
        "request": {"shipping": _json("one ObjectEvent: a case shipped", _EPCIS_DOCUMENT)},
        "responses": {
            "202": {
                "accepted": _json(
                    "the capture job (its URL is also in Location)",
                    {"captureID": "c-7f3a2b", "running": True, "success": True},
                )
            },
            "400": {
                "invalid": _json(
                    "not an EPCIS 2.0 document",
                    {"detail": "epcisBody.eventList[0]: 'action' is a required property"},
                )
            },
            "403": {
                "not_yours": _json(
                    "an EPC your organisation is no party to",
                    {"detail": "urn:epc:id:sgtin:9506000.013435.1001 is not your organisation's"},
                )
            },
        },
    },
    ("get", "/epcis/events"): {
        "parameters": {
            "EQ_bizStep": {"shipping": _json("shipping events", "shipping")},
            "GE_eventTime": {"since": _json("from this instant", "2026-03-01T00:00:00Z")},
            "MATCH_epc": {
                "item": _json("one serialised item", "urn:epc:id:sgtin:9506000.013435.1001")
            },
            "perPage": {"ten": _json("ten a page", 10)},
        },
        "responses": {"200": {"events": _json("an EPCISQueryDocument", _QUERY_DOCUMENT)}},
    },
    ("post", "/epcis/queries"): {
        "request": {
            "shipping": _json(
                "a named query: shipping events of one lot",
                {
                    "name": "lot-L1-shipping",
                    "query": {
                        "EQ_bizStep": ["shipping"],
                        "MATCH_epcClass": ["urn:epc:class:lgtin:9506000.013435.L1"],
                    },
                },
            )
        },
        "responses": {
            "201": {
                "created": _json(
                    "the saved query",
                    {"name": "lot-L1-shipping", "query": {"EQ_bizStep": ["shipping"]}},
                )
            }
        },
    },
    ("post", "/epcis/queries/{queryName}/subscriptions"): {
        "request": {
            "webhook": _json(
                "new matching events to a webhook, signed with a shared token",
                {
                    "dest": "https://partner.example/epcis/hook",
                    "signatureToken": "a-long-shared-secret-1234",
                    "stream": True,
                },
            )
        },
        "responses": {
            "201": {
                "subscribed": _json(
                    "the subscription",
                    {
                        "subscriptionID": "s-81c2",
                        "dest": "https://partner.example/epcis/hook",
                        "stream": True,
                    },
                )
            }
        },
    },
    ("post", "/commerce/rfqs"): {
        "request": {
            "rfq": _json(
                "100 units, FCA",
                {
                    "supplier_org": "shenzhen-vax",
                    "currency": "USD",
                    "incoterm": "FCA",
                    "lines": [{"gtin": _GTIN, "quantity": 100}],
                    "note": "delivery in March",
                },
            )
        },
        "responses": {
            "201": {
                "rfq": _json(
                    "the RFQ",
                    {
                        "rfq_id": "0f7d2c8a-3b7e-4d0c-8a8e-4b1f0a2c9d11",
                        "state": "open",
                        "supplier_org": "shenzhen-vax",
                        "currency": "USD",
                    },
                )
            }
        },
    },
    ("post", "/commerce/rfqs/{rfq_id}/quotes"): {
        "request": {
            "quote": _json(
                "the supplier's prices",
                {
                    "incoterm": "FCA",
                    "named_place": "Shenzhen",
                    "valid_until": "2026-03-31T23:59:59Z",
                    "lines": [{"gtin": _GTIN, "quantity": 100, "unit_price": "12.34"}],
                },
            )
        },
        "responses": {
            "201": {
                "quote": _json(
                    "the quote",
                    {
                        "quote_id": "8c6a1f3e-2d4b-4c5a-9e7f-1a2b3c4d5e6f",
                        "state": "offered",
                        "total": "1234.00",
                        "currency": "USD",
                    },
                )
            }
        },
    },
    ("post", "/commerce/quotes/{quote_id}/accept"): {
        "request": {
            "accept": _json(
                "accept, pay in EUR, hold the money until delivery",
                {"settlement_currency": "EUR", "hold_until_delivery": True},
            )
        },
        "responses": {
            "200": {"order": _json("the order it created", _ORDER)},
            "409": {
                "expired": _json(
                    "too late", {"detail": "quote … is 'expired'; it cannot become 'accepted'"}
                )
            },
        },
    },
    ("post", "/commerce/orders"): {
        "request": {
            "order": _json(
                "priced from the supplier's price list",
                {
                    "supplier_org": "shenzhen-vax",
                    "currency": "USD",
                    "incoterm": "FCA",
                    "named_place": "Shenzhen",
                    "lines": [{"gtin": _GTIN, "quantity": 100}],
                },
            )
        },
        "responses": {
            "201": {"order": _json("a new order", _ORDER)},
            "200": {"replay": _json("the same Idempotency-Key again: the same order", _ORDER)},
        },
    },
    ("post", "/commerce/orders/{order_id}/payments"): {
        "request": {
            "card": _json(
                "by card through the payment provider",
                {"method": "card", "provider_options": {"receipt_email": "ap@acme.example"}},
            ),
            "transfer": _json(
                "by bank transfer",
                {
                    "method": "bank_transfer",
                    "bank": {
                        "iban": "NL91ABNA0417164300",
                        "bic": "ABNANL2A",
                        "reference": "PO 2026-17",
                    },
                },
            ),
        },
        "responses": {
            "200": {
                "payment": _json(
                    "the payment",
                    {
                        "payment_id": "2a9e…",
                        "order_id": _ORDER["order_id"],
                        "method": "card",
                        "state": "pending",
                        "amount": "1234.00",
                        "currency": "USD",
                    },
                )
            }
        },
    },
    ("get", "/proofs/readings/{device_id}/{seq}"): {
        "responses": {
            "200": {"proof": _json("an inclusion proof (docs/batch-and-proof.md)", _PROOF)},
            "404": {
                "pending": _json(
                    "not anchored yet", {"detail": "reading logger-17/42 is not anchored yet"}
                )
            },
        },
    },
    ("get", "/proofs/events/{event_id}"): {
        "responses": {
            "200": {
                "proof": _json(
                    "an event's inclusion proof",
                    {
                        **_PROOF,
                        "device_id": None,
                        "seq": None,
                        "event_id": "ni:///sha-256;…?ver=CBV2.0",
                        "batch_id": "ev-20260302-0003",
                    },
                )
            }
        },
    },
    ("post", "/alerts/subscriptions"): {
        "request": {
            "webhook": _json(
                "temperature excursions of one shipment to a webhook",
                {
                    "channel": "webhook",
                    "target": "https://partner.example/hooks/alerts",
                    "kinds": ["temperature_excursion"],
                    "shipment_id": "SHP-2026-0042",
                },
            ),
            "email": _json(
                "every alert of your shipments by e-mail",
                {"channel": "email", "target": "cold-chain@partner.example"},
            ),
        },
        "responses": {
            "201": {
                "created": _json(
                    "the subscription; a webhook's signing secret is shown once",
                    {
                        "subscription_id": "6f1c…",
                        "channel": "webhook",
                        "target": "https://partner.example/hooks/alerts",
                        "kinds": ["temperature_excursion"],
                        "shipment_id": "SHP-2026-0042",
                        "enabled": True,
                        "secret": "whsec_…",
                    },
                )
            }
        },
    },
    ("post", "/alerts/{alert_id}/resolve"): {
        "request": {
            "note": _json(
                "what was done", {"note": "cargo re-iced at Rotterdam; temperature back in band"}
            )
        },
        "responses": {
            "403": {
                "held": _json(
                    "a payment waits on it: the buyer resolves",
                    {
                        "detail": "this alert holds a payment: the buyer resolves it,"
                        " or an inspection result first"
                    },
                )
            }
        },
    },
}


def _add(operation: dict[str, Any], spec: dict[str, Any]) -> None:
    if "request" in spec:
        content_type = spec.get("content", "application/json")
        body = operation.setdefault("requestBody", {"content": {}, "required": True})
        media = body["content"].setdefault(content_type, {"schema": {}})
        media["examples"] = spec["request"]
    for status, examples in spec.get("responses", {}).items():
        response = operation["responses"].setdefault(status, {"description": "example"})
        content = response.setdefault("content", {})
        content.setdefault("application/json", {}).update({"examples": examples})
    parameters = operation.setdefault("parameters", [])
    for name, examples in spec.get("parameters", {}).items():
        declared = next((p for p in parameters if p["name"] == name), None)
        if declared is None:  # a route that reads its query itself (EPCIS) declares none
            declared = {
                "name": name,
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
            }
            parameters.append(declared)
        declared["examples"] = examples


def with_examples(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of the OpenAPI document with :data:`EXAMPLES` added to their operations."""
    document = copy.deepcopy(document)
    for (method, path), spec in EXAMPLES.items():
        _add(document["paths"][path][method], spec)
    return document


def install(app: FastAPI) -> None:
    """Give the app's OpenAPI document the overview and the examples (built once)."""
    app.description = OVERVIEW

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_examples(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    summary=app.summary,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override point
