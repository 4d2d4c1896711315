"""Node identifiers of the genealogy graph: one canonical form per thing, whatever spelling.

An event may name a lot as an LGTIN EPC class, a Digital Link or (in the hub's own tables) a
GTIN and a lot; the graph keys each by what it is, so a query by any spelling finds it:

- ``lot:<gtin>/<lot>``: a lot (LGTIN class; Digital Link with AI 10; ``<gtin>/<lot>``);
- ``item:<gtin>/<serial>``: an instance (SGTIN; Digital Link with AI 21);
- ``sscc:<sscc>``: a logistic unit (pallet, case); ``gln:<gln>``: a location or party (SGLN,
  PGLN, Digital Link with AI 414/417), its extension dropped;
- ``product:<gtin>``: a product class without a lot;
- anything else (business transactions, other URIs) as written.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import unquote, urlsplit

from ingest.epcis.subjects import identifier_keys
from tracehub.gs1 import check_digit

__all__ = ["canonical", "node_kind", "parse_query_id"]

_GTIN_LOT = re.compile(r"^([0-9]{8,14})/(.{1,20})$")


def _digits(company: str, reference: str) -> str:
    body = reference[:1] + company + reference[1:]
    return body + str(check_digit(body))


def _epc(uri: str) -> str | None:
    parts = uri.split(":")
    if len(parts) != 5:
        return None
    _, _, form, scheme, rest = parts
    fields = rest.split(".")
    if not fields[0].isdigit() or len(fields) < 2 or not fields[1].isdigit():
        return None
    company = fields[0]
    try:
        if scheme == "lgtin" and form == "class" and len(fields) == 3:
            return f"lot:{_digits(company, fields[1])}/{unquote(fields[2])}"
        if scheme == "sgtin" and form == "id" and len(fields) == 3:
            return f"item:{_digits(company, fields[1])}/{unquote(fields[2])}"
        if scheme == "sscc" and len(fields) == 2:
            return f"sscc:{_digits(company, fields[1])}"
        if scheme in ("sgln", "pgln"):
            body = company + fields[1]
            return f"gln:{body}{check_digit(body)}"
    except ValueError:
        return None
    return None


def _digital_link(uri: str) -> str | None:
    segments = [unquote(s) for s in urlsplit(uri).path.split("/") if s]
    pairs = dict(zip(segments[::2], segments[1::2], strict=False))
    gtin = pairs.get("01", "")
    if gtin.isdigit():
        gtin = gtin.rjust(14, "0")
        if "21" in pairs:
            return f"item:{gtin}/{pairs['21']}"
        if "10" in pairs:
            return f"lot:{gtin}/{pairs['10']}"
        return f"product:{gtin}"
    for ai, prefix in (("00", "sscc"), ("414", "gln"), ("417", "gln")):
        if ai in pairs:
            return f"{prefix}:{pairs[ai]}"
    return None


@lru_cache(maxsize=1 << 16)
@lru_cache(maxsize=65536)
def canonical(identifier: str) -> str:
    """The graph's node id for an identifier as an event writes it (cached: an export or a
    trace meets the same lots, pallets and places in event after event)."""
    if identifier.startswith(("urn:epc:id:", "urn:epc:class:")):
        found = _epc(identifier)
    elif identifier.startswith(("https://", "http://")):
        found = _digital_link(identifier)
    else:
        found = None
    if found is None and identifier.startswith("urn:epc:idpat:sgtin:"):
        gtins = [k for k in identifier_keys(identifier) if k.startswith("gtin:")]
        found = f"product:{gtins[0][5:]}" if gtins else None
    return found or identifier


def parse_query_id(value: str) -> str:
    """A trace's starting point from an EPC URI, a Digital Link, ``<gtin>/<lot>`` or a node id."""
    value = value.strip()
    match = _GTIN_LOT.match(value)
    if match and not value.startswith(("lot:", "item:")):
        return f"lot:{match.group(1).rjust(14, '0')}/{match.group(2)}"
    return canonical(value)


def node_kind(node: str) -> str:
    """lot, item, sscc, gln, product, or other."""
    head = node.split(":", 1)[0]
    return head if head in ("lot", "item", "sscc", "gln", "product") else "other"
