"""What an EPCIS event is about, as party-model keys (ingest/epcis/subjects.py)."""

from __future__ import annotations

from ingest.epcis.subjects import identifier_keys, identifiers, subject_keys


def test_gs1_identifiers_give_their_keys() -> None:
    assert identifier_keys("urn:epc:class:lgtin:9506000.013435.L1") == {
        "cp:9506000",
        "lot:09506000134352/L1",
    }
    assert identifier_keys("urn:epc:id:sgtin:9506000.013435.7") == {
        "cp:9506000",
        "gtin:09506000134352",
    }
    assert identifier_keys("urn:epc:id:sscc:9506000.0123456789") == {
        "cp:9506000",
        "sscc:095060001234567893",
    }
    assert identifier_keys("https://id.gs1.org/01/09506000134352/10/L1") == {
        "lot:09506000134352/L1"
    }
    assert identifier_keys("https://id.gs1.org/00/095060001234567893") == {
        "sscc:095060001234567893"
    }


def test_locations_are_also_keyed_as_written_and_unknowns_belong_to_nobody() -> None:
    assert identifier_keys("urn:epc:id:sgln:9506000.00001.0", location=True) == {
        "cp:9506000",
        "gln:9506000000015",
        "loc:urn:epc:id:sgln:9506000.00001.0",
    }
    assert identifier_keys("urn:uuid:1234") == {"uri:urn:uuid:1234"}
    assert identifier_keys("urn:epc:id:sgtin:notdigits.1.2") == {
        "uri:urn:epc:id:sgtin:notdigits.1.2"
    }


def test_every_identifier_of_an_event_is_found_once() -> None:
    event = {
        "type": "AggregationEvent",
        "parentID": "urn:epc:id:sscc:9506000.0123456789",
        "childEPCs": ["urn:epc:id:sgtin:9506000.013435.7"],
        "childQuantityList": [{"epcClass": "urn:epc:class:lgtin:9506000.013435.L1"}],
        "readPoint": {"id": "urn:epc:id:sgln:9506000.00001.0"},
        "bizLocation": {"id": "urn:epc:id:sgln:9506000.00001.0"},
    }
    found = [identifier for identifier, _ in identifiers(event)]
    assert found == [
        "urn:epc:id:sgtin:9506000.013435.7",
        "urn:epc:id:sscc:9506000.0123456789",
        "urn:epc:class:lgtin:9506000.013435.L1",
        "urn:epc:id:sgln:9506000.00001.0",
    ]
    assert "lot:09506000134352/L1" in subject_keys(event)
