"""GS1 identifiers: keys and check digits, GS1 Digital Link URIs, and EPC binary decoding.

One module for what every part and verifier says about GS1 keys:

- `check_digit`: the GS1 mod-10 check digit (General Specifications section 7.9); weights 3 and
  1 alternate from the rightmost digit of the body, which takes 3.
- Digital Link URIs `/01/{gtin}[/10/{lot}][/21/{serial}]`, parsed, validated and built (GS1
  Digital Link URI syntax 1.x; General Specifications section 3 for the application
  identifiers, figure 7.11-1 for character set 82):
  - AI 01 (GTIN): 8, 12, 13 or 14 digits, normalised to 14 by left-padding with zeros, with a
    valid check digit;
  - AI 10 (batch/lot) and AI 21 (serial): 1-20 characters of character set 82, percent-encoded
    in the URI where a character is not URI-safe;
  - query AIs 17 (expiry date) and 15 (best before), YYMMDD with a real calendar day (DD = 00
    means the last day of the month, as the General Specifications allow).
  `parse_path` raises `DigitalLinkError` whose message says which AI is wrong and why, so the
  resolver can answer 400 with it verbatim.
- `decode_epc`: SGTIN-96, SSCC-96 and SGLN-96 binary EPCs (GS1 EPC Tag Data Standard) to the
  identifiers people use. epcpy does the bit-level decoding to the pure identity URI; the keys
  with their check digits and the Digital Link URIs are built here from that URI's parts.
  Anything else (another header, a non-GS1 EPC, a malformed partition) decodes to None.

`DIGITAL_LINK_BASE` is the one canonical base for identifiers written into EPCIS events.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote, unquote

from epcpy.utils.parsers import hex_to_tag_encodable

from tracehub.errors import InvalidError

__all__ = [
    "DIGITAL_LINK_BASE",
    "DigitalLink",
    "DigitalLinkError",
    "Gs1Epc",
    "build_uri",
    "check_digit",
    "decode_epc",
    "normalise_gtin",
    "parse_path",
    "validate_cset82",
]

#: The canonical GS1 resolver base: EPCIS events name lots and items on it (GS1 Digital Link 1.x).
DIGITAL_LINK_BASE = "https://id.gs1.org"

#: GS1 AI encodable character set 82 (General Specifications figure 7.11-1).
CSET82 = frozenset(
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)
_DIGITS = re.compile(r"[0-9]+")
#: Which AI may follow which in the path (the Digital Link qualifier chain for GTIN).
_QUALIFIERS = {"01": ("10", "21"), "10": ("21",), "21": ()}
_AI_NAMES = {"01": "GTIN", "10": "batch/lot", "21": "serial number"}
_DATE_AIS = {"17": "expiry date", "15": "best before date"}
_MAX_CSET82 = 20


class DigitalLinkError(InvalidError):
    """The URI is not a valid GS1 Digital Link for a GTIN; the message says why."""


def check_digit(body: str) -> int:
    """The GS1 mod-10 check digit of `body` (all digits but the last of a GTIN/GLN/SSCC).

    Weights 3 and 1 alternate from the rightmost digit of the body, which takes 3.
    """
    if not _DIGITS.fullmatch(body):
        raise DigitalLinkError("a GS1 key is digits only")
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def normalise_gtin(value: str) -> str:
    """A GTIN-8/12/13/14 as 14 digits, after checking its length and check digit."""
    if not _DIGITS.fullmatch(value):
        raise DigitalLinkError(f"GTIN (AI 01) must be digits only, got {value!r}")
    if len(value) not in (8, 12, 13, 14):
        raise DigitalLinkError(f"GTIN (AI 01) must have 8, 12, 13 or 14 digits, got {len(value)}")
    gtin = value.zfill(14)
    expected = check_digit(gtin[:-1])
    if int(gtin[-1]) != expected:
        raise DigitalLinkError(
            f"GTIN (AI 01) {value} has check digit {gtin[-1]}, expected {expected}"
        )
    return gtin


def validate_cset82(ai: str, value: str) -> str:
    """`value` if it is 1-20 characters of character set 82, else a clear error."""
    name = f"{_AI_NAMES.get(ai, 'AI')} (AI {ai})"
    if not value:
        raise DigitalLinkError(f"{name} must not be empty")
    if len(value) > _MAX_CSET82:
        raise DigitalLinkError(f"{name} is at most {_MAX_CSET82} characters, got {len(value)}")
    bad = sorted({c for c in value if c not in CSET82})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise DigitalLinkError(f"{name} has characters outside GS1 character set 82: {shown}")
    return value


def _validate_date(ai: str, value: str) -> str:
    name = f"{_DATE_AIS[ai]} (AI {ai})"
    if not re.fullmatch(r"[0-9]{6}", value):
        raise DigitalLinkError(f"{name} must be YYMMDD (6 digits), got {value!r}")
    year, month, day = 2000 + int(value[:2]), int(value[2:4]), int(value[4:])
    if not 1 <= month <= 12:
        raise DigitalLinkError(f"{name} {value} has month {month:02d}, not 01-12")
    if day > calendar.monthrange(year, month)[1]:
        raise DigitalLinkError(f"{name} {value}: day {day:02d} does not exist in that month")
    return value


@dataclass(frozen=True)
class DigitalLink:
    """A parsed, validated Digital Link for a trade item (GTIN, optionally lot and serial)."""

    gtin: str
    lot: str | None = None
    serial: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        """The canonical path: 14-digit GTIN, percent-encoded lot and serial."""
        out = f"/01/{self.gtin}"
        if self.lot is not None:
            out += f"/10/{quote(self.lot, safe='')}"
        if self.serial is not None:
            out += f"/21/{quote(self.serial, safe='')}"
        return out

    def uri(self, base_url: str) -> str:
        """The full URI on `base_url` (scheme and host of the resolver)."""
        query = "&".join(f"{ai}={value}" for ai, value in sorted(self.attributes.items()))
        return base_url.rstrip("/") + self.path + (f"?{query}" if query else "")


def parse_path(path: str, query: dict[str, str] | None = None) -> DigitalLink:
    """Parse a Digital Link path such as `/01/09506000134352/10/ABC1` (percent-encoded values
    allowed) and its query AIs. Non-AI query parameters (linkType, lang, ...) are ignored."""
    parts = path.strip("/").split("/")
    if len(parts) < 2 or len(parts) % 2:
        raise DigitalLinkError("a GS1 Digital Link path is /01/{gtin}[/10/{lot}][/21/{serial}]")
    pairs = [(parts[i], unquote(parts[i + 1])) for i in range(0, len(parts), 2)]
    if pairs[0][0] != "01":
        raise DigitalLinkError(f"the primary key must be AI 01 (GTIN), got AI {pairs[0][0]!r}")
    values: dict[str, str] = {}
    previous = "01"
    for ai, value in pairs:
        if ai in values:
            raise DigitalLinkError(f"AI {ai} appears twice")
        if ai != "01" and ai not in _QUALIFIERS[previous]:
            allowed = " or ".join(_QUALIFIERS[previous]) or "nothing"
            raise DigitalLinkError(f"AI {ai} cannot follow AI {previous} here (allowed: {allowed})")
        values[ai] = value
        previous = ai
    attributes = {}
    for ai, value in (query or {}).items():
        if ai in _DATE_AIS:
            attributes[ai] = _validate_date(ai, value)
        elif _DIGITS.fullmatch(ai):
            raise DigitalLinkError(f"query AI {ai} is not supported here (supported: 15, 17)")
    return DigitalLink(
        gtin=normalise_gtin(values["01"]),
        lot=validate_cset82("10", values["10"]) if "10" in values else None,
        serial=validate_cset82("21", values["21"]) if "21" in values else None,
        attributes=attributes,
    )


def build_uri(base_url: str, gtin: str, lot: str | None = None, serial: str | None = None) -> str:
    """The Digital Link URI of a GTIN (and lot, serial), validated and canonical."""
    link = DigitalLink(
        gtin=normalise_gtin(gtin),
        lot=validate_cset82("10", lot) if lot is not None else None,
        serial=validate_cset82("21", serial) if serial is not None else None,
    )
    return link.uri(base_url)


Scheme = Literal["sgtin-96", "sscc-96", "sgln-96"]
_SCHEMES: dict[int, Scheme] = {0x30: "sgtin-96", 0x31: "sscc-96", 0x32: "sgln-96"}
_EPC96_BYTES = 12


@dataclass(frozen=True, slots=True)
class Gs1Epc:
    """A decoded GS1 EPC.

    `gs1_key` is the GTIN-14 (SGTIN), SSCC-18 (SSCC) or GLN-13 (SGLN), check digit included.
    `serial` is the SGTIN serial; `extension` the SGLN extension (None when it is 0, i.e. absent).
    """

    scheme: Scheme
    uri: str
    filter_value: int
    company_prefix: str
    gs1_key: str
    serial: str | None
    extension: str | None
    digital_link: str


def decode_epc(epc: bytes | str) -> Gs1Epc | None:
    """Decode an EPC given as bytes or hex; None for anything but SGTIN/SSCC/SGLN-96."""
    raw = _as_bytes(epc)
    if raw is None or len(raw) < _EPC96_BYTES or raw[0] not in _SCHEMES:
        return None
    # EPC memory longer than 96 bits holds a 96-bit EPC only if the rest is zero padding.
    if any(raw[_EPC96_BYTES:]):
        return None
    raw = raw[:_EPC96_BYTES]
    try:
        uri = str(hex_to_tag_encodable(raw.hex().upper()).epc_uri)
    except Exception:
        # epcpy signals bad partitions, out-of-range fields and the like with assorted
        # exception types; for us they all mean "not a decodable GS1 EPC".
        return None
    scheme = _SCHEMES[raw[0]]
    filter_value = raw[1] >> 5
    parts = uri.rsplit(":", 1)[1].split(".")
    if scheme == "sgtin-96" and len(parts) == 3:
        return _sgtin(uri, filter_value, parts[0], parts[1], parts[2])
    if scheme == "sscc-96" and len(parts) == 2:
        return _sscc(uri, filter_value, parts[0], parts[1])
    if scheme == "sgln-96" and len(parts) == 3:
        return _sgln(uri, filter_value, parts[0], parts[1], parts[2])
    return None


def _as_bytes(epc: bytes | str) -> bytes | None:
    if isinstance(epc, bytes):
        return epc
    try:
        return bytes.fromhex(epc)
    except ValueError:
        return None


def _with_check_digit(digits: str) -> str:
    return digits + str(check_digit(digits))


def _sgtin(uri: str, filter_value: int, company: str, item_ref: str, serial: str) -> Gs1Epc:
    # The first digit of the item reference is the GTIN's indicator digit.
    gtin = _with_check_digit(item_ref[0] + company + item_ref[1:])
    return Gs1Epc(
        scheme="sgtin-96",
        uri=uri,
        filter_value=filter_value,
        company_prefix=company,
        gs1_key=gtin,
        serial=serial,
        extension=None,
        digital_link=f"{DIGITAL_LINK_BASE}/01/{gtin}/21/{quote(serial, safe='')}",
    )


def _sscc(uri: str, filter_value: int, company: str, serial_ref: str) -> Gs1Epc:
    # The first digit of the serial reference is the SSCC's extension digit.
    sscc = _with_check_digit(serial_ref[0] + company + serial_ref[1:])
    return Gs1Epc(
        scheme="sscc-96",
        uri=uri,
        filter_value=filter_value,
        company_prefix=company,
        gs1_key=sscc,
        serial=None,
        extension=None,
        digital_link=f"{DIGITAL_LINK_BASE}/00/{sscc}",
    )


def _sgln(uri: str, filter_value: int, company: str, location_ref: str, ext: str) -> Gs1Epc:
    gln = _with_check_digit(company + location_ref)
    extension = None if ext == "0" else ext
    link = f"{DIGITAL_LINK_BASE}/414/{gln}"
    if extension is not None:
        link += f"/254/{quote(extension, safe='')}"
    return Gs1Epc(
        scheme="sgln-96",
        uri=uri,
        filter_value=filter_value,
        company_prefix=company,
        gs1_key=gln,
        serial=None,
        extension=extension,
        digital_link=link,
    )
