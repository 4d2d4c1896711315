"""EPCIS pieces that need no stack: schema errors, hashing offline, readings as events, batch
layout, proof format."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ingest.epcis.readings import reading_event_id, reading_to_event
from ingest.epcis.store import encode_event, normalise_vocabulary
from tracehub.epcis import EPCISValidationError
from tracehub.epcis.batch import EventBatchFormatError, decode_event_batch, encode_event_batch
from tracehub.epcis.hashing import (
    document_hashes,
    document_prehashes,
    event_hash,
    expansion_context,
    hashable_context,
)
from tracehub.epcis.proof import EventProof
from tracehub.epcis.schema import validate_document, validate_event
from tracehub.proof import ProofFormatError

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "epcis" / "examples"
TS = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)


def test_schema_error_names_the_path() -> None:
    document = json.loads((EXAMPLES / "Example_9.6.1-ObjectEvent.jsonld").read_text())
    document["epcisBody"]["eventList"][1]["readPoint"] = {"name": "dock"}
    with pytest.raises(EPCISValidationError) as caught:
        validate_document(document)
    assert caught.value.path.startswith("epcisBody.eventList[1]")
    assert "readPoint" in str(caught.value) or "id" in str(caught.value)
    with pytest.raises(EPCISValidationError, match=r"^\$"):
        validate_document([1, 2])


def test_hashing_is_offline_and_refuses_unknown_contexts() -> None:
    event = {
        "@context": ["https://example.org/unknown-context.jsonld"],
        "type": "ObjectEvent",
        "eventTime": "2020-01-01T00:00:00Z",
        "eventTimeZoneOffset": "+00:00",
        "action": "OBSERVE",
        "epcList": [],
    }
    with pytest.raises(EPCISValidationError, match="offline"):
        event_hash(event)


def test_hash_does_not_depend_on_what_was_hashed_before() -> None:
    """The package keeps namespaces in a module global; we reset it for each document."""
    path = EXAMPLES / "WithFullCombinationOfFields__association_event_all_possible_fields.jsonld"
    document = json.loads(path.read_text())
    first = document_hashes(document)
    for other in sorted(EXAMPLES.glob("WithSensorData__*.jsonld")):
        document_hashes(json.loads(other.read_text()))
    assert document_hashes(document) == first


def test_hashable_context_keeps_prefixes_only() -> None:
    context = ["https://ref.gs1.org/x", {"rail": "urn:rail:", "rail:n": {"@type": "xsd:integer"}}]
    assert hashable_context(context) == ["https://ref.gs1.org/x", {"rail": "urn:rail:"}]


def _document(events: list[dict[str, Any]], *inline: dict[str, str]) -> dict[str, Any]:
    return {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", *inline],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2020-07-03T09:00:00.0Z",
        "epcisBody": {"eventList": events},
    }


def _rail_event(*biz_transactions: dict[str, str]) -> dict[str, Any]:
    """The first event of GS1's rail example (Example-TransactionEvents-2020_07_03y)."""
    return {
        "type": "TransactionEvent",
        "eventTime": "2019-10-04T13:12:00.000Z",
        "eventTimeZoneOffset": "+01:00",
        "bizTransactionList": list(biz_transactions),
        "epcList": ["urn:epc:id:gsrn:95252084.000000001"],
        "action": "ADD",
        "bizStep": "http://epcis.example.org/hc/bizstep/summarising_discharge",
        "readPoint": {"id": "urn:epc:id:sgln:9524567.98765.0"},
    }


GDTI = "urn:epc:id:gdti:95252084.0001.0003555480001000"


