"""Field checks of manual payments: IBAN (ISO 13616, mod-97), BIC (ISO 9362) and the SWIFT
MT character set (the "x" set of MT field formats) for free-text fields such as remittance
information or a letter of credit number.

Hand-written (a few lines each) rather than a dependency: docs/decisions/0009-commerce.md.
"""

from __future__ import annotations

import re

from commerce.errors import CommerceInvalidError

#: IBAN length per country (ISO 13616 registry, SWIFT IBAN Registry) for the countries we trade
#: with; other countries are checked by format and checksum only.
IBAN_LENGTHS = {
    "AE": 23, "CH": 21, "DE": 22, "ES": 24, "FR": 27, "GB": 22, "IT": 27,
    "NL": 18, "SA": 24, "BH": 22, "KW": 30, "BE": 16, "IE": 22,
}  # fmt: skip

_BIC = re.compile(r"^[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$")
_IBAN = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$")
# SWIFT "x" character set: a-z A-Z 0-9 / - ? : ( ) . , ' + space and CrLf.
_SWIFT_X = re.compile(r"^[A-Za-z0-9/\-?:().,'+ \r\n]*$")


class BankFieldError(CommerceInvalidError):
    """A bank field with the wrong format (never retried; manual review)."""


def check_iban(iban: str) -> str:
    """The IBAN without spaces, upper case; BankFieldError if its format, length or checksum is
    wrong."""
    compact = iban.replace(" ", "").upper()
    if not _IBAN.match(compact):
        raise BankFieldError(f"IBAN {iban!r}: not 2 letters, 2 check digits and 11-30 characters")
    expected = IBAN_LENGTHS.get(compact[:2])
    if expected and len(compact) != expected:
        raise BankFieldError(f"IBAN {iban!r}: {compact[:2]} IBANs have {expected} characters")
    digits = "".join(str(int(c, 36)) for c in compact[4:] + compact[:4])
    if int(digits) % 97 != 1:
        raise BankFieldError(f"IBAN {iban!r}: check digits do not match (mod 97)")
    return compact


def check_bic(bic: str) -> str:
    """The BIC (8 or 11 characters: bank, country, location, optional branch)."""
    if not _BIC.match(bic):
        raise BankFieldError(
            f"BIC {bic!r}: expected 4 letters bank, 2 letters country,"
            " 2 location and an optional 3-character branch"
        )
    return bic


def check_swift_text(name: str, value: str, max_len: int) -> str:
    """A free-text field in the SWIFT x character set, at most ``max_len`` characters."""
    if len(value) > max_len:
        raise BankFieldError(
            f"{name}: at most {max_len} characters (SWIFT field), got {len(value)}"
        )
    if not _SWIFT_X.match(value):
        bad = sorted({c for c in value if not _SWIFT_X.match(c)})
        raise BankFieldError(f"{name}: characters outside the SWIFT x set: {bad}")
    return value
