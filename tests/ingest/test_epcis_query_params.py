"""The EPCIS simple event query over HTTP against the real PostgreSQL: EPC patterns and
class-level identifiers in MATCH_ parameters, every standard parameter implemented or refused
by name, and nextPageToken paging that loses nothing while captures commit concurrently."""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any
from urllib.parse import urlencode

import pytest

from ingest.epcis import capture_events
from tests.support.api import ApiHarness
from tests.support.epcis_reference import EXAMPLES

pytestmark = pytest.mark.integration

CONTEXT = ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"]
OPENAPI = EXAMPLES.parent / "openapi.yaml"


def object_event(epcs: list[str], **more: Any) -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "eventTime": "2026-03-01T10:00:00.000Z",
        "eventTimeZoneOffset": "+00:00",
        "epcList": epcs,
        "action": "OBSERVE",
        "bizStep": "shipping",
        **more,
    }


@pytest.fixture(scope="module")
def events(api: ApiHarness) -> dict[str, dict[str, Any]]:
    """A few events, by name (each with an eventID), captured once for the module."""
    made = {
        "a": object_event(["urn:epc:id:sgtin:0614141.107346.2017"]),
        "b": object_event(["urn:epc:id:sgtin:0614141.207346.9"]),
        "other": object_event(["urn:epc:id:sgtin:4012345.011111.1"]),
        "lot": object_event(
            [],
            quantityList=[
                {"epcClass": "urn:epc:class:lgtin:0614141.107346.LOT7", "quantity": 5, "uom": "KGM"}
            ],
        ),
        "pack": {
            "type": "AggregationEvent",
            "eventTime": "2026-03-01T11:00:00.000Z",
            "eventTimeZoneOffset": "+00:00",
            "parentID": "urn:epc:id:sscc:0614141.1234567890",
            "childEPCs": ["urn:epc:id:sgtin:0614141.107346.3000"],
            "action": "ADD",
            "errorDeclaration": {
                "declarationTime": "2026-03-02T00:00:00Z",
                "reason": "incorrect_data",
            },
        },
        "make": {
            "type": "TransformationEvent",
            "eventTime": "2026-03-01T12:00:00.000Z",
            "eventTimeZoneOffset": "+00:00",
            "inputEPCList": ["urn:epc:id:sgtin:4012345.011111.77"],
            "outputQuantityList": [
                {"epcClass": "urn:epc:class:lgtin:0614141.107346.OUT1", "quantity": 1}
            ],
            "transformationID": "urn:epc:id:gdti:0614141.12345.400",
        },
    }
    for i, event in enumerate(made.values()):
        event["eventID"] = f"urn:uuid:7e570000-0000-4000-8000-{i:012d}"
    # An operator: these events name objects of no organisation of this schema, and what is
    # tested is hashing and querying, not tenancy (tests/api/test_tenancy_attacks.py).
    writer = api.headers("admin")
    document = {
        "@context": CONTEXT,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-03-01T12:00:00Z",
        "epcisBody": {"eventList": list(made.values())},
    }
    reply = api.client.post(
        "/epcis/capture",
        content=json.dumps(document),
        headers={**writer, "Content-Type": "application/ld+json"},
    )
    assert reply.status_code == 202, reply.text
    return made


_READERS: dict[int, dict[str, str]] = {}


def _reader(api: ApiHarness) -> dict[str, str]:
    # one signed-in buyer per harness: a token per request would spend the test on argon2
    if id(api) not in _READERS:
        _READERS[id(api)] = api.headers("admin")
    return _READERS[id(api)]


def ids(api: ApiHarness, **params: str) -> set[str]:
    reply = api.client.get(
        "/epcis/events?" + urlencode({**params, "perPage": "1000"}), headers=_reader(api)
    )
    assert reply.status_code == 200, reply.text
    found = reply.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    return {e["eventID"] for e in found}


def test_epc_patterns_match(api: ApiHarness, events: dict[str, dict[str, Any]]) -> None:
    def eid(*names: str) -> set[str]:
        return {events[n]["eventID"] for n in names}

    assert ids(api, MATCH_epc="urn:epc:idpat:sgtin:0614141.*.*") == eid("a", "b", "pack")
    assert ids(api, MATCH_epc="urn:epc:idpat:sgtin:0614141.107346.*") == eid("a", "pack")
    assert ids(api, MATCH_epc="urn:epc:id:sgtin:0614141.107346.2017") == eid("a")
    # anyEPC: a GTIN-level pattern also finds that GTIN's lots in quantity lists
    assert ids(api, MATCH_anyEPC="urn:epc:idpat:sgtin:0614141.107346.*") == eid(
        "a", "pack", "lot", "make"
    )
    assert ids(api, MATCH_anyEPC="urn:epc:idpat:sscc:0614141.*") == eid("pack")
    # class level: an LGTIN exactly, or a GTIN's classes by pattern
    assert ids(api, MATCH_epcClass="urn:epc:class:lgtin:0614141.107346.LOT7") == eid("lot")
    assert ids(api, MATCH_anyEPCClass="urn:epc:idpat:sgtin:0614141.107346.*") == eid("lot", "make")
    assert ids(api, MATCH_outputEPCClass="urn:epc:idpat:sgtin:0614141.107346.*") == eid("make")
    assert ids(api, MATCH_inputEPC="urn:epc:idpat:sgtin:4012345.*.*") == eid("make")
    assert ids(api, MATCH_parentID="urn:epc:idpat:sscc:0614141.*") == eid("pack")


