"""The EPCIS 2.0 simple event query parameters beyond the indexed columns, and the ones refused.

Every parameter of the standard's ``SimpleEventQuery`` (EPCIS 2.0 section 8.2.7.1, and the
REST binding's fixed names) is either implemented or refused with 400 naming it; an unknown name
is refused too. Never a silent empty answer: EPC pattern values are matched
(:mod:`ingest.epcis.patterns`).

:func:`extra_filters` reads the parameters implemented here into ``EventQuery.extra``;
:func:`extra_conditions` turns that into SQL conditions on the stored event JSON.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ingest.epcis.patterns import QueryParameterError, value_regexes

__all__ = [
    "EXTRA_PARAMS",
    "check_standard_names",
    "extra_conditions",
    "extra_filters",
]

_JSON = "convert_from(event_json, 'UTF8')::jsonb"


def _any_of(*paths: str) -> str:
    """Some JSON value at one of ``paths`` (SQL/JSON path, lax) matches one of the regexes."""
    found = " UNION ALL ".join(f"SELECT jsonb_path_query({_JSON}, '{p}') AS v" for p in paths)
    return f"EXISTS (SELECT 1 FROM ({found}) AS found WHERE v #>> '{{}}' ~ ANY(%s))"


_ER_PREFIX = re.compile(r"^(urn:epcglobal:cbv:er:|https://ref\.gs1\.org/cbv/ER-)")
#: Implemented here: parameter -> SQL condition with one ``%s`` for its value list.
_CONDITIONS: dict[str, str] = {
    "EQ_action": f"{_JSON} ->> 'action' = ANY(%s)",
    "EQ_eventID": f"({_JSON} ->> 'eventID' = ANY(%s))",
    "EQ_transformationID": f"{_JSON} ->> 'transformationID' = ANY(%s)",
    "MATCH_parentID": f"{_JSON} ->> 'parentID' ~ ANY(%s)",
    "MATCH_inputEPC": _any_of("$.inputEPCList[*]"),
    "MATCH_outputEPC": _any_of("$.outputEPCList[*]"),
    "MATCH_epcClass": _any_of("$.quantityList[*].epcClass", "$.childQuantityList[*].epcClass"),
    "MATCH_inputEPCClass": _any_of("$.inputQuantityList[*].epcClass"),
    "MATCH_outputEPCClass": _any_of("$.outputQuantityList[*].epcClass"),
    "MATCH_anyEPCClass": _any_of("$.*[*].epcClass"),
    "EQ_errorReason": (
        f"regexp_replace({_JSON} -> 'errorDeclaration' ->> 'reason',"
        " '^(urn:epcglobal:cbv:er:|https://ref.gs1.org/cbv/ER-)', '') = ANY(%s)"
    ),
    "EXISTS_errorDeclaration": f"({_JSON} ? 'errorDeclaration') = %s",
}
#: The MATCH_ parameters whose values may be EPC patterns (turned into regexes).
_REGEX_PARAMS = frozenset(name for name in _CONDITIONS if name.startswith("MATCH_"))
EXTRA_PARAMS = frozenset(_CONDITIONS)

#: Standard parameters TraceHub does not implement (fixed names of the REST binding).
_REFUSED = frozenset(
    (
        "EQ_persistentDisposition_set",
        "EQ_persistentDisposition_unset",
        "WD_readPoint",
        "WD_bizLocation",
        "EQ_quantity",
        "GT_quantity",
        "GE_quantity",
        "LT_quantity",
        "LE_quantity",
        "GE_errorDeclarationTime",
        "LT_errorDeclarationTime",
        "EQ_correctiveEventID",
        "orderBy",
        "orderDirection",
        "eventCountLimit",
        "maxEventCount",
        "GE_startTime",
        "LT_startTime",
        "GE_endTime",
        "LT_endTime",
        "EQ_type",
        "EQ_deviceID",
        "EQ_dataProcessingMethod",
        "EQ_microorganism",
        "EQ_chemicalSubstance",
        "EQ_bizRules",
        "EQ_stringValue",
        "EQ_hexBinaryValue",
        "EQ_uriValue",
        "EQ_booleanValue",
        "GE_time",
        "LT_time",
        "EQ_deviceMetadata",
        "EQ_rawData",
        "EQ_component",
        "EQ_exception",
        "GE_percRank",
        "LT_percRank",
        "GT_percRank",
        "LE_percRank",
    )
)
#: Standard parameter families with names built from a type, uom or field name.
_REFUSED_FAMILIES = re.compile(
    r"(EQ_bizTransaction_|EQ_source_|EQ_destination_|EQ_INNER_|EQ_ILMD_|EQ_INNER_ILMD_"
    r"|(EQ|GT|GE|LT|LE)_(ILMD_|INNER_|INNER_ILMD_)?[A-Za-z0-9]+:"
    r"|(EQ|GT|GE|LT|LE)_(value|minValue|maxValue|meanValue|sDev|percValue)_"
    r"|EXISTS_(ILMD_|INNER_|INNER_ILMD_)?|HASATTR_|EQATTR_)"
)


def check_standard_names(names: Sequence[str]) -> None:
    """Refuse (400) a standard parameter TraceHub does not implement, naming it."""
    for name in sorted(names):
        if name in _REFUSED or _REFUSED_FAMILIES.match(name):
            raise QueryParameterError(
                f"{name}: a standard EPCIS query parameter TraceHub does not implement (its "
                "result would be wrong, so the query is refused; docs/epcis.md lists what is)"
            )


def _boolean(name: str, values: list[str]) -> list[Any]:
    if len(values) != 1 or values[0] not in ("true", "false"):
        raise QueryParameterError(f"{name}: must be true or false")
    return [values[0] == "true"]


def extra_filters(values_of: Callable[[str], list[str]], names: Sequence[str]) -> dict[str, Any]:
    """``EventQuery.extra`` from the request: each implemented parameter present -> its values
    (regexes for MATCH_ parameters, a boolean for EXISTS_errorDeclaration)."""
    out: dict[str, Any] = {}
    for name in sorted(set(names) & EXTRA_PARAMS):
        values = values_of(name)
        if name == "EXISTS_errorDeclaration":
            out[name] = _boolean(name, values)[0]
        elif name in _REGEX_PARAMS:
            out[name] = value_regexes(name, values)
        elif name == "EQ_errorReason":  # bare term, CBV URN and web URI compare equal
            out[name] = [_ER_PREFIX.sub("", value) for value in values]
        else:
            out[name] = values
    return out


def extra_conditions(extra: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(SQL condition, its one argument) for each filter of ``EventQuery.extra``."""
    return [(_CONDITIONS[name], value) for name, value in sorted(extra.items())]