def test_untyped_biz_transaction_prehash_is_the_hand_computed_one() -> None:
    """CBV 2.0 by hand: fields in canonical order, key=value, no separators, EPC URIs as
    canonical Digital Link URIs (check digits: GSRN ...0010, GDTI ...0014, GLN ...7655); the
    bizTransaction has no type, so only its value follows the list name."""
    (prehash,) = document_prehashes(_document([_rail_event({"bizTransaction": GDTI})]))
    assert prehash == (
        "eventType=TransactionEvent"
        "eventTime=2019-10-04T13:12:00.000Z"
        "eventTimeZoneOffset=+01:00"
        "epcListepc=https://id.gs1.org/8018/952520840000000010"
        "action=ADD"
        "bizStep=http://epcis.example.org/hc/bizstep/summarising_discharge"
        "readPointid=https://id.gs1.org/414/9524567987655"
        "bizTransactionListbizTransaction=https://id.gs1.org/253/95252084000140003555480001000"
    )


def test_untyped_and_typed_biz_transactions_together() -> None:
    typed = {"type": "po", "bizTransaction": "urn:epc:id:gdti:0614141.00001.1618034"}
    (prehash,) = document_prehashes(_document([_rail_event({"bizTransaction": GDTI}, typed)]))
    # One list name, its elements sorted as strings (the package's order for typed ones).
    assert prehash.endswith(
        "bizTransactionList"
        "bizTransaction=https://id.gs1.org/253/95252084000140003555480001000"
        "type=https://ref.gs1.org/cbv/BTT-pobizTransaction=https://id.gs1.org/253/06141410000121618034"
    )
    untyped_only = document_hashes(_document([_rail_event({"bizTransaction": GDTI})]))
    assert document_hashes(_document([_rail_event({"bizTransaction": GDTI}, typed)])) != (
        untyped_only
    )
    with_type = document_hashes(_document([_rail_event({"bizTransaction": GDTI, "type": "po"})]))
    assert with_type != untyped_only  # the type is part of the hash when present


def _ilmd_event(prefix: str) -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "eventTime": "2013-10-31T14:58:56.591Z",
        "eventTimeZoneOffset": "+02:00",
        "epcList": ["urn:epc:id:sgtin:0614141.107346.2017"],
        "action": "ADD",
        "bizStep": "commissioning",
        "ilmd": {f"{prefix}:lotNumber": "ABC123", f"{prefix}:countryOfOrigin": "GB"},
    }


def test_a_redefined_protected_prefix_hashes_as_its_declared_namespace() -> None:
    """GS1's transformation example declares ``cbvmda`` (protected in the EPCIS context) anew:
    the key takes the document's namespace, exactly as under any unprotected prefix name."""
    ns = {"cbvmda": "http://example.com/cbvmda/"}
    (prehash,) = document_prehashes(_document([_ilmd_event("cbvmda")], ns))
    assert prehash.endswith(
        "bizStep=https://ref.gs1.org/cbv/BizStep-commissioning"
        "ilmd{http://example.com/cbvmda/}countryOfOrigin=GB"
        "{http://example.com/cbvmda/}lotNumber=ABC123"
    )
    renamed = _document([_ilmd_event("xmda")], {"xmda": "http://example.com/cbvmda/"})
    assert document_prehashes(renamed) == [prehash]
    # Only the colliding entry is withheld from the expansion; the others stay.
    context = [ns, {"ext1": "http://example.com/ext1/", "gs1": "https://gs1.org/voc/"}]
    assert expansion_context(context) == [{}, {"ext1": "http://example.com/ext1/"}]


def test_vocabulary_forms_compare_equal() -> None:
    for value in (
        "shipping",
        "https://ref.gs1.org/cbv/BizStep-shipping",
        "urn:epcglobal:cbv:bizstep:shipping",
    ):
        assert normalise_vocabulary(value) == "shipping"
    assert normalise_vocabulary("https://example.org/step") == "https://example.org/step"


def _valid(event: dict[str, Any] | None) -> dict[str, Any]:
    assert event is not None
    validate_event(event)
    assert event_hash(event).startswith("ni:///sha-256;")
    return event


