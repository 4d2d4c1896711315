"""GS1 Digital Link URIs: `/01/{gtin}[/10/{lot}][/21/{serial}]` parsed, validated and built.

The rules are those of the GS1 General Specifications (section 3, application identifiers;
section 7.9/7.11, check digits and character sets) and the GS1 Digital Link URI syntax 1.x:

- AI 01 (GTIN): 8, 12, 13 or 14 digits, normalised to 14 by left-padding with zeros, with a
  valid mod-10 check digit.
- AI 10 (batch/lot) and AI 21 (serial): 1-20 characters of GS1 AI encodable character set 82,
  percent-encoded in the URI where a character is not URI-safe.
- Query AIs supported: 17 (expiry date) and 15 (best before), YYMMDD with a real calendar day
  (DD = 00 means the last day of the month, as the General Specifications allow).

`parse_path` raises `DigitalLinkError` whose message says which AI is wrong and why, so the
resolver can answer 400 with it verbatim.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

__all__ = [
    "DigitalLink",
    "DigitalLinkError",
    "build_uri",
    "check_digit",
    "normalise_gtin",
    "parse_path",
    "validate_cset82",
]

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


class DigitalLinkError(ValueError):
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
