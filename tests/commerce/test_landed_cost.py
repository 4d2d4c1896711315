"""Landed cost per Incoterm: who pays what, the shipped table's duty and VAT, money's rounding
(half-even, once per amount), and a quote's landed cost through the API for a buyer in Spain
(EU: CIF valuation, VAT) and one in the US (FOB valuation, no import VAT)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from commerce.customs.errors import CustomsInvalidError, CustomsNotFoundError
from commerce.customs.incoterms import payer
from commerce.customs.landed_cost import Costs, Fx, Goods, landed_costs, percent, spread
from commerce.customs.tariffs import parse_rows, shipped_rows
from tests.support.api import ApiHarness
from tests.support.commerce import party_headers
from tests.support.customs import GTIN_SHIRT, add_shirt, buyer_org, load_tariffs, quote


def test_the_shipped_table_cites_a_source_and_date_for_every_row() -> None:
    rows = shipped_rows()
    assert {(r.destination, r.hs6) for r in rows} >= {("ES", "610910"), ("US", "610910")}
    for r in rows:
        assert r.source and r.source_date.year >= 2025 and r.national_code.startswith(r.hs6)
    shirts = {r.destination: r for r in rows if r.hs6 == "610910"}
    assert (shirts["ES"].duty_pct, shirts["ES"].vat_pct, shirts["ES"].valuation) == (
        Decimal(12),
        Decimal(21),
        "CIF",
    )
    assert (shirts["US"].duty_pct, shirts["US"].vat_pct, shirts["US"].valuation) == (
        Decimal("16.5"),
        Decimal(0),
        "FOB",
    )


def test_a_malformed_table_is_refused_by_row() -> None:
    header = (
        "destination,hs6,national_code,description,duty_pct,vat_pct,valuation,source,"
        "source_date,status\n"
    )
    with pytest.raises(CustomsInvalidError, match="row 2: national_code"):
        parse_rows(header + "ES,610910,62034200,x,12,21,CIF,TARIC,2026-01-01,ok\n")
    with pytest.raises(CustomsInvalidError, match="every rate names its source"):
        parse_rows(header + "ES,610910,61091000,x,12,21,CIF,,2026-01-01,ok\n")
    with pytest.raises(CustomsInvalidError, match="columns"):
        parse_rows("destination,hs6\nES,610910\n")


def test_who_pays_under_each_rule() -> None:
    expected = {
        "EXW": ("buyer", "buyer", "buyer", "buyer", "buyer"),
        "FOB": ("seller", "buyer", "buyer", "buyer", "buyer"),
        "CIF": ("seller", "seller", "seller", "buyer", "buyer"),
        "DAP": ("seller", "seller", "seller", "buyer", "buyer"),
        "DDP": ("seller", "seller", "seller", "seller", "seller"),
    }
    costs = ("origin_charges", "freight", "insurance", "import_duty", "import_vat")
    for term, payers in expected.items():
        assert tuple(payer(term, c) for c in costs) == payers, term
    with pytest.raises(CustomsInvalidError):
        payer("CFR", "freight")


def test_rounding_is_half_even_once_and_shares_add_up() -> None:
    assert percent(55700, Decimal("16.5")) == 9190  # 9190.5 -> the even neighbour
    assert percent(55900, Decimal("16.5")) == 9224  # 9223.5 -> 9224
    assert percent(78480, Decimal(12)) == 9418  # 9417.6
    assert spread(5000, [50000, 19990]) == [3572, 1428]  # largest remainder gets the cent
    assert sum(spread(7, [1, 1, 1])) == 7 and spread(0, [1, 2]) == [0, 0]


def test_missing_rate_is_named() -> None:
    rates = {r.hs6: r for r in shipped_rows() if r.destination == "US"}
    goods = [Goods("09506000134376", "999999", 1, 100)]
    with pytest.raises(CustomsNotFoundError, match="999999"):
        landed_costs(goods, Costs(), rates, Fx("USD", "USD"), "US")


def _by_term(reply: dict) -> dict[str, dict]:
    return {r["incoterm"]: r for r in reply["landed_cost"]}


def _amounts(result: dict, payer_: str | None = None) -> dict[str, int]:
    return {
        c["cost"]: c["amount_minor"]
        for c in result["components"]
        if payer_ is None or c["payer"] == payer_
    }


def test_quote_landed_cost_exw_and_ddp_to_spain_and_the_us(h: ApiHarness) -> None:
    load_tariffs(h)
    add_shirt(h)
    supplier = party_headers(h, "supplier", "sup-a")
    classified = h.client.post(
        "/commerce/classifications",
        headers=supplier,
        json={"gtin": GTIN_SHIRT, "hs_code": "610910"},
    )
    assert classified.status_code == 200, classified.text
    admin = h.headers("admin")
    fx = h.client.post(
        "/commerce/fx-rates",
        headers=admin,
        json={
            "base": "USD",
            "quote": "EUR",
            "rate": "0.9",
            "source": "ECB reference rate (test)",
            "observed_at": "2026-12-01T14:15:00+00:00",
        },
    )
    assert fx.status_code == 201, fx.text
    costs = {"freight_minor": 30000, "insurance_minor": 1500, "origin_charges_minor": 5000}
    line = [{"gtin": GTIN_SHIRT, "quantity": 100, "unit_price": "5.07"}]

    # Spain, in EUR: 50,700 USD cents -> 45,630 EUR cents; CIF value 45,630 + 4,500 origin
    # + 27,000 freight + 1,350 insurance = 78,480; duty 12 % = 9,417.6 -> 9,418; VAT 21 % of
    # (78,480 + 9,418) = 18,458.58 -> 18,459.
    _, es_buyer = buyer_org(h, "ES")
    es_quote = quote(h, es_buyer, supplier, line)
    reply = h.client.get(
        f"/commerce/quotes/{es_quote}/landed-cost",
        headers=es_buyer,
        params={**costs, "currency": "EUR"},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["destination"] == "ES"
    es = _by_term(reply.json())
    assert set(es) == {"EXW", "FOB", "CIF", "DAP", "DDP"}
    assert _amounts(es["EXW"]) == {
        "origin_charges": 4500,
        "freight": 27000,
        "insurance": 1350,
        "import_duty": 9418,
        "import_vat": 18459,
    }
    assert es["EXW"]["goods_minor"] == 45630 and es["EXW"]["seller_price_minor"] == 45630
    assert es["EXW"]["buyer_landed_minor"] == 106357 and es["EXW"]["buyer_landed"] == "1063.57 EUR"
    assert _amounts(es["DDP"], "buyer") == {} and es["DDP"]["seller_price_minor"] == 106357
    duty = next(c for c in es["DDP"]["components"] if c["cost"] == "import_duty")
    assert duty["rate_pct"] == "12" and "TARIC" in duty["source"] and "2026-12-03" in duty["source"]
    assert "CIF value 784.80 EUR" in duty["source"]
    freight = next(c for c in es["DDP"]["components"] if c["cost"] == "freight")
    assert "1 USD = 0.9" in freight["source"] and "ECB" in freight["source"]

    # The US, in USD: FOB value 50,700 + 5,000 = 55,700 (freight and insurance excluded);
    # duty 16.5 % = 9,190.5 -> 9,190 (half-even); no import VAT.
    _, us_buyer = buyer_org(h, "US")
    us_quote = quote(h, us_buyer, supplier, line)
    us = _by_term(
        h.client.get(
            f"/commerce/quotes/{us_quote}/landed-cost", headers=us_buyer, params=costs
        ).json()
    )
    assert _amounts(us["EXW"])["import_duty"] == 9190
    assert _amounts(us["EXW"])["import_vat"] == 0
    assert _amounts(us["EXW"], "seller") == {}
    assert us["EXW"]["buyer_landed_minor"] == 50700 + 5000 + 30000 + 1500 + 9190
    assert us["DDP"]["seller_price_minor"] == us["EXW"]["buyer_landed_minor"]
    assert _amounts(us["FOB"], "seller") == {"origin_charges": 5000}
    assert us["CIF"]["seller_price_minor"] == 50700 + 5000 + 30000 + 1500

    # Another buyer cannot read the quote's landed cost; an unclassified product is named.
    assert (
        h.client.get(f"/commerce/quotes/{us_quote}/landed-cost", headers=es_buyer).status_code
        == 404
    )
    unclassified = quote(
        h, us_buyer, supplier, [{"gtin": "09506000134369", "quantity": 1, "unit_price": "1.00"}]
    )
    refused = h.client.get(f"/commerce/quotes/{unclassified}/landed-cost", headers=us_buyer)
    assert refused.status_code == 422 and "no HS code" in refused.json()["detail"]
    table = h.client.get("/commerce/tariffs", headers=us_buyer, params={"destination": "US"})
    assert {r["hs6"] for r in table.json()} == {"300241", "610910"}