def test_other_implemented_parameters(api: ApiHarness, events: dict[str, dict[str, Any]]) -> None:
    assert ids(api, EQ_action="ADD") == {events["pack"]["eventID"]}
    assert ids(api, EQ_eventID=events["b"]["eventID"]) == {events["b"]["eventID"]}
    assert ids(api, EXISTS_errorDeclaration="true") == {events["pack"]["eventID"]}
    assert events["pack"]["eventID"] not in ids(api, EXISTS_errorDeclaration="false")
    assert ids(api, EQ_errorReason="urn:epcglobal:cbv:er:incorrect_data") == {
        events["pack"]["eventID"]
    }
    assert ids(api, EQ_transformationID="urn:epc:id:gdti:0614141.12345.400") == {
        events["make"]["eventID"]
    }


def refusal(api: ApiHarness, query: str) -> str:
    reply = api.client.get(f"/epcis/events?{query}", headers=_reader(api))
    assert reply.status_code == 400, (query, reply.text)
    detail: str = reply.json()["detail"]
    return detail


def test_a_malformed_pattern_is_refused(api: ApiHarness) -> None:
    assert refusal(api, "MATCH_epc=urn:epc:idpat:sgtin:0614141.*.5").startswith("MATCH_epc:")
    assert refusal(api, "MATCH_parentID=urn:epc:idpat:nope").startswith("MATCH_parentID:")


@pytest.mark.parametrize(
    "name",
    [
        "EQ_bizTransaction_po",
        "EQ_source_location",
        "EQ_value_CEL",
        "GT_value_CEL",
        "EQ_ILMD_example:lot",
        "EQ_example:field",
        "EXISTS_example:field",
        "HASATTR_readPoint",
        "EQATTR_readPoint_example:x",
        "EQ_INNER_example:x",
    ],
)
def test_a_standard_family_parameter_is_refused_by_name(api: ApiHarness, name: str) -> None:
    detail = refusal(api, urlencode({name: "x"}))
    assert detail.startswith(f"{name}: a standard EPCIS query parameter TraceHub does not")


def test_every_fixed_name_of_the_rest_binding_is_served_or_refused_by_name(
    api: ApiHarness, events: dict[str, dict[str, Any]]
) -> None:
    text = OPENAPI.read_text()
    block = text[text.index('        - $ref: "#/components/parameters/eventType"') :]
    block = block[: block.index("\n\n")]
    names = re.findall(r'#/components/parameters/([A-Za-z_]+)"', block)
    assert len(names) > 50
    values = {"eventType": "ObjectEvent", "EXISTS_errorDeclaration": "true"}
    served = refused = 0
    for name in names:
        value = values.get(name, "2026-01-01T00:00:00Z" if "Time" in name else "urn:x:1")
        reply = api.client.get("/epcis/events?" + urlencode({name: value}), headers=_reader(api))
        if reply.status_code == 200:
            served += 1
            continue
        assert reply.status_code == 400, (name, reply.text)
        detail = reply.json()["detail"]
        assert detail.startswith(f"{name}:"), (name, detail)
        assert "unsupported query parameter" not in detail, (name, detail)
        refused += 1
    assert served >= 20 and refused >= 20


def test_paging_loses_nothing_while_captures_commit_out_of_order(api: ApiHarness) -> None:
    """Transaction 1 captures first and commits last; transaction 2 must wait for it, so a
    reader paging in between never steps past transaction 1's event."""
    reader = _reader(api)
    marker = f"urn:epc:id:sgtin:9999999.000001.{time.time_ns()}"

    def page_all() -> list[str]:
        found: list[str] = []
        url = "/epcis/events?" + urlencode({"MATCH_anyEPC": marker, "perPage": "1"})
        while url:
            reply = api.client.get(url, headers=reader)
            assert reply.status_code == 200, reply.text
            found += [
                e["eventID"]
                for e in reply.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
            ]
            link = reply.headers.get("Link")
            url = link[1 : link.index(">")] if link else ""
        return found

    seen_first = page_all()
    assert seen_first == []
    first = object_event([marker], eventID="urn:uuid:00000000-0000-4000-8000-00000000000a")
    second = object_event([marker], eventID="urn:uuid:00000000-0000-4000-8000-00000000000b")
    done = threading.Event()
    conn1 = api.connect()
    try:
        capture_events(conn1, [first], source="test", context=CONTEXT)  # seq drawn, not committed

        def later() -> None:
            with api.connect() as conn2:
                capture_events(conn2, [second], source="test", context=CONTEXT)
                conn2.commit()
            done.set()

        thread = threading.Thread(target=later)
        thread.start()
        # the second capture waits for the first transaction: nothing is visible meanwhile
        assert not done.wait(1.0)
        assert page_all() == []
        conn1.commit()
    finally:
        conn1.close()
    thread.join(10)
    assert done.is_set()
    # a reader that paged before now continues from its cursor and still gets both, in order
    assert page_all() == [first["eventID"], second["eventID"]]
