"""``ignoreFields``: fields a document declares outside its events' CBV 2.0 hash, hashed as the
reference implementation describes; stored with each event so its bytes alone give the hash."""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
from typing import Any
from urllib.parse import quote

import pytest

from ingest.epcis.store import prepare_event
from tests.support.api import ApiHarness
from tracehub.epcis.errors import EPCISValidationError
from tracehub.epcis.hashing import (
    document_hashes,
    document_prehashes,
    event_hash,
    event_prehash,
    ignore_declaration,
)

#: The pre-hash string the reference implementation's test data gives for its example of a
#: document with ignoreFields (tests/examples/epcisDocHavingEventWithIgnoreFields.prehashes in
#: RalphTro/epcis-event-hash-generator): the repository's own members are not in it.
REFERENCE_PREHASH = (
    "eventType=ObjectEventeventTime=2019-10-21T14:45:00.000ZeventTimeZoneOffset=+01:00"
    "epcListepc=https://id.gs1.org/00/040123451111111127action=OBSERVE"
    "bizStep=https://ref.gs1.org/cbv/BizStep-inspecting"
    "disposition=https://ref.gs1.org/cbv/Disp-in_progress"
    "readPointid=https://id.gs1.org/414/4012345000245/254/1"
)
CONTEXT: list[Any] = [
    "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
    {"example": "https://ns.example.com/epcis/", "rx": "https://repository-x.example.com/"},
]


def event(capture: str, record: str) -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "eventTime": "2019-10-21T15:45:00.000+01:00",
        "eventTimeZoneOffset": "+01:00",
        "epcList": ["urn:epc:id:sscc:4012345.0111111112"],
        "action": "OBSERVE",
        "bizStep": "inspecting",
        "disposition": "in_progress",
        "readPoint": {"id": "urn:epc:id:sgln:4012345.00024.1"},
        "example:captureID": capture,
        "rx:recordID": record,
    }


def document(key: str = "rx:ignoreFields", fields: Any = None) -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2019-11-01T14:00:00.000+01:00",
        key: ["example:captureID", "rx:recordID"] if fields is None else fields,
        "epcisBody": {"eventList": [event("c-1", "r-1"), event("c-2", "r-2")]},
    }


def test_declared_fields_are_outside_the_hash_as_the_reference_says() -> None:
    for key in ("rx:ignoreFields", "ignoreFields"):
        prehashes = document_prehashes(document(key))
        assert prehashes == [REFERENCE_PREHASH, REFERENCE_PREHASH], key
        digest = hashlib.sha256(REFERENCE_PREHASH.encode()).hexdigest()
        assert document_hashes(document(key)) == [f"ni:///sha-256;{digest}?ver=CBV2.0"] * 2


def test_a_declared_field_can_be_named_by_its_iri() -> None:
    doc = document(fields=["https://ns.example.com/epcis/captureID", "rx:recordID"])
    assert document_prehashes(doc)[0] == REFERENCE_PREHASH


def test_without_a_declaration_the_fields_are_hashed() -> None:
    doc = document()
    del doc["rx:ignoreFields"]
    first, second = document_prehashes(doc)
    assert first != second and "{https://ns.example.com/epcis/}captureID=c-1" in first
    # a prefix bound elsewhere does not declare anything: it is an extension like any other
    doc = document(key="example:ignoreFields")
    assert "captureID=c-1" in document_prehashes(doc)[0]


def test_a_malformed_declaration_names_the_field_and_the_reason() -> None:
    with pytest.raises(EPCISValidationError, match=r"rx:ignoreFields: must be a list"):
        ignore_declaration(document(fields="example:captureID"))
    with pytest.raises(EPCISValidationError, match=r"'epcList' is not an extension field"):
        ignore_declaration(document(fields=["epcList"]))


def test_a_stored_event_carries_the_declaration_and_hashes_alone() -> None:
    doc = document()
    fields = ignore_declaration(doc)
    stored, uri, prehash = prepare_event(event("c-9", "r-9"), context=CONTEXT, ignore=fields)
    assert list(stored)[:2] == ["@context", "ignoreFields"]
    assert stored["ignoreFields"] == ["example:captureID", "rx:recordID"]
    assert prehash == REFERENCE_PREHASH == event_prehash(stored)
    assert uri == event_hash(stored) == document_hashes(doc)[0]
    # the event's own bytes, declaration removed, would hash otherwise: it is what keeps them out
    bare = copy.deepcopy(stored)
    del bare["ignoreFields"]
    assert event_hash(bare) != uri


def _post(api: ApiHarness, headers: dict[str, str], doc: dict[str, Any]) -> Any:
    return api.client.post(
        "/epcis/capture",
        content=json.dumps(doc),
        headers={**headers, "Content-Type": "application/ld+json"},
    )


def test_a_document_with_ignore_fields_is_captured_and_its_prehash_shown(
    api: ApiHarness,
) -> None:
    # An operator: these events name objects of no organisation of this schema, and what is
    # tested is hashing and querying, not tenancy (tests/api/test_tenancy_attacks.py).
    writer, reader = api.headers("admin"), api.headers("admin")
    doc = document()
    for i, item in enumerate(doc["epcisBody"]["eventList"]):
        item["eventID"] = f"urn:uuid:00000000-0000-4000-8000-{secrets.token_hex(6)}{i}"[:45]
    reply = _post(api, writer, doc)
    assert reply.status_code == 202, reply.text
    assert reply.json()["captured"] == 2
    expected = hashlib.sha256(REFERENCE_PREHASH.encode()).hexdigest()
    for item in doc["epcisBody"]["eventList"]:
        got = api.client.get(f"/epcis/prehashes/{quote(item['eventID'], safe='')}", headers=reader)
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["prehash"] == REFERENCE_PREHASH and body["sha256"] == expected
        assert body["stored"] is True and body["matches"] is True
        assert body["eventHash"] == f"ni:///sha-256;{expected}?ver=CBV2.0"
        stored = api.client.get(f"/epcis/events/{quote(item['eventID'], safe='')}", headers=reader)
        assert stored.json()["ignoreFields"] == ["example:captureID", "rx:recordID"]
    assert api.client.get("/epcis/prehashes/urn:uuid:nope", headers=reader).status_code == 404


def test_an_identity_clash_names_its_real_cause(api: ApiHarness) -> None:
    writer = api.headers("admin")
    mark = secrets.token_hex(4)
    first = {**event(f"a-{mark}", "r"), "eventID": f"urn:uuid:{mark}-a"}
    clashing = {**event(f"b-{mark}", "r"), "eventID": f"urn:uuid:{mark}-a"}
    (_, clash_uri, _) = prepare_event(clashing, context=CONTEXT)
    # an event that claims, as its eventID, the hash URI of different content
    squatter = {**event(f"c-{mark}", "r"), "eventID": clash_uri}
    for item in (first, squatter):
        doc = {**document(), "epcisBody": {"eventList": [item]}}
        del doc["rx:ignoreFields"]
        assert _post(api, writer, doc).status_code == 202
    doc = {**document(), "epcisBody": {"eventList": [clashing]}}
    del doc["rx:ignoreFields"]
    reply = _post(api, writer, doc)
    assert reply.status_code == 400
    detail = reply.json()["detail"]
    assert f"eventID urn:uuid:{mark}-a is already the id of another event" in detail
    assert f"hash URI {clash_uri} is already the eventID of an event whose content" in detail
    assert "ignoreFields" in detail