def test_rfid_reading_as_object_event() -> None:
    # SGTIN-96 of urn:epc:id:sgtin:0614141.812345.6789 (EPC TDS example).
    reading = {
        "device_id": "dock 3/agent",
        "seq": 12,
        "ts": TS,
        "kind": "rfid",
        "data": {"epc": "3074257BF7194E4000001A85", "antenna": 1},
        "loc": "0614141000005",
    }
    event = _valid(reading_to_event(reading))
    assert event["type"] == "ObjectEvent" and event["action"] == "OBSERVE"
    assert event["epcList"] == ["urn:epc:id:sgtin:0614141.812345.6789"]
    assert event["readPoint"] == {"id": "https://id.gs1.org/414/0614141000005"}
    assert event["eventTime"] == "2026-03-04T05:06:07.890Z"
    assert (
        event["eventID"]
        == reading_event_id("dock 3/agent", 12)
        == ("urn:tracehub:reading:dock%203%2Fagent:12")
    )
    raw = _valid(reading_to_event({**reading, "data": {"epc": "E2801160600002054C1F1234"}}))
    assert raw["epcList"] == ["urn:epc:raw:96.xE2801160600002054C1F1234"]
    assert reading_to_event({**reading, "data": {"epc": "not hex"}}) is None
    # A 125 kHz card id is not an EPC: named by a URI of its own, never urn:epc:.
    card = _valid(reading_to_event({**reading, "data": {"card_id": "62E3086CED"}}))
    assert card["epcList"] == ["urn:tracehub:card:62E3086CED"]
    assert reading_to_event({**reading, "kind": "health", "data": {"fault": "timeout"}}) is None


def test_environment_reading_as_sensor_event() -> None:
    reading = {
        "device_id": "cold-1",
        "seq": 1,
        "ts": TS,
        "kind": "environment",
        "data": {"temperature_c": 4.25, "humidity_pct": 61.5},
        "loc": "urn:epc:id:sgln:0614141.00777.0",
    }
    event = _valid(reading_to_event(reading))
    (element,) = event["sensorElementList"]
    assert element["sensorReport"] == [
        {"type": "Temperature", "value": 4.25, "uom": "CEL"},
        {"type": "RelativeHumidity", "value": 61.5, "uom": "P1"},
    ]
    assert event["readPoint"] == {"id": "urn:epc:id:sgln:0614141.00777.0"}
    no_loc = _valid(reading_to_event({**reading, "loc": None}))
    assert "readPoint" not in no_loc
    assert reading_to_event({**reading, "kind": "event", "data": {"type": "door"}}) is None


def test_batch_layout_round_trip_and_errors() -> None:
    events = [encode_event({"a": "x\ny"}), encode_event({"b": 2})]
    data = encode_event_batch("ev-1", "ab" * 32, events)
    assert data.count(b"\n") == 3  # header + 2 events; the newline inside a string is escaped
    batch = decode_event_batch(data)
    assert batch.events == tuple(events) and batch.batch_id == "ev-1"
    with pytest.raises(EventBatchFormatError):
        decode_event_batch(data[:-1])
    with pytest.raises(EventBatchFormatError, match="says 2 events"):
        decode_event_batch(data.rsplit(b"\n", 2)[0] + b"\n")


def test_event_proof_format() -> None:
    good = {
        "kind": "epcis-event",
        "version": 1,
        "event_id": "urn:x",
        "event_hash": "ni:///sha-256;" + "a" * 64 + "?ver=CBV2.0",
        "leaf_hash": "b" * 64,
        "index": 0,
        "batch_size": 1,
        "audit_path": [],
        "root": "b" * 64,
        "batch_id": "ev-x",
        "ipfs_cid": "bafkreiexample",
        "tx_id": "c" * 64,
        "block_number": 3,
        "channel": "trace",
        "chaincode": "tracehub",
    }
    assert EventProof.from_json(json.dumps(good)).to_dict() == good
    for name, value in (("kind", "reading"), ("event_hash", "a" * 64), ("index", 1)):
        with pytest.raises(ProofFormatError, match=name):
            EventProof.from_json(json.dumps({**good, name: value}))
