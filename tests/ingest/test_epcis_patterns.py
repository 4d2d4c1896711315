"""EPC pattern URIs turned into the regexes the event query matches with (checked here with
Python's re; the integration tests run them in PostgreSQL)."""

from __future__ import annotations

import re

import pytest

from ingest.epcis.patterns import QueryParameterError, match_clause, value_regexes


def matches(value: str, candidate: str) -> bool:
    return any(re.search(rx, candidate) for rx in value_regexes("MATCH_epc", [value]))


@pytest.mark.parametrize(
    ("pattern", "candidate", "expected"),
    [
        ("urn:epc:idpat:sgtin:0614141.*.*", "urn:epc:id:sgtin:0614141.107346.2017", True),
        ("urn:epc:idpat:sgtin:0614141.*.*", "urn:epc:id:sgtin:0614142.107346.2017", False),
        ("urn:epc:idpat:sgtin:0614141.107346.*", "urn:epc:id:sgtin:0614141.107346.2017", True),
        ("urn:epc:idpat:sgtin:0614141.107346.*", "urn:epc:id:sgtin:0614141.107347.1", False),
        # a GTIN-level pattern covers that GTIN's lot classes and itself as a class
        ("urn:epc:idpat:sgtin:0614141.107346.*", "urn:epc:class:lgtin:0614141.107346.L1", True),
        ("urn:epc:idpat:sgtin:0614141.107346.*", "urn:epc:idpat:sgtin:0614141.107346.*", True),
        ("urn:epc:idpat:sgtin:0614141.*.*", "urn:epc:class:lgtin:0614141.107346.L1", False),
        ("urn:epc:idpat:sscc:0614141.*", "urn:epc:id:sscc:0614141.1234567890", True),
        ("urn:epc:idpat:sscc:0614141.*", "urn:epc:id:sgtin:0614141.1234567890.1", False),
        ("urn:epc:idpat:grai:*.*.*", "urn:epc:id:grai:4012345.55555.987", True),
        # a serial may hold characters a regex would read as operators
        ("urn:epc:idpat:sgtin:0614141.107346.*", "urn:epc:id:sgtin:0614141.107346.a.b+c", True),
        ("urn:epc:id:sgtin:0614141.107346.2017", "urn:epc:id:sgtin:0614141.107346.2017", True),
        ("urn:epc:id:sgtin:0614141.107346.2017", "urn:epc:id:sgtin:0614141.107346.20170", False),
    ],
)
def test_pattern_semantics(pattern: str, candidate: str, expected: bool) -> None:
    assert matches(pattern, candidate) is expected


@pytest.mark.parametrize(
    "bad", ["urn:epc:idpat:sgtin:0614141.*.5", "urn:epc:idpat:", "urn:epc:idpat:sgtin"]
)
def test_a_malformed_pattern_names_the_parameter(bad: str) -> None:
    with pytest.raises(QueryParameterError, match=r"^MATCH_epc: "):
        value_regexes("MATCH_epc", [bad])


def test_exact_values_keep_the_index() -> None:
    clause, args = match_clause("epcs", "MATCH_anyEPC", ["urn:epc:id:sscc:0614141.1"])
    assert clause == "epcs && %s::text[]" and args == ["urn:epc:id:sscc:0614141.1"]
    clause, args = match_clause("epcs", "MATCH_anyEPC", ["urn:epc:idpat:sscc:0614141.*"])
    assert "unnest(epcs)" in clause and args[0].startswith("^urn:epc:id:sscc:0614141")
