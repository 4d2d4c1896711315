"""What an EPCIS event is about, as keys the party model can match (ingest/parties.py).

Each identifier an event names (its EPCs, quantity classes, read point and business location)
gives one or more keys:

- ``lot:<gtin>/<lot>`` for a lot class (LGTIN EPC class, Digital Link with AI 10);
- ``gtin:<gtin>`` for an item (SGTIN, Digital Link with AI 01 and no lot) or a GTIN pattern;
- ``sscc:<sscc>`` for a logistic unit; ``gln:<gln>`` for a location (SGLN, Digital Link 414);
- ``cp:<company prefix>`` for any GS1 EPC URI (its owner's prefix);
- ``loc:<identifier>`` for a read point or business location as written;
- ``uri:<identifier>`` for anything else (nobody owns it).

An organisation may capture an event only when every identifier has a key it owns or is a
party to; it sees an event when any key is one of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from tracehub.gs1 import check_digit

__all__ = ["identifier_keys", "identifiers", "subject_keys"]

_QUANTITY_LISTS = ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList")


def _digits(company: str, reference: str) -> str:
    """A GS1 key from an EPC URI's company prefix and reference, its first reference digit (the
    indicator / extension digit) moved to the front, with its check digit."""
    body = reference[:1] + company + reference[1:]
    return body + str(check_digit(body))


def _epc_uri(uri: str) -> set[str]:
    parts = uri.split(":")
    if len(parts) != 5:
        return set()
    _, _, form, scheme, rest = parts
    fields = rest.split(".")
    company = fields[0]
    if not company.isdigit():
        return set()
    keys = {f"cp:{company}"}
    try:
        if scheme in ("sgtin", "lgtin") and len(fields) == 3 and fields[1].isdigit():
            gtin = _digits(company, fields[1])
            if form == "class" and scheme == "lgtin":
                keys.add(f"lot:{gtin}/{unquote(fields[2])}")
            else:
                keys.add(f"gtin:{gtin}")
        elif scheme == "sscc" and len(fields) == 2 and fields[1].isdigit():
            keys.add(f"sscc:{_digits(company, fields[1])}")
        elif scheme == "sgln" and len(fields) == 3 and fields[1].isdigit():
            body = company + fields[1]
            keys.add(f"gln:{body}{check_digit(body)}")
    except ValueError:
        pass
    return keys


def _digital_link(uri: str) -> set[str]:
    segments = [unquote(s) for s in urlsplit(uri).path.split("/") if s]
    pairs = dict(zip(segments[::2], segments[1::2], strict=False))
    if "01" in pairs and pairs["01"].isdigit():
        gtin = pairs["01"].rjust(14, "0")
        return {f"lot:{gtin}/{pairs['10']}"} if "10" in pairs else {f"gtin:{gtin}"}
    if "00" in pairs:
        return {f"sscc:{pairs['00']}"}
    if "414" in pairs:
        return {f"gln:{pairs['414']}"}
    return set()


def identifier_keys(identifier: str, *, location: bool = False) -> frozenset[str]:
    """The keys of one identifier (see the module's docstring)."""
    keys: set[str] = set()
    if identifier.startswith(("urn:epc:id:", "urn:epc:class:", "urn:epc:idpat:")):
        keys = _epc_uri(identifier)
    elif identifier.startswith(("https://", "http://")):
        keys = _digital_link(identifier)
    if location:
        keys.add(f"loc:{identifier}")
    return frozenset(keys or {f"uri:{identifier}"})


def identifiers(event: Mapping[str, Any]) -> list[tuple[str, frozenset[str]]]:
    """Every identifier the event names, with its keys."""
    found: list[tuple[str, bool]] = []
    for name in ("epcList", "childEPCs", "inputEPCList", "outputEPCList"):
        found.extend((x, False) for x in event.get(name) or [] if isinstance(x, str))
    if isinstance(event.get("parentID"), str):
        found.append((event["parentID"], False))
    for name in _QUANTITY_LISTS:
        for element in event.get(name) or []:
            if isinstance(element, Mapping) and isinstance(element.get("epcClass"), str):
                found.append((element["epcClass"], False))
    for name in ("readPoint", "bizLocation"):
        place = event.get(name)
        if isinstance(place, Mapping) and isinstance(place.get("id"), str):
            found.append((place["id"], True))
    return [(x, identifier_keys(x, location=loc)) for x, loc in dict.fromkeys(found)]


def subject_keys(event: Mapping[str, Any]) -> list[str]:
    """Every key of every identifier of the event (stored with it, matched by queries)."""
    return sorted({key for _, keys in identifiers(event) for key in keys})
