"""Money as integer minor units per ISO 4217, and currency conversion with one rounding rule.

Minor units (the exponent) are those of ISO 4217 "List One" as published by SIX Financial
Information, the ISO 4217 maintenance agency
(https://www.six-group.com/dam/download/financial-information/data-center/iso-currrency/lists/list-one.xml):
USD, EUR, GBP, CNY, AED, SAR, SGD 2; JPY 0; KWD, BHD 3.

Rounding rule: every conversion or parse that cannot be exact rounds to the nearest minor unit,
ties to even (``decimal.ROUND_HALF_EVEN``, "banker's rounding"), so that systematic ties do not
drift in one direction over many orders. Floats are refused everywhere.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from commerce.errors import CommerceInvalidError

ROUNDING = ROUND_HALF_EVEN

#: ISO 4217 minor units of the currencies TraceHub trades in.
MINOR_UNITS: dict[str, int] = {
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CNY": 2,
    "JPY": 0,
    "AED": 2,
    "SAR": 2,
    "SGD": 2,
    "CHF": 2,
    "HKD": 2,
    "INR": 2,
    "KRW": 0,
    "KWD": 3,
    "BHD": 3,
}


class MoneyError(CommerceInvalidError):
    """An unknown currency or an amount that is not a valid decimal in it."""


def exponent(currency: str) -> int:
    """The currency's ISO 4217 minor unit (number of decimals)."""
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        raise MoneyError(
            f"unsupported currency {currency!r}; supported: {sorted(MINOR_UNITS)}"
        ) from None


def to_minor(amount: str | Decimal | int, currency: str) -> int:
    """A decimal amount in major units (e.g. "12.34" USD) as minor units (1234).

    Exact only: "12.345" USD is refused rather than rounded, because a price someone typed
    with too many decimals is an error to report, not to guess.
    """
    if isinstance(amount, float):
        raise MoneyError("amounts must be decimal strings or integers, never floats")
    try:
        value = Decimal(amount)
    except InvalidOperation:
        raise MoneyError(f"{amount!r} is not a decimal amount") from None
    if not value.is_finite():
        raise MoneyError(f"{amount!r} is not a finite amount")
    scaled = value.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise MoneyError(
            f"{amount} has more decimals than {currency} allows ({exponent(currency)})"
        )
    return int(scaled)


def to_major(minor: int, currency: str) -> Decimal:
    """Minor units as an exact Decimal in major units (1234 USD -> Decimal("12.34"))."""
    return Decimal(minor).scaleb(-exponent(currency))


def format_amount(minor: int, currency: str) -> str:
    """ "12.34 USD", "1235 JPY"."""
    digits = exponent(currency)
    return f"{to_major(minor, currency):.{digits}f} {currency}"


def convert(minor: int, source: str, target: str, rate: Decimal) -> int:
    """``minor`` units of ``source`` in ``target`` at ``rate`` (1 source = rate target).

    One rounding step at the end, to the target's minor unit, ties to even.
    """
    if isinstance(rate, float) or not isinstance(rate, Decimal):
        raise MoneyError("rates must be Decimal, never float")
    if rate <= 0:
        raise MoneyError("a rate must be positive")
    if source == target:
        return minor
    major = to_major(minor, source) * rate
    quantum = Decimal(1).scaleb(-exponent(target))
    return int(major.quantize(quantum, rounding=ROUNDING).scaleb(exponent(target)))
