"""EPCIS XML over HTTP against the real PostgreSQL: GS1's XML examples captured (1.2 ones
upgraded), stored as their JSON-LD twins are, refused with line and rule when malformed, and
query results in XML."""

from __future__ import annotations

import json
from typing import Any

import pytest
from lxml import etree

from ingest.epcis.store import prepare_event
from tests.support.api import ApiHarness
from tests.support.epcis_reference import EXAMPLES, XML_EXAMPLES, events_of
from tracehub.epcis.hashing import event_hash
from tracehub.epcis.xml_binding import _schema, parse_xml_document

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def writer(api: ApiHarness) -> dict[str, str]:
    # An operator: these events name objects of no organisation of this schema, and what is
    # tested is hashing and querying, not tenancy (tests/api/test_tenancy_attacks.py).
    return api.headers("admin")


@pytest.fixture(scope="module")
def reader(api: ApiHarness) -> dict[str, str]:
    return api.headers("admin")


def test_every_xml_example_is_captured(
    api: ApiHarness, writer: dict[str, str], reader: dict[str, str]
) -> None:
    paths = sorted(XML_EXAMPLES.glob("*.xml"))
    assert len(paths) == 28
    for path in paths:
        media = "text/xml" if path.name.startswith("epcis-1.2__") else "application/xml"
        reply = api.client.post(
            "/epcis/capture",
            content=path.read_bytes(),
            headers={**writer, "Content-Type": f"{media}; charset=utf-8"},
        )
        assert reply.status_code == 202, (path.name, reply.text)
        job = api.client.get(reply.headers["Location"], headers=reader).json()
        assert job["success"] is True, path.name
        document = parse_xml_document(path.read_bytes())
        assert job["captured"] == len(document.events), path.name


def test_an_xml_event_is_stored_as_its_json_ld_twin(
    api: ApiHarness, writer: dict[str, str]
) -> None:
    xml = (XML_EXAMPLES / "AssociationEvent__AssociationEventExamples.xml").read_bytes()
    reply = api.client.post(
        "/epcis/capture", content=xml, headers={**writer, "Content-Type": "application/xml"}
    )
    assert reply.status_code == 202, reply.text
    # (the module's first test may have stored them already: capturing again is a no-op)
    document = parse_xml_document(xml)
    from_xml = [event_hash(prepare_event(e, context=document.context)[0]) for e in document.events]
    from_json = []
    for letter in "abcdefgh":
        name = f"AssociationEvent__AssociationEvent-{letter}.jsonld"
        document = json.loads((EXAMPLES / name).read_text())
        reply = api.client.post(
            "/epcis/capture",
            content=json.dumps(document),
            headers={**writer, "Content-Type": "application/ld+json"},
        )
        assert reply.status_code == 202, reply.text
        from_json.append(events_of(document)[0])
    with api.connect() as conn:
        rows = conn.execute(
            "SELECT event_hash, convert_from(event_json, 'UTF8')::jsonb, source FROM epcis_events"
            " WHERE event_hash = ANY(%s) ORDER BY seq",
            (from_xml,),
        ).fetchall()

    # GS1 gave the JSON-LD twins hash-URI eventIDs (and corrective event ids) where the XML
    # file has UUIDs or none, both outside the CBV 2.0 hash; apart from ids each stored XML
    # event is its twin, and both rows have the one hash
    def content(event: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in event.items() if k not in ("eventID", "@context")}
        if "errorDeclaration" in out:
            declaration = dict(out["errorDeclaration"])
            declaration.pop("correctiveEventIDs", None)
            out["errorDeclaration"] = declaration
        return out

    # every row of these hashes, whichever binding it came in, is a twin (ids aside); where the
    # XML event has the twin's eventID (h) the two captures are one row
    assert {h for h, _, _ in rows} == set(from_xml)
    assert len(rows) > len(set(from_xml))  # XML rows (no or other eventIDs) and JSON-LD rows
    for uri, stored, _ in rows:
        twins = [content(t) for t, u in zip(from_json, from_xml, strict=True) if u == uri]
        assert content(stored) in twins, uri


def test_malformed_xml_is_400_naming_line_and_rule(api: ApiHarness, writer: dict[str, str]) -> None:
    good = (XML_EXAMPLES / "Example_9.6.1-ObjectEvent-2020_06_18a.xml").read_text()
    broken = good.replace("<action>OBSERVE</action>", "<action>LOOK</action>", 1)
    reply = api.client.post(
        "/epcis/capture",
        content=broken.encode(),
        headers={**writer, "Content-Type": "application/xml"},
    )
    assert reply.status_code == 400, reply.text
    detail = reply.json()["detail"]
    line = 1 + broken.splitlines().index(
        next(x for x in broken.splitlines() if "<action>LOOK" in x)
    )
    assert f"line {line}:" in detail and "SCHEMAV_CVC_ENUMERATION_VALID" in detail, detail
    reply = api.client.post(
        "/epcis/capture", content=b"<a><b></a>", headers={**writer, "Content-Type": "text/xml"}
    )
    assert reply.status_code == 400 and "line 1: ERR_TAG_NAME_MISMATCH" in reply.json()["detail"]
    # JSON sent as XML, XML sent as JSON: both refused with what was expected
    reply = api.client.post(
        "/epcis/capture",
        content=good.encode(),
        headers={**writer, "Content-Type": "application/ld+json"},
    )
    assert reply.status_code == 400 and "application/xml" in reply.json()["detail"]


def test_query_results_in_xml(
    api: ApiHarness, writer: dict[str, str], reader: dict[str, str]
) -> None:
    path = XML_EXAMPLES / "Example-PersistentDisposition.xml"
    reply = api.client.post(
        "/epcis/capture",
        content=path.read_bytes(),
        headers={**writer, "Content-Type": "application/xml"},
    )
    assert reply.status_code == 202
    reply = api.client.get(
        "/epcis/events?perPage=1&EQ_bizStep=receiving",
        headers={**reader, "Accept": "application/xml"},
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("application/xml")
    assert 'rel="next"' in reply.headers["Link"]
    tree = etree.ElementTree(etree.fromstring(reply.content))
    schema = _schema("query-2.0")
    assert schema.validate(tree), schema.error_log
    events = parse_xml_document(reply.content).events
    assert len(events) == 1 and events[0]["bizStep"] in (
        "receiving",
        "https://ref.gs1.org/cbv/BizStep-receiving",
    )
    # JSON-LD stays the default
    reply = api.client.get("/epcis/events?perPage=1", headers=reader)
    assert reply.headers["content-type"].startswith("application/ld+json")
