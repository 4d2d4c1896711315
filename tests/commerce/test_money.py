"""Money, rounding, bank fields and the retry policy, without services."""

from __future__ import annotations

from decimal import Decimal

import pytest

from commerce import money
from commerce.payments import banking
from commerce.payments.provider import ProviderPermanentError, ProviderTransientError
from commerce.payments.retry import call_with_retry
from commerce.states import InvalidTransitionError, check


@pytest.mark.parametrize(
    ("currency", "digits"),
    [
        ("USD", 2),
        ("EUR", 2),
        ("GBP", 2),
        ("CNY", 2),
        ("AED", 2),
        ("SAR", 2),
        ("SGD", 2),
        ("JPY", 0),
        ("KWD", 3),
    ],
)
def test_iso_4217_minor_units(currency: str, digits: int) -> None:
    assert money.exponent(currency) == digits
    assert money.to_minor("1", currency) == 10**digits


def test_exact_parsing_refuses_extra_decimals_and_floats() -> None:
    assert money.to_minor("12.34", "USD") == 1234
    assert money.to_minor("1234", "JPY") == 1234
    assert money.to_minor("1.234", "KWD") == 1234
    with pytest.raises(money.MoneyError, match="JPY allows \\(0\\)"):
        money.to_minor("12.5", "JPY")
    with pytest.raises(money.MoneyError, match="USD allows \\(2\\)"):
        money.to_minor("0.001", "USD")
    with pytest.raises(money.MoneyError, match="never floats"):
        money.to_minor(0.1, "USD")  # type: ignore[arg-type]
    with pytest.raises(money.MoneyError, match="unsupported currency"):
        money.to_minor("1", "XXX")
    assert money.format_amount(1234, "JPY") == "1234 JPY"
    assert money.format_amount(5, "USD") == "0.05 USD"


@pytest.mark.parametrize(
    ("minor", "source", "target", "rate", "expected"),
    [
        # 1.00 USD at 150.5 = 150.5 JPY: a tie, to even -> 150
        (100, "USD", "JPY", "150.5", 150),
        # 3.00 USD at 150.5 = 451.5 JPY: a tie, to even -> 452
        (300, "USD", "JPY", "150.5", 452),
        # 100 JPY at 0.00665 USD = 0.665 USD: tie, to even -> 0.66
        (100, "JPY", "USD", "0.00665", 66),
        # 300 JPY at 0.00665 = 1.995 USD: tie, to even -> 2.00
        (300, "JPY", "USD", "0.00665", 200),
        # 10.00 EUR at 3.6725 AED... 36.725 AED: tie, to even -> 36.72
        (1000, "EUR", "AED", "3.6725", 3672),
        # 10.00 GBP at 1.23456 SGD = 12.3456 -> 12.35 (not a tie)
        (1000, "GBP", "SGD", "1.23456", 1235),
        # 1.000 KWD at 3.25 USD = 3.25 USD exactly
        (1000, "KWD", "USD", "3.25", 325),
        (12345, "USD", "USD", "1", 12345),
    ],
)
def test_conversion_rounds_half_even_to_target_minor_unit(
    minor: int, source: str, target: str, rate: str, expected: int
) -> None:
    assert money.convert(minor, source, target, Decimal(rate)) == expected


def test_conversion_refuses_float_rates() -> None:
    with pytest.raises(money.MoneyError):
        money.convert(100, "USD", "EUR", 0.9)  # type: ignore[arg-type]


def test_bank_fields() -> None:
    assert banking.check_iban("GB82 WEST 1234 5698 7654 32") == "GB82WEST12345698765432"
    assert banking.check_iban("de89370400440532013000") == "DE89370400440532013000"
    with pytest.raises(banking.BankFieldError, match="mod 97"):
        banking.check_iban("GB82WEST12345698765433")
    with pytest.raises(banking.BankFieldError, match="22 characters"):
        banking.check_iban("DE8937040044053201300")
    assert banking.check_bic("DEUTDEFF500") == "DEUTDEFF500"
    for bad in ("DEUTDEF", "DEU1DEFF", "deutdeff", "DEUTDEFF50"):
        with pytest.raises(banking.BankFieldError):
            banking.check_bic(bad)
    with pytest.raises(banking.BankFieldError, match="at most 16"):
        banking.check_swift_text("lc", "X" * 17, 16)


def test_retry_policy_schedule_and_classes() -> None:
    slept: list[float] = []
    calls: list[int] = []

    def always_transient() -> int:
        calls.append(1)
        raise ProviderTransientError("boom")

    outcome = call_with_retry(always_transient, sleep=slept.append)
    assert slept == [1.0, 2.0, 4.0] and len(calls) == 4 and outcome.final == "failed"

    slept.clear()
    calls.clear()

    def permanent() -> int:
        calls.append(1)
        raise ProviderPermanentError("bad field")

    outcome = call_with_retry(permanent, sleep=slept.append)
    assert slept == [] and len(calls) == 1 and outcome.final == "manual_review"


def test_state_machine_table() -> None:
    check("order", "o", "placed", "confirmed")
    with pytest.raises(InvalidTransitionError, match="'delivered'; it cannot become 'placed'"):
        check("order", "o", "delivered", "placed")
    with pytest.raises(InvalidTransitionError, match="final"):
        check("payment", "p", "released", "held")
