"""EPC patterns (``urn:epc:idpat:...``) and class-level identifiers in EPCIS ``MATCH_*`` queries.

The standard lets every ``MATCH_`` parameter take exact EPC URIs or EPC pattern URIs (GS1 Tag
Data Standard: ``urn:epc:idpat:sgtin:0614141.*.*`` is any SGTIN of company 0614141,
``urn:epc:idpat:sgtin:0614141.107346.*`` any instance of one GTIN). Every value becomes a
PostgreSQL regular expression; a value is matched against the stored identifiers as written (EPC
URNs; a Digital Link URI matches only itself).

A GTIN-level pattern also matches the GTIN's class-level identifiers in quantity lists: its lot
classes ``urn:epc:class:lgtin:C.I.<lot>`` and the pattern itself used as an epcClass.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ingest.errors import IngestError
from tracehub.errors import InvalidError

__all__ = ["QueryParameterError", "is_pattern", "match_clause", "value_regexes"]


class QueryParameterError(IngestError, InvalidError):
    """A query parameter is malformed or refused; the message names it first."""


_PATTERN = re.compile(r"urn:epc:idpat:(?P<scheme>[a-z0-9]+):(?P<fields>[^\s:]+)")


def is_pattern(value: str) -> bool:
    """Whether ``value`` is an EPC pattern URI."""
    return value.startswith("urn:epc:idpat:")


def _pattern_regexes(name: str, value: str) -> list[str]:
    match = _PATTERN.fullmatch(value)
    if match is None:
        raise QueryParameterError(
            f"{name}: {value!r} is not an EPC pattern URI (urn:epc:idpat:...)"
        )
    scheme, fields = match["scheme"], match["fields"].split(".")
    wild = [field == "*" for field in fields]
    if any(wild) and not all(wild[wild.index(True) :]):
        # TDS: once a component is '*', every later one is '*' too
        raise QueryParameterError(f"{name}: {value!r}: a '*' may only be followed by '*'")
    parts = []
    for i, field in enumerate(fields):
        last = i == len(fields) - 1
        parts.append((".+" if last else "[^.]+") if field == "*" else re.escape(field))
    regexes = [f"^urn:epc:id:{scheme}:" + r"\.".join(parts) + "$", f"^{re.escape(value)}$"]
    if scheme == "sgtin" and len(fields) == 3 and wild == [False, False, True]:
        # one GTIN: its lot-level classes and itself as a class in quantity lists
        company, item = re.escape(fields[0]), re.escape(fields[1])
        regexes.append(f"^urn:epc:class:lgtin:{company}\\.{item}\\..+$")
    return regexes


def value_regexes(name: str, values: Sequence[str]) -> list[str]:
    """POSIX regexes (PostgreSQL ``~``) matching what ``values`` of parameter ``name`` select:
    an exact URI matches itself, a pattern every identifier it covers."""
    out: list[str] = []
    for value in values:
        if is_pattern(value):
            out.extend(_pattern_regexes(name, value))
        else:
            out.append(f"^{re.escape(value)}$")
    return out


def match_clause(column: str, name: str, values: Sequence[str]) -> tuple[str, list[str]]:
    """SQL condition (one ``%s``) for an array column holding any of ``values`` (exact URIs
    use the GIN index; patterns are matched as regexes)."""
    if not any(is_pattern(v) for v in values):
        return f"{column} && %s::text[]", list(values)
    return (
        f"EXISTS (SELECT 1 FROM unnest({column}) AS e WHERE e ~ ANY(%s))",
        value_regexes(name, values),
    )
