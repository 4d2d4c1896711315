"""EPCIS XML (2.0 and 1.2) read into the stored JSON-LD form: GS1's XML examples, their JSON-LD
twins, the reference package's own XML reader, malformed and hostile documents."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from ingest.epcis.store import prepare_event
from tests.support.epcis_reference import EXAMPLES, XML_EXAMPLES, events_of, package_cli
from tracehub.epcis.errors import EPCISValidationError
from tracehub.epcis.hashing import document_hashes, document_prehashes, event_hash
from tracehub.epcis.xml_binding import _schema, parse_xml_document
from tracehub.epcis.xml_output import query_document_xml

#: The XML examples the reference package (1.9.3) cannot read itself (an IndexError in its
#: list folding on a bizTransaction without type) or that hold no events (master data).
PACKAGE_CANNOT_READ = {
    "Example-TransactionEvent-2020_07_03y.xml",
    "epcis-1.2__TransactionEvent.xml",
    "Mimasu__Example-masterData.xml",
    "WithFullCombinationOfFields__masterdata_all_possible_fields.xml",
}


def xml_examples() -> list[Path]:
    paths = sorted(XML_EXAMPLES.glob("*.xml"))
    assert len(paths) == 28, "GS1's 28 XML examples are expected under ../shared/epcis/xml-examples"
    return paths


def hashes_of(path: Path) -> list[str]:
    document = parse_xml_document(path.read_bytes())
    return [
        event_hash(prepare_event(event, context=document.context)[0]) for event in document.events
    ]


def json_hashes(name: str) -> list[str]:
    document = json.loads((EXAMPLES / name).read_text())
    return document_hashes({**document, "epcisBody": {"eventList": events_of(document)}})


@pytest.mark.parametrize("path", xml_examples(), ids=lambda p: p.name)
def test_every_xml_example_is_read_validated_and_hashed(path: Path) -> None:
    document = parse_xml_document(path.read_bytes())
    assert document.version == ("1.2" if path.name.startswith("epcis-1.2__") else "2.0")
    expected = len(list(etree.parse(str(path)).getroot().iter(*_EVENT_TAGS)))
    assert len(document.events) == expected
    for i, event in enumerate(document.events):
        stored, uri, _ = prepare_event(event, context=document.context, where=f"[{i}]")
        assert uri.startswith("ni:///sha-256;")
        assert stored["type"] == event["type"]


_EVENT_TAGS = (
    "ObjectEvent",
    "AggregationEvent",
    "TransactionEvent",
    "TransformationEvent",
    "AssociationEvent",
)


def test_twins_give_the_hash_of_their_json_ld_form() -> None:
    # GS1's association examples a-h are, event for event, the eight events of the XML file
    association = hashes_of(XML_EXAMPLES / "AssociationEvent__AssociationEventExamples.xml")
    twins = [json_hashes(f"AssociationEvent__AssociationEvent-{c}.jsonld")[0] for c in "abcdefgh"]
    assert association == twins
    # Example 9.6.1: the first event is the same in both bindings (GS1's JSON-LD version
    # changed the second event's content, so only the first is a twin)
    assert (
        hashes_of(XML_EXAMPLES / "Example_9.6.1-ObjectEvent-2020_06_18a.xml")[0]
        == json_hashes("Example_9.6.1-ObjectEvent.jsonld")[0]
    )


def test_a_1_2_document_hashes_as_its_2_0_version() -> None:
    pairs = {
        "epcis-1.2__ObjectEvent.xml": ("Example_9.6.1-ObjectEvent-2020_06_18a.xml", [0]),
        "epcis-1.2__AggregationEvent.xml": ("Mimasu__Example3.xml", [0]),
        "epcis-1.2__TransformationEvent.xml": ("Mimasu__Example4.xml", [0]),
        # event 5 of the 1.2 file spells sensorMetaData (1.2's revised XSD): another event
        "epcis-1.2__AssociationEvent.xml": (
            "AssociationEvent__AssociationEventExamples.xml",
            [0, 1, 2, 3, 4, 6, 7],
        ),
    }
    for old, (new, indices) in pairs.items():
        old_hashes, new_hashes = hashes_of(XML_EXAMPLES / old), hashes_of(XML_EXAMPLES / new)
        assert [old_hashes[i] for i in indices] == [new_hashes[i] for i in indices], old


def test_a_1_2_association_event_keeps_what_gs1s_stylesheet_drops() -> None:
    # convert-1.2-to-2.0.xsl loses an AssociationEvent's sourceList and destinationList
    events = parse_xml_document((XML_EXAMPLES / "epcis-1.2__AssociationEvent.xml").read_bytes())
    assert events.events[5]["sourceList"] == [
        {"type": "possessing_party", "source": "urn:epc:id:pgln:4000001.00012"}
    ]
    assert "destinationList" in events.events[5]


_XSI_ATTRIBUTE = re.compile(r"\s+xsi:(type|nil)=\"[^\"]*\"")


def _reference_readable(path: Path, workdir: Path) -> Path:
    """The XML with ``xsi:type`` / ``xsi:nil`` annotations removed: the reference reader puts
    them into the pre-hash string, and the JSON-LD binding has no place for them."""
    copy = workdir / path.name
    copy.write_text(_XSI_ATTRIBUTE.sub("", path.read_text()))
    return copy


@pytest.mark.parametrize(
    "path", [p for p in xml_examples() if p.name not in PACKAGE_CANNOT_READ], ids=lambda p: p.name
)
def test_the_reference_xml_reader_agrees(path: Path, tmp_path: Path) -> None:
    """The reference package's CLI, in a fresh process, on the XML itself: the same pre-hash
    strings as the JSON-LD form we store, except that its JSON reader writes a JSON boolean as
    Python does (``True``) where its XML reader has the text (``true``)."""
    reference, reference_prehashes = package_cli(_reference_readable(path, tmp_path))
    document = parse_xml_document(path.read_bytes())
    ours = document_prehashes(document.as_jsonld())
    ours = [p.replace("booleanValue=True", "booleanValue=true") for p in ours]
    ours = [p.replace("booleanValue=False", "booleanValue=false") for p in ours]
    assert ours == reference_prehashes
    expected = [f"ni:///sha-256;{hashlib.sha256(p.encode()).hexdigest()}?ver=CBV2.0" for p in ours]
    assert expected == reference


def _error(data: bytes) -> str:
    with pytest.raises(EPCISValidationError) as info:
        parse_xml_document(data)
    return str(info.value)


def test_malformed_xml_names_the_line_and_the_rule() -> None:
    good = (XML_EXAMPLES / "Example_9.6.1-ObjectEvent-2020_06_18a.xml").read_text()
    # a schema rule: eventTimeZoneOffset is required after eventTime
    lines = good.splitlines()
    where = next(i for i, line in enumerate(lines) if "<eventTimeZoneOffset>" in line)
    broken = "\n".join(lines[:where] + lines[where + 1 :])
    message = _error(broken.encode())
    assert re.search(r"line \d+: SCHEMAV_ELEMENT_CONTENT: Element 'epcList'", message), message
    assert "eventTimeZoneOffset" in message
    # not well-formed
    message = _error(b"<epcis:EPCISDocument xmlns:epcis='urn:epcglobal:epcis:xsd:2'>\n<a></b>")
    assert re.search(r"line 2: ERR_TAG_NAME_MISMATCH", message), message
    # a foreign root
    assert "not an EPCIS" in _error(b"<html/>")
    # a bad value type: quantity must be a decimal
    bad = good.replace("<eventTime>", "<eventTime>yesterday ", 1)
    message = _error(bad.encode())
    assert "SCHEMAV_CVC_DATATYPE_VALID_1_2_1" in message and "line " in message, message


def test_entities_and_the_network_are_never_used(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    good = (XML_EXAMPLES / "Example_9.6.1-ObjectEvent-2020_06_18a.xml").read_text()
    body = good.split("?>", 1)[1]
    hostile = (
        f'<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY x SYSTEM "file://{secret}">'
        '<!ENTITY y "yyyyyyyyyy"><!ENTITY z "&y;&y;&y;&y;&y;&y;&y;&y;&y;&y;">]>'
        + body.replace("urn:epc:id:sgtin:0614141.107346.2017", "&x;&z;", 1)
    )
    message = _error(hostile.encode())
    assert "ENTITY_DECLARATION" in message
    assert "TOP-SECRET" not in message and "yyyy" not in message
    # a DOCTYPE that only names the root (as GS1's examples have) is fine
    assert parse_xml_document(good.replace("?>", "?><!DOCTYPE project>", 1).encode()).events


def _stored_events(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".xml":
        document = parse_xml_document(path.read_bytes())
        return [prepare_event(e, context=document.context)[0] for e in document.events]
    raw = json.loads(path.read_text())
    return [prepare_event(e, context=raw.get("@context"))[0] for e in events_of(raw)]


@pytest.mark.parametrize(
    "path",
    [*xml_examples(), *sorted(EXAMPLES.glob("*.jsonld"))],
    ids=lambda p: p.name,
)
def test_query_results_in_xml_validate_against_gs1s_query_xsd(path: Path) -> None:
    events = [{**e, "recordTime": "2026-01-01T00:00:00Z"} for e in _stored_events(path)]
    data = query_document_xml(events, creation_date="2026-01-01T00:00:00Z")
    tree = etree.ElementTree(etree.fromstring(data))
    schema = _schema("query-2.0")
    assert schema.validate(tree), schema.error_log
    back = parse_xml_document(data)
    assert back.kind == "EPCISQueryDocument" and len(back.events) == len(events)


@pytest.mark.parametrize(
    "name",
    [
        "AssociationEvent__AssociationEventExamples.xml",
        "Example_9.6.1-ObjectEvent-2020_06_18a.xml",
        "Mimasu__Example-associatonEvent-sensor.xml",
        "WithFullCombinationOfFields__aggregation_event_all_possible_fields.xml",
    ],
)
def test_an_event_written_as_xml_and_read_back_keeps_its_hash(name: str) -> None:
    events = _stored_events(XML_EXAMPLES / name)
    data = query_document_xml(events, creation_date="2026-01-01T00:00:00Z")
    assert hashes_of_bytes(data) == [event_hash(e) for e in events]


def hashes_of_bytes(data: bytes) -> list[str]:
    document = parse_xml_document(data)
    return [event_hash(prepare_event(e, context=document.context)[0]) for e in document.events]
