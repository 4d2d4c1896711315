"""GS1 Digital Link parsing and building: check digits, character set 82, lengths, order."""

from __future__ import annotations

import pytest

from tracehub.gs1 import (
    DigitalLinkError,
    build_uri,
    check_digit,
    normalise_gtin,
    parse_path,
)

# Published GTINs with valid check digits: GS1's own example GTIN-14, a GTIN-13 (EAN), a UPC-A
# (GTIN-12) and a GTIN-8 from GS1's check digit calculator examples.
GOOD = [
    ("09506000134352", "09506000134352"),
    ("4006381333931", "04006381333931"),
    ("036000291452", "00036000291452"),
    ("96385074", "00000096385074"),
]


@pytest.mark.parametrize(("raw", "normalised"), GOOD)
def test_known_good_gtins_normalise_to_14_digits(raw: str, normalised: str) -> None:
    assert normalise_gtin(raw) == normalised
    assert check_digit(normalised[:-1]) == int(normalised[-1])


@pytest.mark.parametrize(("raw", "_"), GOOD)
def test_every_wrong_check_digit_is_refused(raw: str, _: str) -> None:
    for digit in "0123456789":
        if digit == raw[-1]:
            continue
        with pytest.raises(DigitalLinkError, match=f"expected {raw[-1]}"):
            normalise_gtin(raw[:-1] + digit)


@pytest.mark.parametrize(
    ("gtin", "message"),
    [
        ("123456789", "8, 12, 13 or 14 digits, got 9"),
        ("0950600013435X", "digits only"),
        ("", "digits only"),
        ("123456789012345", "got 15"),
    ],
)
def test_malformed_gtins(gtin: str, message: str) -> None:
    with pytest.raises(DigitalLinkError, match=message):
        normalise_gtin(gtin)


def test_path_with_lot_and_serial_and_percent_encoding() -> None:
    link = parse_path("/01/4006381333931/10/AB%2F12-x/21/S%2500")
    assert link.gtin == "04006381333931"
    assert link.lot == "AB/12-x"
    assert link.serial == "S%00"
    assert link.path == "/01/04006381333931/10/AB%2F12-x/21/S%2500"
    assert parse_path(link.path) == link


def test_serial_without_lot_is_allowed_but_lot_after_serial_is_not() -> None:
    assert parse_path("/01/09506000134352/21/777").serial == "777"
    with pytest.raises(DigitalLinkError, match="AI 10 cannot follow AI 21"):
        parse_path("/01/09506000134352/21/777/10/L1")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/01/09506000134352/10/" + "A" * 21, "at most 20 characters, got 21"),
        ("/01/09506000134352/10/a%20b", "outside GS1 character set 82: ' '"),
        ("/01/09506000134352/10/caf%C3%A9", "outside GS1 character set 82: 'é'"),
        ("/01/09506000134352/21/%7E", "serial number \\(AI 21\\) has characters outside"),
        ("/01/09506000134353/10/L1", "check digit 3, expected 2"),
        ("/414/9506000134352", "primary key must be AI 01"),
        ("/01", "/01/\\{gtin\\}"),
        ("/01/09506000134352/10", "/01/\\{gtin\\}"),
        ("/01/09506000134352/99/x", "AI 99 cannot follow AI 01"),
    ],
)
def test_bad_paths_say_what_is_wrong(path: str, message: str) -> None:
    with pytest.raises(DigitalLinkError, match=message):
        parse_path(path)


def test_query_dates_are_checked() -> None:
    assert parse_path("/01/09506000134352", {"17": "280229"}).attributes == {"17": "280229"}
    assert parse_path("/01/09506000134352", {"17": "270200", "linkType": "x"}).attributes == {
        "17": "270200"
    }
    with pytest.raises(DigitalLinkError, match="day 29 does not exist"):
        parse_path("/01/09506000134352", {"17": "270229"})
    with pytest.raises(DigitalLinkError, match="month 13"):
        parse_path("/01/09506000134352", {"15": "271301"})
    with pytest.raises(DigitalLinkError, match="query AI 3103 is not supported"):
        parse_path("/01/09506000134352", {"3103": "000500"})


def test_build_uri_is_canonical() -> None:
    uri = build_uri("http://127.0.0.1:18000/", "4006381333931", "LOT 1".replace(" ", "-"))
    assert uri == "http://127.0.0.1:18000/01/04006381333931/10/LOT-1"
    with pytest.raises(DigitalLinkError):
        build_uri("http://x", "4006381333932")
