"""GS1 EPC decoding: SGTIN-96, SSCC-96 and SGLN-96 binary EPCs to identifiers people use.

epcpy (GS1 EPC Tag Data Standard) does the bit-level decoding to the pure identity URI; the GS1
keys with their check digits and the GS1 Digital Link URIs are built here from that URI's parts.
Anything else (another header, a non-GS1 EPC, a malformed partition) decodes to None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from epcpy.utils.parsers import hex_to_tag_encodable

__all__ = ["DIGITAL_LINK_BASE", "Gs1Epc", "decode_epc", "gs1_check_digit"]

DIGITAL_LINK_BASE = "https://id.gs1.org"

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


def gs1_check_digit(digits: str) -> int:
    """GS1 mod-10 check digit of `digits` (weights 3, 1, 3, ... from the rightmost digit)."""
    if not digits.isdigit():
        raise ValueError("check digit needs decimal digits")
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return -total % 10


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
    return digits + str(gs1_check_digit(digits))


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
